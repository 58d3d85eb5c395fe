package conda

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/hypha-go/hypha/internal/jupyter"
	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"
)

// sessionLauncher starts the kernel as the session's one command through
// internal/localproc: as the session's uid, in its working directory,
// under its supervisor, with the kernel's own stdout and stderr (what
// escapes ipykernel's capture, e.g. a crash message) in the session's
// logs. dir is always the session's: the jupyter client asks for it.
func sessionLauncher(ls *localproc.Session, s *worker.Session) jupyter.Launcher {
	return func(ctx context.Context, argv, env []string, _ string) (jupyter.Process, error) {
		if len(argv) == 0 {
			return nil, errors.New("empty kernel command line")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := ls.Start(localproc.Command{
			Path: argv[0], Args: argv, Env: env,
			Logs: s.Logs(), LogContext: s.Context(),
		})
		if err != nil {
			return nil, err
		}
		return sessionProcess{ls}, nil
	}
}

// sessionProcess is the kernel process as the jupyter client sees it.
// Signals other than SIGTERM and SIGKILL are not passed through the
// supervisor: the client interrupts with interrupt_request messages.
type sessionProcess struct{ ls *localproc.Session }

func (p sessionProcess) Wait() error {
	<-p.ls.Exited()
	ex := p.ls.Exit()
	if ex.Err != nil {
		return fmt.Errorf("%s: %w", ex.Desc, ex.Err)
	}
	if ex.Code != 0 {
		return errors.New(ex.Desc)
	}
	return nil
}

func (p sessionProcess) Kill() error {
	p.ls.Kill()
	return nil
}

func (p sessionProcess) Signal(sig os.Signal) error {
	switch sig {
	case syscall.SIGKILL:
		p.ls.Kill()
	case syscall.SIGTERM:
		p.ls.Terminate()
	default:
		return fmt.Errorf("signal %v is not passed to a session's kernel", sig)
	}
	return nil
}
