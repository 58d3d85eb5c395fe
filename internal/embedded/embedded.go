// Package embedded starts the complete embedded system in-process: the
// server, its apps controller, and the built-in workers registered in the
// public workspace, so that nothing else needs to be installed.
//
// This is the host: it composes the parts, which do not know each other.
// The server gets the apps controller through its hook (server.Config.Apps
// = apps.ForServer); each built-in worker is a plain worker.Worker that
// the host checks and registers with hyphaworker (the registration options
// are the host's choice), on an in-process client of the server.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hypha-go/hypha/internal/condaenv"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/browser"
	"github.com/hypha-go/hypha/workers/conda"
	"github.com/hypha-go/hypha/workers/k8s"
	"github.com/hypha-go/hypha/workers/mcpproxy"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/hypha-go/hypha/workers/terminal"
)

// Options for Start.
type Options struct {
	// Server configures the server. With a DataDir (and no Server.Apps of
	// its own) the system runs the apps controller with Apps' limits.
	Server server.Config
	// Apps bounds app installation (see apps.Limits for the defaults).
	Apps apps.Limits
	// Addr to listen on, e.g. "127.0.0.1:9527" or "127.0.0.1:0".
	Addr string
	// NoWorkers skips registering the built-in workers.
	NoWorkers bool
	// Process configures the built-in process worker.
	Process process.Options
	// Conda configures the built-in conda worker, registered only when an
	// environment manager is found (micromamba, mamba, conda, or
	// Conda.CondaPath). Who its sessions run as and where they work
	// default to the process worker's settings. NoConda skips it.
	Conda   conda.Options
	NoConda bool
	// Browser configures the built-in browser worker (window, iframe,
	// web-worker and web-app apps in headless Chromium), registered only
	// when a Chromium is found (Browser.ChromiumPath, or /usr/bin/chromium,
	// chromium-headless-shell, chromium, chromium-browser). No browser
	// starts before its first session. NoBrowser skips it.
	Browser   browser.Options
	NoBrowser bool
	// K8s configures the built-in Kubernetes worker (internal/embedded/k8s.go).
	K8s K8sOptions
	// Terminal configures the built-in terminal worker (app type
	// terminal), always registered unless NoTerminal. Who its sessions run
	// as and where they work default to the process worker's settings.
	Terminal   terminal.Options
	NoTerminal bool
	// MCPProxy configures the built-in MCP proxy worker (app type
	// mcp-server, internal/embedded/mcpproxy.go), registered unless
	// NoWorkers or NoMCPProxy.
	MCPProxy   mcpproxy.Options
	NoMCPProxy bool
}

// System is a running embedded server with its built-in workers.
type System struct {
	Server  *server.Server
	process *process.Worker
	conda   *conda.Worker
	// condaNote says why conda apps are unavailable (empty when the
	// conda worker runs).
	condaNote string
	browser   *browser.Worker
	// browserNote says why browser apps are unavailable (empty when the
	// browser worker runs).
	browserNote string
	// The Kubernetes worker (k8s.go), and why it is not running.
	k8sWorker          *k8s.Worker
	k8sSource, k8sNote string
	workers            []*hyphaworker.Hosted
	clients            []*rpc.Client
	log                *slog.Logger
	terminal           *terminal.Worker
	mcpProxy           *mcpproxy.Worker
}

// Start creates the server, starts listening on o.Addr and registers the
// built-in workers.
func Start(ctx context.Context, o Options) (*System, error) {
	if o.Server.Logger == nil {
		o.Server.Logger = slog.Default()
	}
	if o.Server.Apps == nil {
		o.Server.Apps = apps.ForServer(o.Apps)
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
	// The conda worker too is checked before listening (finding the
	// manager runs it), so that it is registered when the server is ready.
	var cw *conda.Worker
	condaNote := "disabled"
	if !o.NoWorkers && !o.NoConda {
		cw, condaNote = checkConda(ctx, condaOptions(o), o.Server.Logger)
	}
	var bw *browser.Worker
	browserNote := "disabled"
	if !o.NoWorkers && !o.NoBrowser {
		bw, browserNote = checkBrowser(ctx, o.Browser, o.Server.Logger)
	}
	if err := srv.Start(o.Addr); err != nil {
		if pw != nil {
			_ = pw.Shutdown(ctx)
		}
		if cw != nil {
			_ = cw.Shutdown(ctx)
		}
		if bw != nil {
			_ = bw.Shutdown(ctx)
		}
		srv.Close()
		return nil, err
	}
	sys := &System{Server: srv, log: o.Server.Logger, condaNote: condaNote, browserNote: browserNote}
	if o.NoWorkers {
		return sys, nil
	}
	if err := sys.registerWorkers(ctx, pw); err != nil {
		if cw != nil {
			_ = cw.Shutdown(ctx)
		}
		if bw != nil {
			_ = bw.Shutdown(ctx)
		}
		sys.Close()
		return nil, err
	}
	if cw != nil {
		if err := sys.registerConda(ctx, cw); err != nil {
			if bw != nil {
				_ = bw.Shutdown(ctx)
			}
			sys.Close()
			return nil, err
		}
	}
	if bw != nil {
		if err := sys.registerBrowser(ctx, bw); err != nil {
			sys.Close()
			return nil, err
		}
	}
	sys.startK8s(ctx, o.K8s)
	sys.registerA2A(ctx) // a2a.go
	if !o.NoTerminal {
		if err := sys.registerTerminal(ctx, o); err != nil {
			sys.Close()
			return nil, err
		}
	}
	if !o.NoWorkers && !o.NoMCPProxy {
		if err := sys.registerMCPProxy(ctx, o); err != nil {
			sys.Close()
			return nil, err
		}
	}
	return sys, nil
}

// checkBrowser makes the browser worker and finds Chromium; it returns nil
// and why when browser apps are unavailable.
func checkBrowser(ctx context.Context, bo browser.Options, log *slog.Logger) (*browser.Worker, string) {
	if bo.Logger == nil {
		bo.Logger = log.With("component", "browser-worker")
	}
	bw := browser.New(bo)
	if err := bw.Check(ctx); err != nil {
		_ = bw.Shutdown(ctx)
		log.Warn("browser apps (window, web-app) are unavailable", "reason", err.Error())
		return nil, err.Error()
	}
	return bw, ""
}

// registerBrowser registers the checked browser worker in public.
func (s *System) registerBrowser(ctx context.Context, bw *browser.Worker) error {
	tok, err := s.RootToken(365 * 24 * time.Hour)
	if err != nil {
		_ = bw.Shutdown(ctx)
		return err
	}
	c, err := s.Server.Connect(ctx, rpc.Config{Workspace: "public", ClientID: "builtin-browser-worker", Token: tok,
		Logger: s.log.With("component", "browser-worker")})
	if err != nil {
		_ = bw.Shutdown(ctx)
		return fmt.Errorf("connect the browser worker: %w", err)
	}
	s.clients = append(s.clients, c)
	h, err := hyphaworker.Host(ctx, c, bw, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true, Logger: bw.Options().Logger})
	if err != nil {
		return fmt.Errorf("register the browser worker: %w", err)
	}
	s.browser = bw
	s.workers = append(s.workers, h)
	s.log.Info("browser worker registered", "chromium", bw.ChromiumPath())
	return nil
}

// BrowserWorker is the built-in browser worker, nil when it is not running
// (see BrowserStatus).
func (s *System) BrowserWorker() *browser.Worker { return s.browser }

// BrowserStatus says, for start-up messages, which Chromium the browser
// worker uses, or why browser apps are unavailable.
func (s *System) BrowserStatus() string {
	if s.browser == nil {
		if s.browserNote == "" {
			return "browser apps unavailable"
		}
		return "browser apps unavailable: " + s.browserNote
	}
	return fmt.Sprintf("browser (window, iframe, web-worker, web-python, hypha, web-app) with %s", s.browser.ChromiumPath())
}

// condaOptions are o.Conda with the process worker's user and working
// directory settings where o.Conda leaves them empty.
func condaOptions(o Options) conda.Options {
	co, po := o.Conda, o.Process
	if co.AppUser == "" && co.AppUIDBase == 0 && co.AppUIDCount == 0 && !co.RunAsWorkerUser {
		co.AppUser, co.AppUIDBase, co.AppUIDCount, co.RunAsWorkerUser = po.AppUser, po.AppUIDBase, po.AppUIDCount, po.RunAsWorkerUser
	}
	if co.WorkDir == "" {
		co.WorkDir = po.WorkDir
	}
	if co.Logger == nil {
		co.Logger = o.Server.Logger.With("component", "conda-worker")
	}
	return co
}

// checkConda makes the conda worker and finds its environment manager; it
// returns nil and why when conda apps are unavailable.
func checkConda(ctx context.Context, co conda.Options, log *slog.Logger) (*conda.Worker, string) {
	cw := conda.New(co)
	if err := cw.Check(ctx); err != nil {
		_ = cw.Shutdown(ctx)
		note := err.Error()
		if errors.Is(err, condaenv.ErrNoManager) {
			note = "no environment manager found (micromamba, mamba or conda on PATH, or --conda-path)"
		}
		log.Warn("conda-jupyter-kernel apps are unavailable", "reason", note)
		return nil, note
	}
	return cw, ""
}

// registerConda registers the checked conda worker in public.
func (s *System) registerConda(ctx context.Context, cw *conda.Worker) error {
	tok, err := s.RootToken(365 * 24 * time.Hour)
	if err != nil {
		_ = cw.Shutdown(ctx)
		return err
	}
	c, err := s.Server.Connect(ctx, rpc.Config{Workspace: "public", ClientID: "builtin-conda-worker", Token: tok,
		Logger: s.log.With("component", "conda-worker")})
	if err != nil {
		_ = cw.Shutdown(ctx)
		return fmt.Errorf("connect the conda worker: %w", err)
	}
	s.clients = append(s.clients, c)
	h, err := hyphaworker.Host(ctx, c, cw, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true, Logger: cw.Options().Logger})
	if err != nil {
		return fmt.Errorf("register the conda worker: %w", err)
	}
	s.conda = cw
	s.workers = append(s.workers, h)
	m := cw.Manager()
	s.log.Info("conda worker registered", "manager", m.Name, "path", m.Path, "cache", cw.CacheDir())
	return nil
}

// CondaWorker is the built-in conda worker, nil when it is not running
// (see CondaStatus).
func (s *System) CondaWorker() *conda.Worker { return s.conda }

// CondaStatus says, for start-up messages, which environment manager the
// conda worker uses, or why conda apps are unavailable.
func (s *System) CondaStatus() string {
	if s.conda == nil {
		if s.condaNote == "" {
			return "conda apps unavailable"
		}
		return "conda apps unavailable: " + s.condaNote
	}
	m := s.conda.Manager()
	v := ""
	if m.Version != "" {
		v = ", " + m.Version
	}
	return fmt.Sprintf("conda (conda-jupyter-kernel) with %s (%s%s), environments in %s", m.Name, m.Path, v, s.conda.CacheDir())
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
	return s.process
}

// HostProcessWorker checks w (who apps run as, which interpreters; a
// problem shows now, at start-up) and registers it on c with opts, as the
// system registers its built-in one. On failure w is shut down.
func HostProcessWorker(ctx context.Context, c *rpc.Client, w *process.Worker, opts hyphaworker.Options) (*hyphaworker.Hosted, error) {
	if err := w.Check(ctx); err != nil {
		_ = w.Shutdown(ctx)
		return nil, err
	}
	return hyphaworker.Host(ctx, c, w, opts)
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
	// In public, visible to every workspace, and handed the server's local
	// URL: it runs next to the server.
	h, err := HostProcessWorker(ctx, c, pw, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true, Logger: pw.Options().Logger})
	if err != nil {
		return fmt.Errorf("register the process worker: %w", err)
	}
	s.process = pw
	s.workers = append(s.workers, h)
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
