// Package hyphaworker registers a worker.Worker as a Hypha service of type
// "server-app-worker" on an *rpc.Client and translates between the wire and
// the worker SDK: it decodes the arguments of start, stop, get_logs, … into
// worker types, attaches the trusted caller to every call (worker.WithCaller),
// enforces workspace isolation and renders results in wire shape.
//
// Register adds the service and returns its full id; Serve registers, waits
// until its context ends (or the connection is closed for good) and then
// unregisters and stops every session.
//
// Access. Every function first applies the worker access rule (Admit): only
// the server's apps controller, root, and (for a worker registered in a user
// workspace) members of that workspace with the permission the function
// needs get through; everyone else gets ErrPermission before the worker sees
// the call.
//
// Isolation. Every admitted call is then confined to the caller's workspace:
// a caller that is not the controller can only see, log, stop or execute
// sessions whose id is "<its workspace>/…"; anything else is reported as
// worker.ErrSessionNotFound, exactly like a missing session. The worker's
// own lookups (worker.Registry.LookupFor, ListFor) apply the same rule a
// second time from the Caller in ctx.
//
// Extension methods. A worker that implements worker.Extender offers extra
// typed functions on the same service (worker.Extension). The adapter
// registers each behind the same rule: Admit with the permission the
// extension declares, the Caller attached to ctx, and, for a session
// extension, the isolation by session id above. RemoteWorker.Call and
// Stream call them from Go.
package hyphaworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// ErrPermission reports a call the caller may not make (see Admit). It is
// rpc.ErrPermission.
var ErrPermission = rpc.ErrPermission

// DefaultShutdownTimeout bounds the final stop of every session in Serve.
const DefaultShutdownTimeout = 30 * time.Second

// Options are the registration and deployment settings of a worker: how
// the host registers it, as opposed to what it is (worker.Properties). One
// worker type can be registered by different hosts with different options.
type Options struct {
	// ServiceID is the service id inside the worker's client; the full id
	// (the server's worker_id) is "<ws>/<client_id>:<ServiceID>". Empty
	// means a slug of Properties().Name: stable across restarts, and unique
	// enough because the client id is part of the full id. Two workers with
	// the same name on one client need explicit ids. (The CLI's
	// --service-id.)
	ServiceID string
	// Visibility defaults to Protected.
	Visibility Visibility
	// AuthorizedWorkspaces lets these workspaces call a Protected worker
	// from outside its own workspace. The server rejects it for other
	// visibilities.
	AuthorizedWorkspaces []string
	// UseLocalURL asks the server to put its local base URL in
	// Config.ServerURL instead of the public one; for workers on the
	// server's host or cluster.
	UseLocalURL bool
	// LocalURL, when set, is the exact URL the server should hand out
	// instead (use_local_url may be a URL string); it overrides UseLocalURL.
	LocalURL string
	// Overwrite replaces a service with the same id on this client.
	Overwrite bool
	// Trusted replaces the rule recognising the server's apps controller
	// (TrustedCaller). Use with care: a trusted caller may call every
	// function and sees every workspace's sessions.
	Trusted func(*rpc.CallContext) bool
	// ShutdownTimeout bounds Serve's final unregister and stop of every
	// session (default DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// Logger receives registration and shutdown events; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Visibility controls who can see and call the worker service.
type Visibility string

// The visibilities the server accepts. The seed also names "private"; the
// server has no such value, so Validate rejects it.
const (
	Public    Visibility = "public"
	Protected Visibility = "protected"
	Unlisted  Visibility = "unlisted"
)

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

// WithDefaults fills Visibility (protected) and ServiceID (slug of p.Name).
func (o Options) WithDefaults(p worker.Properties) Options {
	if o.Visibility == "" {
		o.Visibility = Protected
	}
	if o.ServiceID == "" {
		o.ServiceID = strings.Trim(slugRE.ReplaceAllString(strings.ToLower(p.Name), "-"), "-")
	}
	return o
}

// Validate reports settings (defaults applied for p) the server would
// refuse.
func (o Options) Validate(p worker.Properties) error {
	o = o.WithDefaults(p)
	switch {
	case o.ServiceID == "":
		return fmt.Errorf("%w: service id is empty and cannot be derived from name %q", worker.ErrInvalidConfig, p.Name)
	case strings.ContainsAny(o.ServiceID, "/:@"):
		return fmt.Errorf("%w: service id %q must not contain '/', ':' or '@'", worker.ErrInvalidConfig, o.ServiceID)
	}
	switch o.Visibility {
	case Public, Protected, Unlisted:
	case "private":
		return fmt.Errorf("%w: visibility %q does not exist on the server; use %q", worker.ErrInvalidConfig, o.Visibility, Protected)
	default:
		return fmt.Errorf("%w: unknown visibility %q (want public, protected or unlisted)", worker.ErrInvalidConfig, o.Visibility)
	}
	if len(o.AuthorizedWorkspaces) > 0 && o.Visibility != Protected {
		return fmt.Errorf("%w: authorized workspaces need visibility %q, not %q", worker.ErrInvalidConfig, Protected, o.Visibility)
	}
	if o.LocalURL != "" {
		u, err := url.Parse(o.LocalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: local URL %q is not an http(s) URL", worker.ErrInvalidConfig, o.LocalURL)
		}
	}
	return nil
}

// Check validates the worker's properties and these options together and
// returns both with the defaults applied.
func (o Options) Check(w worker.Worker) (worker.Properties, Options, error) {
	p := w.Properties()
	if err := p.Validate(); err != nil {
		return worker.Properties{}, Options{}, err
	}
	if err := o.Validate(p); err != nil {
		return worker.Properties{}, Options{}, err
	}
	return p, o.WithDefaults(p), nil
}

// ServiceMap returns the data part of the worker's service registration
// (defaults applied), in the shape upstream's get_worker_service()
// produces:
//
//	{"id", "name", "description", "type": "server-app-worker",
//	 "config": {"visibility", "run_in_executor", "require_context"[, "authorized_workspaces"]},
//	 "supported_types": [...], "use_local_url": bool or URL}
//
// Visibility sits under "config"; a top-level visibility is ignored by the
// server. The adapter adds the methods (start, stop, get_logs, …).
func (o Options) ServiceMap(p worker.Properties) map[string]any {
	o = o.WithDefaults(p)
	cfg := map[string]any{
		"visibility":      string(o.Visibility),
		"run_in_executor": p.RunInExecutor,
		"require_context": p.RequireContext,
	}
	if len(o.AuthorizedWorkspaces) > 0 {
		cfg["authorized_workspaces"] = anyList(o.AuthorizedWorkspaces)
	}
	var local any = o.UseLocalURL
	if o.LocalURL != "" {
		local = o.LocalURL
	}
	return map[string]any{
		"id":              o.ServiceID,
		"name":            p.Name,
		"description":     p.Description,
		"type":            worker.ServiceType,
		"config":          cfg,
		"supported_types": anyList(p.SupportedTypes),
		"use_local_url":   local,
	}
}

// anyList converts to the wire list type so that maps built here compare
// equal to decoded ones.
func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// NewService builds the rpc.Service for w without registering it. home is
// the workspace the service will be registered in (Register passes its
// client's workspace): members of a user workspace may use the worker as
// Admit allows; "" or "public" means only the apps controller and root.
//
// The service carries the keys of Options.ServiceMap (type
// "server-app-worker", name, description, supported_types, use_local_url,
// config{visibility, require_context, run_in_executor,
// authorized_workspaces}) and the methods start, stop, list_sessions,
// get_session_info, get_logs, prepare_workspace and close_workspace, plus
// compile, execute and shutdown when w provides them (worker.AsCompiler, …),
// plus w's extension methods (worker.Extender), each guarded by the same
// access rule with the permission it declares and, for a session
// extension, the same isolation by session id as stop. An extension whose
// name is taken, or that is malformed, fails here with
// worker.ErrInvalidConfig.
//
// config.require_context is always true: the adapter needs the caller's
// context for isolation, whatever Properties.RequireContext says.
func NewService(w worker.Worker, opts Options, home string) (rpc.Service, error) {
	p, opts, err := opts.Check(w)
	if err != nil {
		return rpc.Service{}, err
	}
	a := &adapter{w: w, trusted: opts.Trusted, home: home}
	if a.trusted == nil {
		a.trusted = TrustedCaller
	}
	sm := opts.ServiceMap(p)
	fns := map[string]any{
		"supported_types":  sm["supported_types"],
		"use_local_url":    sm["use_local_url"],
		"start":            rpc.HandlerFunc(a.start),
		"stop":             rpc.HandlerFunc(a.stop),
		"list_sessions":    rpc.HandlerFunc(a.listSessions),
		"get_session_info": rpc.HandlerFunc(a.getSessionInfo),
		"get_logs":         rpc.HandlerFunc(a.getLogs),
		"prepare_workspace": rpc.HandlerFunc(func(ctx context.Context, c *rpc.Call) (any, error) {
			return a.workspaceOp(ctx, c, "prepare_workspace", w.PrepareWorkspace)
		}),
		"close_workspace": rpc.HandlerFunc(func(ctx context.Context, c *rpc.Call) (any, error) {
			return a.workspaceOp(ctx, c, "close_workspace", w.CloseWorkspace)
		}),
	}
	if comp, ok := worker.AsCompiler(w); ok {
		a.compiler = comp
		fns[worker.MethodCompile] = rpc.HandlerFunc(a.compile)
	}
	if ex, ok := worker.AsExecutor(w); ok {
		a.executor = ex
		fns[worker.MethodExecute] = rpc.HandlerFunc(a.execute)
	}
	if sd, ok := worker.AsShutdowner(w); ok {
		a.shutdowner = sd
		fns[worker.MethodShutdown] = rpc.HandlerFunc(a.shutdown)
	}
	exts, err := a.extensionFuncs(w, fns)
	if err != nil {
		return rpc.Service{}, err
	}
	maps.Copy(fns, exts)
	return rpc.Service{
		ID:          opts.ServiceID,
		Name:        p.Name,
		Type:        worker.ServiceType,
		Description: p.Description,
		Config: rpc.ServiceConfig{
			Visibility:           string(opts.Visibility),
			RequireContext:       true,
			AuthorizedWorkspaces: opts.AuthorizedWorkspaces,
			RunInExecutor:        p.RunInExecutor,
		},
		Functions: fns,
	}, nil
}

// Register registers w on c and returns the full service id
// ("<workspace>/<client_id>:<service id>", the server's worker_id). The rpc
// client registers it again after every reconnection. The caller owns the
// worker's sessions: stop them (StopAll) and unregister when done, or use
// Serve, which does both.
func Register(ctx context.Context, c *rpc.Client, w worker.Worker, opts Options) (string, error) {
	svc, err := NewService(w, opts, c.Info().Workspace)
	if err != nil {
		return "", err
	}
	var ropts []rpc.RegisterOption
	if opts.Overwrite {
		ropts = append(ropts, rpc.Overwrite())
	}
	id, err := c.RegisterService(ctx, svc, ropts...)
	if err != nil {
		return "", fmt.Errorf("register worker %q: %w", svc.Name, err)
	}
	logger(opts).Debug("hyphaworker: registered", "service", id)
	return id, nil
}

// Serve registers w on c, then blocks until ctx ends or c is closed for
// good. A lost connection is not the end: the rpc client reconnects and
// registers the service again under the same id, the sessions keep
// running, and a restarted server re-adopts them (docs/apps.md, Restarts). It then unregisters the service (if c is still connected) and stops
// every session (StopAll), bounded by opts.ShutdownTimeout. It returns nil
// when ctx ended, and an error when registration failed, the connection was
// closed first, or the shutdown failed.
func Serve(ctx context.Context, c *rpc.Client, w worker.Worker, opts Options) error {
	id, err := Register(ctx, c, w, opts)
	if err != nil {
		// A worker that could not be registered may still hold sessions
		// started in-process; release them too.
		sctx, cancel := shutdownContext(ctx, opts)
		defer cancel()
		return errors.Join(err, StopAll(sctx, w))
	}
	var cause error
	select {
	case <-ctx.Done():
	case <-c.Done():
		cause = fmt.Errorf("worker %s: %w", id, rpc.ErrClosed)
	}
	sctx, cancel := shutdownContext(ctx, opts)
	defer cancel()
	return errors.Join(cause, Shutdown(sctx, c, w, id))
}

// unregisterTimeout bounds Shutdown's unregistration: a server that cannot
// be reached (the client is reconnecting) already forgot the service, and
// the sessions' stop must keep the rest of the caller's time.
const unregisterTimeout = 5 * time.Second

// Shutdown unregisters the service id from c (skipped when c is closed;
// given up after unregisterTimeout, when the server cannot be reached)
// and then stops every session of w (StopAll) with what is left of ctx.
// Both are attempted; the errors are joined.
func Shutdown(ctx context.Context, c *rpc.Client, w worker.Worker, serviceID string) error {
	var errs []error
	select {
	case <-c.Done():
	default:
		uctx, cancel := context.WithTimeout(ctx, unregisterTimeout)
		err := c.UnregisterService(uctx, serviceID)
		cancel()
		if err != nil && !errors.Is(err, rpc.ErrClosed) {
			errs = append(errs, fmt.Errorf("unregister %s: %w", serviceID, err))
		}
	}
	if err := StopAll(ctx, w); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// StopAll stops every session of w: through Shutdown when w provides it,
// else by listing all sessions (an in-process call sees every workspace)
// and stopping each.
func StopAll(ctx context.Context, w worker.Worker) error {
	if sd, ok := worker.AsShutdowner(w); ok {
		return sd.Shutdown(ctx)
	}
	list, err := w.ListSessions(ctx, "")
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	var errs []error
	for _, s := range list {
		if err := w.Stop(ctx, s.SessionID); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.SessionID, err))
		}
	}
	return errors.Join(errs...)
}

func shutdownContext(ctx context.Context, opts Options) (context.Context, context.CancelFunc) {
	d := opts.ShutdownTimeout
	if d <= 0 {
		d = DefaultShutdownTimeout
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

func logger(o Options) *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// ProgressFunc wraps a remote progress_callback into a worker.ProgressFunc;
// nil when v is not a remote function.
func ProgressFunc(v any) worker.ProgressFunc {
	switch f := v.(type) {
	case *rpc.RemoteFunc:
		if f == nil {
			return nil
		}
		return func(ctx context.Context, p worker.Progress) error {
			_, err := f.Call(ctx, p.ToMap())
			return err
		}
	case worker.ProgressFunc:
		return f
	case func(context.Context, worker.Progress) error:
		return f
	}
	return nil
}

// adapter holds the worker and the per-service rules.
type adapter struct {
	w          worker.Worker
	trusted    func(*rpc.CallContext) bool
	home       string // the workspace the worker is registered in
	compiler   worker.Compiler
	executor   worker.Executor
	shutdowner worker.Shutdowner
}

// enter applies the access rule for method and attaches the caller to ctx.
func (a *adapter) enter(ctx context.Context, c *rpc.Call, method string) (context.Context, worker.Caller, error) {
	caller, err := Admit(c.Context, c.Kwargs, a.home, method, a.trusted)
	if err != nil {
		return ctx, worker.Caller{}, err
	}
	return worker.WithCaller(ctx, caller), caller, nil
}

// checkSession applies isolation by session id: the server names sessions
// "<workspace>/<client_id>", so an untrusted caller may only touch ids under
// its own workspace. A foreign id is reported like a missing one.
func checkSession(caller worker.Caller, id string) error {
	if caller.Trusted {
		return nil
	}
	ws, _, ok := strings.Cut(id, "/")
	if !ok || ws == "" || ws != caller.Workspace {
		return worker.SessionNotFound(id)
	}
	return nil
}

// sessionArg reads a required session id argument.
func sessionArg(c *rpc.Call, method string) (string, error) {
	v := c.Arg(0, "session_id")
	id, ok := v.(string)
	if !ok || id == "" {
		return "", fmt.Errorf("%s: %w: session_id: want a non-empty string, got %T", method, worker.ErrInvalidConfig, v)
	}
	return id, nil
}

func (a *adapter) start(ctx context.Context, c *rpc.Call) (any, error) {
	ctx, caller, err := a.enter(ctx, c, "start")
	if err != nil {
		return nil, err
	}
	raw := c.Arg(0, "config")
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("start: %w: config: want a map, got %T", worker.ErrInvalidConfig, raw)
	}
	if !caller.Trusted {
		// Only the caller's own workspace. Fill what the caller left out so
		// that the derived id lands there too.
		if ws, _ := m["workspace"].(string); ws == "" {
			m = cloneMap(m)
			m["workspace"] = caller.Workspace
		}
	}
	cfg, err := worker.ConfigFromMap(m)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if !caller.Trusted {
		if cfg.Workspace != caller.Workspace || checkSession(caller, cfg.ID) != nil {
			return nil, fmt.Errorf("start: %w: a client of workspace %q can only start sessions in it (got workspace %q, id %q)",
				ErrPermission, caller.Workspace, cfg.Workspace, cfg.ID)
		}
	}
	cfg.ProgressFunc = ProgressFunc(cfg.ProgressCallback)
	id, err := a.w.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.ID, err)
	}
	if id == "" {
		id = cfg.ID
	}
	return id, nil
}

func (a *adapter) stop(ctx context.Context, c *rpc.Call) (any, error) {
	ctx, caller, err := a.enter(ctx, c, "stop")
	if err != nil {
		return nil, err
	}
	id, err := sessionArg(c, "stop")
	if err != nil {
		return nil, err
	}
	if err := checkSession(caller, id); err != nil {
		return nil, fmt.Errorf("stop: %w", err)
	}
	if err := a.w.Stop(ctx, id); err != nil {
		return nil, fmt.Errorf("stop %s: %w", id, err)
	}
	return nil, nil
}

func (a *adapter) listSessions(ctx context.Context, c *rpc.Call) (any, error) {
	ctx, caller, err := a.enter(ctx, c, "list_sessions")
	if err != nil {
		return nil, err
	}
	v := c.Arg(0, "workspace")
	ws, ok := v.(string)
	if v != nil && !ok {
		return nil, fmt.Errorf("list_sessions: %w: workspace: want a string, got %T", worker.ErrInvalidConfig, v)
	}
	if !caller.Trusted {
		if ws == "" {
			ws = caller.Workspace
		}
		if ws != caller.Workspace || ws == "" {
			return []any{}, nil
		}
	}
	list, err := a.w.ListSessions(ctx, ws)
	if err != nil {
		return nil, fmt.Errorf("list_sessions: %w", err)
	}
	out := make([]any, 0, len(list))
	for _, s := range list {
		if !caller.Trusted && s.Workspace != caller.Workspace {
			continue // the worker ignored the caller; do not leak
		}
		out = append(out, s.ToMap())
	}
	return out, nil
}

func (a *adapter) getSessionInfo(ctx context.Context, c *rpc.Call) (any, error) {
	ctx, caller, err := a.enter(ctx, c, "get_session_info")
	if err != nil {
		return nil, err
	}
	id, err := sessionArg(c, "get_session_info")
	if err != nil {
		return nil, err
	}
	if err := checkSession(caller, id); err != nil {
		return nil, fmt.Errorf("get_session_info: %w", err)
	}
	info, err := a.w.GetSessionInfo(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get_session_info: %w", err)
	}
	if !caller.Trusted && info.Workspace != caller.Workspace {
		return nil, fmt.Errorf("get_session_info: %w", worker.SessionNotFound(id))
	}
	return info.ToMap(), nil
}

func (a *adapter) getLogs(ctx context.Context, c *rpc.Call) (any, error) {
	ctx, caller, err := a.enter(ctx, c, "get_logs")
	if err != nil {
		return nil, err
	}
	id, err := sessionArg(c, "get_logs")
	if err != nil {
		return nil, err
	}
	if err := checkSession(caller, id); err != nil {
		return nil, fmt.Errorf("get_logs: %w", err)
	}
	q, err := worker.ParseLogQuery(c.Arg(1, "type"), c.Arg(2, "offset"), c.Arg(3, "limit"))
	if err == nil {
		q, err = worker.ParseLogFollow(q, c.Arg(4, "wait"), c.Arg(5, "follower"))
	}
	if err != nil {
		return nil, fmt.Errorf("get_logs: %w", err)
	}
	if q.Follower != "" && !caller.Trusted {
		// A follower holds the app back when it reads slowly: that takes
		// the permission to stop the session, not just to read it.
		if _, err := Admit(c.Context, c.Kwargs, a.home, "stop", a.trusted); err != nil {
			return nil, fmt.Errorf("get_logs: %w: follower (holding back the app's output) needs the permission to stop the session: %v", ErrPermission, err)
		}
	}
	page, err := a.w.GetLogs(ctx, id, q)
	if err != nil {
		return nil, fmt.Errorf("get_logs: %w", err)
	}
	if lw, ok := a.w.(LogsWirer); ok {
		return lw.LogsWire(page), nil
	}
	return page.ToMap(), nil
}

// LogsWirer is implemented by a worker whose get_logs answers some
// queries on the wire with something other than a page: the terminal
// worker answers type "screen" with the bare screen text, as upstream's
// terminal worker does, because upstream's apps controller passes a
// worker's answer to its clients unchanged. RemoteWorker.GetLogs takes a
// bare string back as a one-item page.
type LogsWirer interface {
	LogsWire(page worker.LogPage) any
}

func (a *adapter) workspaceOp(ctx context.Context, c *rpc.Call, method string, op func(context.Context, string) error) (any, error) {
	ctx, caller, err := a.enter(ctx, c, method)
	if err != nil {
		return nil, err
	}
	v := c.Arg(0, "workspace")
	ws, ok := v.(string)
	if v != nil && !ok {
		return nil, fmt.Errorf("%s: %w: workspace: want a string, got %T", method, worker.ErrInvalidConfig, v)
	}
	if ws == "" {
		ws = caller.Workspace
	}
	if ws == "" {
		return nil, fmt.Errorf("%s: %w: no workspace given", method, worker.ErrInvalidConfig)
	}
	if !caller.Trusted && ws != caller.Workspace {
		return nil, fmt.Errorf("%s: %w: a client of workspace %q cannot act on workspace %q", method, ErrPermission, caller.Workspace, ws)
	}
	if err := op(ctx, ws); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, ws, err)
	}
	return nil, nil
}

func (a *adapter) compile(ctx context.Context, c *rpc.Call) (any, error) {
	ctx, _, err := a.enter(ctx, c, worker.MethodCompile)
	if err != nil {
		return nil, err
	}
	req, err := worker.CompileRequestFromArgs(c.Arg(0, "manifest"), c.Arg(1, "files"), c.Arg(2, "config"))
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	req.Config.ProgressFunc = ProgressFunc(req.Config.ProgressCallback)
	res, err := a.compiler.Compile(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	return res.ToList(), nil
}

func (a *adapter) execute(ctx context.Context, c *rpc.Call) (any, error) {
	ctx, caller, err := a.enter(ctx, c, "execute")
	if err != nil {
		return nil, err
	}
	id, err := sessionArg(c, "execute")
	if err != nil {
		return nil, err
	}
	if err := checkSession(caller, id); err != nil {
		return nil, fmt.Errorf("execute: %w", err)
	}
	script, ok := c.Arg(1, "script").(string)
	if !ok {
		return nil, fmt.Errorf("execute: %w: script: want a string, got %T", worker.ErrInvalidConfig, c.Arg(1, "script"))
	}
	req := worker.ExecuteRequest{SessionID: id, Script: script, ProgressCallback: c.Arg(3, "progress_callback")}
	if v := c.Arg(2, "config"); v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("execute: %w: config: want a map, got %T", worker.ErrInvalidConfig, v)
		}
		req.Config = m
	}
	for k, v := range c.Kwargs {
		switch k {
		case "session_id", "script", "config", "progress_callback", "context":
		default:
			if req.Extra == nil {
				req.Extra = map[string]any{}
			}
			req.Extra[k] = v
		}
	}
	req.ProgressFunc = ProgressFunc(req.ProgressCallback)
	res, err := a.executor.Execute(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("execute %s: %w", id, err)
	}
	return res, nil
}

// shutdown stops the whole worker: the apps controller, root, or an admin
// of the (user) workspace the worker is registered in (upstream leaves it
// open to anyone who can reach the service, which lets one workspace stop
// every other's apps).
//
// Once allowed, Shutdown runs without a Caller in ctx (as an in-process
// call): it is a worker-wide operation and must reach every workspace.
func (a *adapter) shutdown(ctx context.Context, c *rpc.Call) (any, error) {
	if _, err := Admit(c.Context, c.Kwargs, a.home, worker.MethodShutdown, a.trusted); err != nil {
		return nil, err
	}
	if err := a.shutdowner.Shutdown(ctx); err != nil {
		return nil, fmt.Errorf("shutdown: %w", err)
	}
	return nil, nil
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}
