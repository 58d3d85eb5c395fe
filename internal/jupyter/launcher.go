package jupyter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// Process is a started kernel process, as far as the client needs it.
// Wait is called exactly once, by the client, and returns when the process
// has exited (its error describes how, e.g. "exit status 3").
type Process interface {
	Wait() error
	Kill() error
	Signal(os.Signal) error
}

// Launcher starts the kernel's command line. Workers start kernels through
// their own machinery (internal/localproc: per-session uid, supervisor);
// ExecLauncher is the plain os/exec one. The launcher must not tie the
// process's life to ctx: ctx bounds the start only.
type Launcher func(ctx context.Context, argv []string, env []string, dir string) (Process, error)

// ExecLauncher starts the kernel as a child process of this one, in its own
// process group, with stdout and stderr discarded (the kernel's outputs
// travel on iopub). Used by tests and by hosts without session isolation.
func ExecLauncher(ctx context.Context, argv []string, env []string, dir string) (Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("jupyter: empty kernel command line")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	// Its own process group, so that a terminal's ^C to the host does not
	// reach the kernel and an interrupt by signal stays with the kernel.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return execProcess{cmd}, nil
}

type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) Wait() error                { return p.cmd.Wait() }
func (p execProcess) Kill() error                { return p.cmd.Process.Kill() }
func (p execProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// PID reports the process id (tests look for leftovers with it).
func (p execProcess) PID() int { return p.cmd.Process.Pid }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
