// Package mcpproxy is the MCP proxy worker (app type "mcp-server"): an app
// is a set of MCP servers (streamable HTTP, SSE or a local stdio command);
// the worker connects to them and registers, as the app, one Hypha service
// per server whose tools, resources and prompts call the server.
//
// See docs/workers.md, "MCP proxy worker".
package mcpproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// AppType is the app type this worker runs.
const AppType = "mcp-server"

// DefaultMaxSessions caps concurrent apps.
const DefaultMaxSessions = 100

// Options configure the worker.
type Options struct {
	MaxSessions int
	// AllowStdio lets manifests start local stdio servers: any command,
	// run as a session of the platform's process supervisor exactly as
	// the process worker runs an app (see the fields below). Enable it
	// where whoever may start an app may run a program on this host.
	AllowStdio bool
	// AppUser, AppUIDBase/AppUIDCount, RunAsWorkerUser, NoSupervisor,
	// NoPIDNamespace, StopGrace and WorkDir choose who stdio servers run
	// as and how they are supervised and stopped, exactly as for the
	// process worker (see internal/localproc.Options).
	AppUser                 string
	AppUIDBase, AppUIDCount int
	RunAsWorkerUser         bool
	NoSupervisor            bool
	NoPIDNamespace          bool
	StopGrace               time.Duration
	WorkDir                 string
	// MaxMessageBytes bounds one message the proxy reads from an MCP
	// server (a line of a stdio server, an HTTP response body, an event
	// of an event stream); default DefaultMaxMessageBytes.
	MaxMessageBytes int
	Logger          *slog.Logger
}

// Worker is the MCP proxy worker.
type Worker struct {
	worker.Base
	opts   Options
	log    *slog.Logger
	runner *localproc.Runner // stdio servers
}

// New returns a worker.
func New(opts Options) *Worker {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	w := &Worker{opts: opts, log: opts.Logger}
	w.runner = localproc.New(localproc.Options{
		AppUser: opts.AppUser, AppUIDBase: opts.AppUIDBase, AppUIDCount: opts.AppUIDCount,
		RunAsWorkerUser: opts.RunAsWorkerUser, NoSupervisor: opts.NoSupervisor, NoPIDNamespace: opts.NoPIDNamespace,
		// The uid range is checked for one stdio server per app; an app
		// with several leases one uid each, and a lease past the end of
		// the range fails that server's start with the range's error.
		MaxSessions: opts.MaxSessions, StopGrace: opts.StopGrace, WorkDir: opts.WorkDir, Logger: opts.Logger,
	})
	w.Base = worker.Base{Sessions: worker.NewRegistry(worker.RegistryOptions{MaxSessions: opts.MaxSessions, Logger: opts.Logger}), Stopper: w}
	return w
}

// Options are the effective options.
func (w *Worker) Options() Options { return w.opts }

// Properties implements worker.Worker.
func (w *Worker) Properties() worker.Properties {
	return worker.Properties{Name: "MCP Proxy Worker", Description: "Registers the tools, resources and prompts of MCP servers as Hypha services",
		SupportedTypes: []string{AppType}, RequireContext: true}
}

// Compile validates manifest.mcpServers (merged over the "source" file's,
// as upstream does) and writes the final manifest as the "source" file.
func (w *Worker) Compile(ctx context.Context, req worker.CompileRequest) (worker.CompileResult, error) {
	man := maps.Clone(map[string]any(req.Manifest))
	if man == nil {
		man = map[string]any{}
	}
	if t := req.Manifest.Type(); t != AppType {
		return worker.CompileResult{Manifest: man, Files: req.Files}, nil
	}
	src, err := sourceServers(req.Files)
	if err != nil {
		return worker.CompileResult{}, err
	}
	servers := maps.Clone(src)
	if servers == nil {
		servers = map[string]any{}
	}
	if m, ok := man["mcpServers"].(map[string]any); ok {
		maps.Copy(servers, m) // the manifest wins
	} else if v, ok := man["mcpServers"]; ok && v != nil {
		return worker.CompileResult{}, fmt.Errorf("%w: mcpServers must be an object, got %T", ErrManifest, v)
	}
	man["mcpServers"] = servers
	if _, err := ParseServers(man); err != nil {
		return worker.CompileResult{}, err
	}
	if _, err := filesToStage(man); err != nil {
		return worker.CompileResult{}, err
	}
	if _, ok := man["name"]; !ok {
		man["name"] = "MCP Server"
	}
	if _, ok := man["wait_for_service"]; !ok {
		man["wait_for_service"] = "default"
	}
	files := make([]worker.File, 0, len(req.Files)+1)
	for _, f := range req.Files {
		if f.Name != "source" && f.Path != "source" {
			files = append(files, f)
		}
	}
	srcMan := maps.Clone(man)
	delete(srcMan, "wait_for_service")
	files = append(files, worker.File{Path: "source", Name: "source", Content: srcMan, Format: "json"})
	return worker.CompileResult{Manifest: man, Files: files}, nil
}

// app is one running app: its rpc client (the app's identity), links
// and the working directory of its stdio servers. A stop may arrive while
// the start still fills it in, so every field is set under mu, and
// nothing is added once it is closed.
type app struct {
	mu     sync.Mutex
	closed bool
	client *rpc.Client
	links  []*link
	dir    string // the staged files_to_stage

	ctx     context.Context // ends with close: the refreshers end
	cancel  context.CancelFunc
	refresh sync.WaitGroup
}

// keep records what the start made; false (and x is released) when the
// app was closed meanwhile.
func (a *app) keep(client *rpc.Client, l *link, dir string) bool {
	a.mu.Lock()
	if !a.closed {
		if client != nil {
			a.client = client
		}
		if l != nil {
			a.links = append(a.links, l)
		}
		if dir != "" {
			a.dir = dir
		}
		a.mu.Unlock()
		return true
	}
	a.mu.Unlock()
	if client != nil {
		_ = client.Close()
	}
	if l != nil {
		l.close()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	return false
}

func (a *app) snapshot() (*rpc.Client, []*link) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.client, slices.Clone(a.links)
}

func (a *app) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	client, links, dir := a.client, a.links, a.dir
	a.mu.Unlock()
	a.cancel()
	a.refresh.Wait()
	for _, l := range links {
		l.close()
	}
	if client != nil {
		_ = client.Close()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// Start connects to the manifest's servers and registers their services
// as the app. One configured server that fails fails the start; with
// several, the failed ones are logged and skipped, and the start fails
// only when none connected (upstream's rule).
func (w *Worker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	progress := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{})
	defer progress.Close(ctx)
	specs, err := ParseServers(cfg.Manifest)
	if err != nil {
		return "", err
	}
	s, err := w.Sessions.CreateFromConfig(cfg, nil)
	if err != nil {
		return "", err
	}
	// Progress goes to the caller only while the start runs; the log
	// keeps everything (bounded by the LogStore).
	var starting atomic.Bool
	starting.Store(true)
	defer starting.Store(false)
	logf := func(typ worker.LogType, format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		s.Log(typ, msg)
		if !starting.Load() {
			return
		}
		switch typ {
		case worker.LogError:
			progress.Error(msg)
		case worker.LogInfo:
			progress.Info(msg)
		}
	}
	a := &app{}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	s.SetHandle(a)
	fail := func(err error) (string, error) {
		a.close()
		return "", w.Sessions.Discard(s, err)
	}
	// A stop during the start (the session's context ends) aborts it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.Context(), cancel)()
	logf(worker.LogInfo, "connecting to the Hypha server as %s", cfg.ClientID)
	client, err := rpc.Connect(ctx, rpc.Config{ServerURL: cfg.ServerURL, Workspace: cfg.Workspace, ClientID: cfg.ClientID,
		Token: cfg.Token, InsecureSkipVerify: cfg.DisableSSL, Logger: w.log.With("app", cfg.ID)})
	if err != nil {
		return fail(fmt.Errorf("connect the app to the Hypha server: %w", err))
	}
	if !a.keep(client, nil, "") {
		return fail(fmt.Errorf("start: %w", context.Canceled))
	}
	if slices.ContainsFunc(specs, func(s ServerSpec) bool { return s.Type == TransportStdio }) && w.opts.AllowStdio {
		files, err := filesToStage(cfg.Manifest)
		dir := ""
		if err == nil {
			dir, err = stage(ctx, cfg, files)
		}
		if err != nil {
			return fail(err)
		}
		if !a.keep(nil, nil, dir) {
			return fail(fmt.Errorf("start: %w", context.Canceled))
		}
	}
	var stdio *stdioEnv
	if w.opts.AllowStdio {
		a.mu.Lock()
		stdio = &stdioEnv{runner: w.runner, staged: a.dir, logs: s.Logs(), logCtx: s.Context()}
		a.mu.Unlock()
	}
	var errs []error
	var live []*link
	for _, spec := range specs {
		l := newLink(spec, stdio, w.opts.MaxMessageBytes, logf)
		if !a.keep(nil, l, "") {
			return fail(fmt.Errorf("start: %w", context.Canceled))
		}
		svc, err := buildService(ctx, l, cfg.AppID, logf)
		if err == nil {
			_, err = client.RegisterService(ctx, svc, rpc.Overwrite())
		}
		if err != nil {
			err = fmt.Errorf("MCP server %s: %w", spec.Name, err)
			logf(worker.LogError, "%v", err)
			errs = append(errs, err)
			l.close()
			continue
		}
		live = append(live, l)
		logf(worker.LogInfo, "registered service %s", describe(client, svc))
	}
	if len(errs) == len(specs) {
		if len(errs) == 1 {
			return fail(errs[0])
		}
		return fail(fmt.Errorf("no MCP server connected: %w", errors.Join(errs...)))
	}
	if _, err := client.RegisterService(ctx, rpc.Service{ID: "default", Name: "default", Description: "MCP proxy app " + cfg.AppID,
		AppID: cfg.AppID, Functions: map[string]any{"setup": func() {}}}, rpc.Overwrite()); err != nil {
		return fail(fmt.Errorf("register the default service: %w", err))
	}
	if err := s.SetStatus(worker.StatusRunning); err != nil {
		a.close()
		return "", err
	}
	for _, l := range live {
		a.startRefresher(l, client, cfg.AppID, s.Log)
	}
	return s.ID(), nil
}

// describe names a registered service by its full id, with what it has.
func describe(client *rpc.Client, svc rpc.Service) string {
	tools := svc.Functions["tools"].(map[string]any)
	info := client.Info()
	return fmt.Sprintf("%s/%s:%s (%d tools%s, %d resources, %d prompts)", info.Workspace, info.ClientID, svc.ID,
		len(tools), toolNames(tools), len(svc.Functions["resources"].(map[string]any)), len(svc.Functions["prompts"].(map[string]any)))
}

// RefreshTimeout bounds one re-listing and registration of a server's
// service.
const RefreshTimeout = time.Minute

// startRefresher keeps l's service equal to what the server lists: on a
// list_changed notification (tools, resources or prompts) and after each
// reconnect, it lists again and registers the service anew (overwriting
// it, so a removed tool leaves no function behind). A listing that fails
// keeps the service as it was, with an error log.
func (a *app) startRefresher(l *link, client *rpc.Client, appID string, log func(worker.LogType, string)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	logf := func(typ worker.LogType, format string, args ...any) { log(typ, fmt.Sprintf(format, args...)) }
	a.refresh.Add(1)
	go func() {
		defer a.refresh.Done()
		for {
			select {
			case <-a.ctx.Done():
				return
			case <-l.changed:
			}
			ctx, cancel := context.WithTimeout(a.ctx, RefreshTimeout)
			svc, err := buildService(ctx, l, appID, logf)
			if err == nil {
				_, err = client.RegisterService(ctx, svc, rpc.Overwrite())
			}
			switch {
			case err != nil && ctx.Err() == nil:
				logf(worker.LogError, "MCP server %s: refresh its service: %v (the service stays as it was)", l.spec.Name, err)
			case err == nil:
				logf(worker.LogInfo, "re-registered service %s", describe(client, svc))
			}
			cancel()
		}
	}()
}

// Stop closes every MCP session, kills stdio servers and disconnects the
// app's client, so that its services are gone.
func (w *Worker) Stop(ctx context.Context, id string) error {
	return w.Sessions.StopSession(ctx, id, func(ctx context.Context, s *worker.Session) error {
		if a, ok := worker.HandleOf[*app](s); ok && a != nil {
			if client, _ := a.snapshot(); client != nil {
				_ = client.Disconnect(ctx)
			}
			a.close()
		}
		return nil
	})
}

// Shutdown stops every session, then releases the uids of stdio servers.
func (w *Worker) Shutdown(ctx context.Context) error {
	var errs []error
	for _, si := range w.Sessions.List("") {
		if err := w.Stop(ctx, si.SessionID); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		w.runner.Close()
	}
	return errors.Join(errs...)
}

// links of a session; for tests.
func (w *Worker) links(id string) []*link {
	s, err := w.Sessions.Lookup(id)
	if err != nil {
		return nil
	}
	a, _ := worker.HandleOf[*app](s)
	if a == nil {
		return nil
	}
	_, links := a.snapshot()
	return links
}

// toolNames lists up to 20 tool names for the log, sorted: ": a, b, c".
func toolNames(tools map[string]any) string {
	if len(tools) == 0 {
		return ""
	}
	names := slices.Sorted(maps.Keys(tools))
	more := ""
	if len(names) > 20 {
		names, more = names[:20], fmt.Sprintf(", … %d more", len(names)-20)
	}
	return ": " + strings.Join(names, ", ") + more
}
