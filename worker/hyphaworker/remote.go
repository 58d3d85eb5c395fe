package hyphaworker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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
// Arguments (docs/compatibility.md, "Worker calls on the wire"). Every
// argument goes positionally, in the order of the seed's signatures, with
// omitted optional ones filled with their defaults, and nothing as a
// keyword, except get_logs' wait and follower, which only our own workers
// take (the caller asks for them only from a worker that has shown it
// follows: LogPage.Follows). Keyword arguments do not reach JavaScript
// workers intact: the npm hypha-rpc client replaces every positional
// argument by the keyword values looked up under the parameter names of
// the function's source text (none for a bound class method), so
// `start(config, context=…)` arrived as `start(undefined)`.
//
// The caller context. The explicit context built from the worker.Caller in
// ctx (worker.WithCaller; Caller.ToMap) goes as the last positional
// argument (the `context` slot of the seed's signatures), and only to a
// worker that does not declare require_context for the method: such a
// worker gets the server-stamped context from its own rpc client (the
// Python client passes it as the keyword `context`, so a positional one
// too would be "multiple values for argument 'context'"; the JavaScript
// client appends it after the arguments, which is why they are padded to
// the full signature; our adapter reads the stamped fields). The receiving
// adapter never trusts the explicit map: trust comes from the stamped call.
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

// workerParams are the positional parameters of the worker functions, in
// the seed's order, with the defaults that fill omitted ones (context
// excluded).
var workerParams = map[string][]any{
	worker.MethodStart:            {nil},                // config
	worker.MethodStop:             {nil},                // session_id
	worker.MethodListSessions:     {nil},                // workspace
	worker.MethodGetSessionInfo:   {nil},                // session_id
	worker.MethodGetLogs:          {nil, nil, 0, nil},   // session_id, type, offset=0, limit
	worker.MethodPrepareWorkspace: {nil},                // workspace
	worker.MethodCloseWorkspace:   {nil},                // workspace
	worker.MethodCompile:          {nil, nil, nil},      // manifest, files, config
	worker.MethodExecute:          {nil, nil, nil, nil}, // session_id, script, config, progress_callback
	worker.MethodShutdown:         {},
}

// Args returns the wire arguments of a call of method: args padded to the
// method's full parameter list, then the explicit context wctx unless the
// worker declares require_context for method.
func (r *RemoteWorker) Args(method string, wctx map[string]any, args ...any) []any {
	out := slices.Clone(args)
	if defs, ok := workerParams[method]; ok && len(out) < len(defs) {
		out = append(out, defs[len(out):]...)
	}
	if wctx != nil && !r.RequiresContext(method) {
		out = append(out, wctx)
	}
	return out
}

// RequiresContext reads the worker's config.require_context: true, or a
// list of the function names that get the context (hypha-rpc accepts both).
func (r *RemoteWorker) RequiresContext(method string) bool {
	switch v := r.svc.Config["require_context"].(type) {
	case bool:
		return v
	case []any:
		return slices.Contains(v, any(method))
	case []string:
		return slices.Contains(v, method)
	}
	return false
}

// call calls method with args (positional, see Args), the caller context
// of ctx, and kw as keyword arguments when kw is not empty.
func (r *RemoteWorker) call(ctx context.Context, method string, kw rpc.Kwargs, args ...any) (any, error) {
	if !r.Has(method) {
		return nil, fmt.Errorf("%w: worker %s has no %s", worker.ErrNotSupported, r.svc.ID, method)
	}
	var wctx map[string]any
	if c, ok := worker.CallerFromContext(ctx); ok {
		wctx = c.ToMap()
	}
	args = r.Args(method, wctx, args...)
	if len(kw) > 0 {
		args = append(args, kw)
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

// Start sends start(config[, context]): cfg.ToMap, with cfg.ProgressFunc
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

// Stop sends stop(session_id[, context]).
func (r *RemoteWorker) Stop(ctx context.Context, sessionID string) error {
	_, err := r.call(ctx, worker.MethodStop, nil, sessionID)
	return sessionErr(err, sessionID)
}

// ListSessions sends list_sessions(workspace[, context]).
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

// GetSessionInfo sends get_session_info(session_id[, context]).
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

// GetLogs sends get_logs(session_id, type, offset, limit[, context]), with
// wait and follower as keywords when q sets them (ask for them only from a
// worker whose pages say it follows: LogPage.Follows). The page keeps the
// worker's own map (LogPage.Wire).
func (r *RemoteWorker) GetLogs(ctx context.Context, sessionID string, q worker.LogQuery) (worker.LogPage, error) {
	var typ, limit any
	if q.Type != "" {
		typ = string(q.Type)
	}
	if q.Limit > 0 {
		limit = int64(q.Limit)
	}
	kw := rpc.Kwargs{}
	if q.Wait > 0 {
		kw["wait"] = q.Wait.Seconds()
	}
	if q.Follower != "" {
		kw["follower"] = q.Follower
	}
	v, err := r.call(ctx, worker.MethodGetLogs, kw, sessionID, typ, int64(q.Offset), limit)
	if err != nil {
		return worker.LogPage{}, sessionErr(err, sessionID)
	}
	if text, ok := v.(string); ok && q.Type != "" {
		// Upstream's terminal worker (and ours, see LogsWirer) answers
		// type "screen" with the bare screen text.
		return worker.LogPage{Query: q, Items: []worker.LogEntry{{Type: q.Type, Content: text}}, Total: 1, NextOffset: 1}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return worker.LogPage{}, fmt.Errorf("%w: get_logs returned %T, not a dict", worker.ErrInvalidConfig, v)
	}
	return worker.LogPageFromMap(m)
}

// PrepareWorkspace sends prepare_workspace(workspace[, context]).
func (r *RemoteWorker) PrepareWorkspace(ctx context.Context, workspace string) error {
	_, err := r.call(ctx, worker.MethodPrepareWorkspace, nil, workspace)
	return err
}

// CloseWorkspace sends close_workspace(workspace[, context]).
func (r *RemoteWorker) CloseWorkspace(ctx context.Context, workspace string) error {
	_, err := r.call(ctx, worker.MethodCloseWorkspace, nil, workspace)
	return err
}

// Compile sends compile(manifest, files, config[, context]), with
// req.Config.ProgressFunc (when set) as config.progress_callback.
func (r *RemoteWorker) Compile(ctx context.Context, req worker.CompileRequest) (worker.CompileResult, error) {
	man, files := req.Args()
	cfg := req.Config.ToMap(progressCallable(ctx, req.Config.ProgressFunc))
	v, err := r.call(ctx, worker.MethodCompile, nil, man, files, cfg)
	if err != nil {
		return worker.CompileResult{}, err
	}
	return worker.CompileResultFromValue(v)
}

// Execute sends execute(session_id, script, config, progress_callback[,
// context]), with req.Extra as keywords when there are any.
func (r *RemoteWorker) Execute(ctx context.Context, req worker.ExecuteRequest) (any, error) {
	kw := rpc.Kwargs{}
	maps.Copy(kw, req.Extra)
	var cfg any
	if req.Config != nil {
		cfg = req.Config
	}
	v, err := r.call(ctx, worker.MethodExecute, kw, req.SessionID, req.Script, cfg, progressCallable(ctx, req.ProgressFunc))
	return v, sessionErr(err, req.SessionID)
}

// Shutdown sends shutdown([context]).
func (r *RemoteWorker) Shutdown(ctx context.Context) error {
	_, err := r.call(ctx, worker.MethodShutdown, nil)
	return err
}

// Extensions lists the service's functions that are not part of the worker
// API (worker.IsCoreMethod): its extension methods, sorted.
func (r *RemoteWorker) Extensions() []string {
	var out []string
	for name, v := range r.svc.Members() {
		if _, ok := v.(*rpc.RemoteFunc); ok && !worker.IsCoreMethod(name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Call calls the worker's extension method with args, positionally and
// exactly as given (an rpc.Kwargs last goes as keyword arguments, which
// reach Go and Python workers but not JavaScript ones: see Arguments
// above). No explicit caller context is added: an extension is called by
// its end user, whose identity the server stamps on the call. The worker
// API's own functions are refused here; use their typed methods. When the
// first argument is a string (a session extension's session id) a remote
// "not found" naming it also matches worker.ErrSessionNotFound.
func (r *RemoteWorker) Call(ctx context.Context, method string, args ...any) (any, error) {
	if worker.IsCoreMethod(method) {
		return nil, fmt.Errorf("%w: %s is a function of the worker API, not an extension; use RemoteWorker's method for it", worker.ErrInvalidConfig, method)
	}
	if !r.Has(method) {
		return nil, fmt.Errorf("%w: worker %s has no extension %s", worker.ErrNotSupported, r.svc.ID, method)
	}
	v, err := r.svc.Call(ctx, method, args...)
	if err != nil && len(args) > 0 {
		if id, ok := args[0].(string); ok && id != "" {
			err = sessionErr(err, id)
		}
	}
	return v, err
}

// CallInto is Call with the answer decoded into out (see rpc.Decode).
func (r *RemoteWorker) CallInto(ctx context.Context, out any, method string, args ...any) error {
	v, err := r.Call(ctx, method, args...)
	if err != nil {
		return err
	}
	return rpc.Decode(v, out)
}

// Stream calls an extension method that answers with a generator and
// returns it: read it with All (a range loop) or Next, and Close it when
// stopping early (All does). An answer that is not a generator is an
// error.
func (r *RemoteWorker) Stream(ctx context.Context, method string, args ...any) (*rpc.RemoteGenerator, error) {
	v, err := r.Call(ctx, method, args...)
	if err != nil {
		return nil, err
	}
	g, ok := v.(*rpc.RemoteGenerator)
	if !ok {
		return nil, fmt.Errorf("%w: %s answered %T, not a generator", worker.ErrInvalidConfig, method, v)
	}
	return g, nil
}
