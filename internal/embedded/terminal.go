package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/terminal"
)

// terminalOptions are o.Terminal with the process worker's user and
// working directory settings where o.Terminal leaves them empty: terminal
// sessions are confined exactly as process sessions are.
func terminalOptions(o Options) terminal.Options {
	to, po := o.Terminal, o.Process
	if to.AppUser == "" && to.AppUIDBase == 0 && to.AppUIDCount == 0 && !to.RunAsWorkerUser {
		to.AppUser, to.AppUIDBase, to.AppUIDCount, to.RunAsWorkerUser = po.AppUser, po.AppUIDBase, po.AppUIDCount, po.RunAsWorkerUser
	}
	if to.WorkDir == "" {
		to.WorkDir = po.WorkDir
	}
	to.NoSupervisor = to.NoSupervisor || po.NoSupervisor
	to.NoPIDNamespace = to.NoPIDNamespace || po.NoPIDNamespace
	if to.Logger == nil {
		to.Logger = o.Server.Logger.With("component", "terminal-worker")
	}
	return to
}

// registerTerminal registers the built-in terminal worker in public (it
// needs nothing the host may lack: a pty and a shell).
func (s *System) registerTerminal(ctx context.Context, o Options) error {
	tw := terminal.New(terminalOptions(o))
	tok, err := s.RootToken(365 * 24 * time.Hour)
	if err != nil {
		_ = tw.Shutdown(ctx)
		return err
	}
	c, err := s.Server.Connect(ctx, rpc.Config{Workspace: "public", ClientID: "builtin-terminal-worker", Token: tok,
		Logger: s.log.With("component", "terminal-worker")})
	if err != nil {
		_ = tw.Shutdown(ctx)
		return fmt.Errorf("connect the terminal worker: %w", err)
	}
	s.clients = append(s.clients, c)
	h, err := hyphaworker.Host(ctx, c, tw, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true, Logger: tw.Options().Logger})
	if err != nil {
		_ = tw.Shutdown(ctx)
		return fmt.Errorf("register the terminal worker: %w", err)
	}
	s.terminal = tw
	s.workers = append(s.workers, h)
	s.log.Info("terminal worker registered", "shell", tw.Options().Shell)
	return nil
}

// TerminalWorker is the built-in terminal worker, nil when it is not
// running.
func (s *System) TerminalWorker() *terminal.Worker { return s.terminal }
