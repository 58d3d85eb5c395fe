package hyphaworker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// RemoteWorker is a server-app-worker service seen through the worker API:
// the counterpart of the adapter (NewService). The adapter turns wire calls
// into worker.Worker calls; RemoteWorker turns worker.Worker calls into wire
// calls, with the same conversions (worker/wire.go), so that a worker in any
// language (ours, upstream's Python workers, JavaScript workers) is driven
// through one Go type. The apps controller makes every worker call through
// it.
//
// The caller context. Every call sends the `context` keyword argument built
// from the worker.Caller in ctx (worker.WithCaller; Caller.ToMap), as
// upstream's controller does; without a Caller none is sent. The receiving
// adapter never trusts that map: trust comes from the server-stamped call.
//
// Errors. A remote error whose text says the session was not found (and
// names it) also matches worker.ErrSessionNotFound; the text is unchanged.
type RemoteWorker struct {
	svc *rpc.RemoteService
}

// Remote wraps a fetched worker service (rpc.Client.GetService).
func Remote(svc *rpc.RemoteService) *RemoteWorker { return &RemoteWorker{svc: svc} }

var (
	_ worker.Worker          = (*RemoteWorker)(nil)
	_ worker.Compiler        = (*RemoteWorker)(nil)
	_ worker.Executor        = (*RemoteWorker)(nil)
	_ worker.Shutdowner      = (*RemoteWorker)(nil)
	_ worker.MethodSupporter = (*RemoteWorker)(nil)
)

// Service is the wrapped service (for its id and for extension methods,
// which are not part of the worker API).
func (r *RemoteWorker) Service() *rpc.RemoteService { return r.svc }

// Has reports whether the service provides method (worker.MethodStart, …).
// Workers in other languages may leave out the bookkeeping ones.
func (r *RemoteWorker) Has(method string) bool { return r.svc.Func(method) != nil }

// SupportsMethod lets worker.AsCompiler, AsExecutor and AsShutdowner report
// only what the remote service provides.
func (r *RemoteWorker) SupportsMethod(name string) bool { return r.Has(name) }

// Properties reads what the worker is from its registration: name,
// description, supported types, and the rpc hints.
func (r *RemoteWorker) Properties() worker.Properties {
	p := worker.Properties{Name: r.svc.Name, Description: r.svc.Description}
	p.SupportedTypes = stringList(r.svc.Get("supported_types"))
	p.RequireContext, _ = r.svc.Config["require_context"].(bool)
	p.RunInExecutor, _ = r.svc.Config["run_in_executor"].(bool)
	return p
}

// Options reads the registration settings back from the service:
// ServiceID (the id inside its client), Visibility, AuthorizedWorkspaces,
// UseLocalURL and LocalURL (use_local_url is a bool or a URL string).
func (r *RemoteWorker) Options() Options {
	var o Options
	o.ServiceID = r.svc.ID
	if _, after, ok := strings.Cut(o.ServiceID, ":"); ok {
		o.ServiceID = after
	}
	if v, _ := r.svc.Config["visibility"].(string); v != "" {
		o.Visibility = Visibility(v)
	}
	o.AuthorizedWorkspaces = stringList(r.svc.Config["authorized_workspaces"])
	switch v := r.svc.Get("use_local_url").(type) {
	case bool:
		o.UseLocalURL = v
	case string:
		o.UseLocalURL, o.LocalURL = v != "", v
	}
	return o
}

func stringList(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = append(out, l...)
	}
	return out
}

// call calls method with args and the caller context of ctx as keyword.
func (r *RemoteWorker) call(ctx context.Context, method string, kw rpc.Kwargs, args ...any) (any, error) {
	if c, ok := worker.CallerFromContext(ctx); ok {
		if kw == nil {
			kw = rpc.Kwargs{}
		}
		kw[worker.KeyContext] = c.ToMap()
	}
	if kw != nil {
		args = append(args, kw)
	}
	if !r.Has(method) {
		return nil, fmt.Errorf("%w: worker %s has no %s", worker.ErrNotSupported, r.svc.ID, method)
	}
	return r.svc.Call(ctx, method, args...)
}

// sessionErr marks a remote "session not found" answer for id as
// worker.ErrSessionNotFound, keeping its text.
func sessionErr(err error, id string) error {
	if err == nil || errors.Is(err, worker.ErrSessionNotFound) {
		return err
	}
	msg := err.Error()
	if strings.Contains(strings.ToLower(msg), "not found") && strings.Contains(msg, id) {
		return &notFoundError{err}
	}
	return err
}

type notFoundError struct{ err error }

func (e *notFoundError) Error() string   { return e.err.Error() }
func (e *notFoundError) Unwrap() []error { return []error{e.err, worker.ErrSessionNotFound} }

// progressCallable turns a ProgressFunc into the callable sent as
// progress_callback; messages of any shape are read with
// worker.ProgressFromValue.
func progressCallable(ctx context.Context, fn worker.ProgressFunc) any {
	if fn == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	return func(msg any) { _ = fn(ctx, worker.ProgressFromValue(msg)) }
}

// Start sends start(config, context=…): cfg.ToMap, with cfg.ProgressFunc
// (when set) as the progress_callback. It returns the worker's answer when
// it is a session id, else cfg.ID (the server already knows the id).
func (r *RemoteWorker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	m := cfg.ToMap()
	if cb := progressCallable(ctx, cfg.ProgressFunc); cb != nil {
		m["progress_callback"] = cb
	}
	v, err := r.call(ctx, worker.MethodStart, nil, m)
	if err != nil {
		return "", err
	}
	if id, ok := v.(string); ok && id != "" {
		return id, nil
	}
	return cfg.ID, nil
}

// Stop sends stop(session_id, context=…).
func (r *RemoteWorker) Stop(ctx context.Context, sessionID string) error {
	_, err := r.call(ctx, worker.MethodStop, nil, sessionID)
	return sessionErr(err, sessionID)
}

// ListSessions sends list_sessions(workspace, context=…).
func (r *RemoteWorker) ListSessions(ctx context.Context, workspace string) ([]worker.SessionInfo, error) {
	v, err := r.call(ctx, worker.MethodListSessions, nil, workspace)
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("%w: list_sessions returned %T, not a list", worker.ErrInvalidConfig, v)
	}
	out := make([]worker.SessionInfo, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: list_sessions item is %T, not a dict", worker.ErrInvalidConfig, e)
		}
		s, err := worker.SessionInfoFromMap(m)
		if err != nil {
			return nil, fmt.Errorf("list_sessions: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// GetSessionInfo sends get_session_info(session_id, context=…).
func (r *RemoteWorker) GetSessionInfo(ctx context.Context, sessionID string) (worker.SessionInfo, error) {
	v, err := r.call(ctx, worker.MethodGetSessionInfo, nil, sessionID)
	if err != nil {
		return worker.SessionInfo{}, sessionErr(err, sessionID)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return worker.SessionInfo{}, fmt.Errorf("%w: get_session_info returned %T, not a dict", worker.ErrInvalidConfig, v)
	}
	return worker.SessionInfoFromMap(m)
}

// GetLogs sends get_logs(session_id, **q.Kwargs(), context=…). The page
// keeps the worker's own map (LogPage.Wire).
func (r *RemoteWorker) GetLogs(ctx context.Context, sessionID string, q worker.LogQuery) (worker.LogPage, error) {
	v, err := r.call(ctx, worker.MethodGetLogs, rpc.Kwargs(q.Kwargs()), sessionID)
	if err != nil {
		return worker.LogPage{}, sessionErr(err, sessionID)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return worker.LogPage{}, fmt.Errorf("%w: get_logs returned %T, not a dict", worker.ErrInvalidConfig, v)
	}
	return worker.LogPageFromMap(m)
}

// PrepareWorkspace sends prepare_workspace(workspace, context=…).
func (r *RemoteWorker) PrepareWorkspace(ctx context.Context, workspace string) error {
	_, err := r.call(ctx, worker.MethodPrepareWorkspace, nil, workspace)
	return err
}

// CloseWorkspace sends close_workspace(workspace, context=…).
func (r *RemoteWorker) CloseWorkspace(ctx context.Context, workspace string) error {
	_, err := r.call(ctx, worker.MethodCloseWorkspace, nil, workspace)
	return err
}

// Compile sends compile(manifest, files, config=…, context=…), with
// req.Config.ProgressFunc (when set) as config.progress_callback.
func (r *RemoteWorker) Compile(ctx context.Context, req worker.CompileRequest) (worker.CompileResult, error) {
	man, files := req.Args()
	cfg := req.Config.ToMap(progressCallable(ctx, req.Config.ProgressFunc))
	v, err := r.call(ctx, worker.MethodCompile, rpc.Kwargs{"config": cfg}, man, files)
	if err != nil {
		return worker.CompileResult{}, err
	}
	return worker.CompileResultFromValue(v)
}

// Execute sends execute(session_id, script, config=…, progress_callback=…,
// **req.Extra, context=…).
func (r *RemoteWorker) Execute(ctx context.Context, req worker.ExecuteRequest) (any, error) {
	kw := rpc.Kwargs{}
	maps.Copy(kw, req.Extra)
	if req.Config != nil {
		kw["config"] = req.Config
	}
	if cb := progressCallable(ctx, req.ProgressFunc); cb != nil {
		kw["progress_callback"] = cb
	}
	v, err := r.call(ctx, worker.MethodExecute, kw, req.SessionID, req.Script)
	return v, sessionErr(err, req.SessionID)
}

// Shutdown sends shutdown(context=…).
func (r *RemoteWorker) Shutdown(ctx context.Context) error {
	_, err := r.call(ctx, worker.MethodShutdown, nil)
	return err
}
