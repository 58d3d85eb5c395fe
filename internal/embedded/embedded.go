// Package embedded starts the complete embedded system in-process: the
// server, its apps controller, and the built-in workers registered in the
// public workspace, so that nothing else needs to be installed.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/process"
)

// Options for Start.
type Options struct {
	Server server.Config
	// Addr to listen on, e.g. "127.0.0.1:9527" or "127.0.0.1:0".
	Addr string
	// NoWorkers skips registering the built-in workers.
	NoWorkers bool
	// Process configures the built-in process worker.
	Process process.Options
}

// System is a running embedded server with its built-in workers.
type System struct {
	Server  *server.Server
	workers []*process.Registered
	clients []*rpc.Client
	log     *slog.Logger
}

// Start creates the server, starts listening on o.Addr and registers the
// built-in workers.
func Start(ctx context.Context, o Options) (*System, error) {
	if o.Server.Logger == nil {
		o.Server.Logger = slog.Default()
	}
	srv, err := server.New(o.Server)
	if err != nil {
		return nil, err
	}
	var pw *process.Worker
	if !o.NoWorkers {
		// Decided (app user, interpreter probes) before listening, so
		// that the worker registers right after the server is up.
		po := o.Process
		if po.Logger == nil {
			po.Logger = o.Server.Logger.With("component", "process-worker")
		}
		pw = process.New(po)
		if err := pw.Check(ctx); err != nil {
			_ = pw.Shutdown(ctx)
			srv.Close()
			return nil, err
		}
	}
	if err := srv.Start(o.Addr); err != nil {
		if pw != nil {
			_ = pw.Shutdown(ctx)
		}
		srv.Close()
		return nil, err
	}
	sys := &System{Server: srv, log: o.Server.Logger}
	if o.NoWorkers {
		return sys, nil
	}
	if err := sys.registerWorkers(ctx, pw); err != nil {
		sys.Close()
		return nil, err
	}
	return sys, nil
}

// RootToken mints a root token valid for d, for in-process clients. It
// names no current workspace, so it may join any workspace.
func (s *System) RootToken(d time.Duration) (string, error) {
	u := auth.RootUser()
	u.Scope.CurrentWorkspace = ""
	return s.Server.Issuer().Generate(u, d)
}

// ProcessWorker is the built-in process worker, nil with NoWorkers.
func (s *System) ProcessWorker() *process.Worker {
	if len(s.workers) == 0 {
		return nil
	}
	return s.workers[0].Worker
}

func (s *System) registerWorkers(ctx context.Context, pw *process.Worker) error {
	tok, err := s.RootToken(365 * 24 * time.Hour)
	if err != nil {
		_ = pw.Shutdown(ctx)
		return err
	}
	c, err := s.Server.Connect(ctx, rpc.Config{Workspace: "public", ClientID: "builtin-process-worker", Token: tok,
		Logger: s.log.With("component", "process-worker")})
	if err != nil {
		_ = pw.Shutdown(ctx)
		return fmt.Errorf("connect the process worker: %w", err)
	}
	s.clients = append(s.clients, c)
	r, err := process.RegisterWorker(ctx, c, pw, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true, Logger: pw.Options().Logger})
	if err != nil {
		return fmt.Errorf("register the process worker: %w", err)
	}
	s.workers = append(s.workers, r)
	return nil
}

// Close records the apps controller's sessions, stops every session of
// the built-in workers, then stops the server. The controller goes first,
// while the built-in worker still answers: it keeps each session's last
// logs, and after a restart these sessions show stopped because the server
// restarted (docs/apps.md, "Restarts").
func (s *System) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.Server.CloseApps()
	var errs []error
	for _, w := range s.workers {
		errs = append(errs, w.Close(ctx))
	}
	for _, c := range s.clients {
		c.Close()
	}
	errs = append(errs, s.Server.Close())
	return errors.Join(errs...)
}
