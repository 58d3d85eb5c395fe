package apps

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

// args are the arguments of one service call, bound to upstream's parameter
// names (positional arguments in order, then keyword arguments).
type args map[string]any

// bind matches c's positional and keyword arguments to names. The trusted
// "context" keyword is never taken from the caller; "_rkwargs" (a marker
// some clients add) is ignored. Unknown keywords are an error, as in Python.
// argErr is an argument error: it wraps rpc.ErrArguments (Python's
// TypeError), which HTTP answers with 400.
func argErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", rpc.ErrArguments, fmt.Sprintf(format, a...))
}

func bind(fn string, c *rpc.Call, names ...string) (args, error) {
	a := args{}
	if len(c.Args) > len(names) {
		return nil, argErr("%s() takes at most %d arguments (%d given)", fn, len(names), len(c.Args))
	}
	for i, v := range c.Args {
		a[names[i]] = v
	}
	for k, v := range c.Kwargs {
		if k == "context" || k == "_rkwargs" {
			continue
		}
		if !slices.Contains(names, k) {
			return nil, argErr("%s() got an unexpected keyword argument '%s'", fn, k)
		}
		if _, dup := a[k]; dup {
			return nil, argErr("%s() got multiple values for argument '%s'", fn, k)
		}
		a[k] = v
	}
	return a, nil
}

// has reports whether the argument was given and is not null.
func (a args) has(name string) bool { return a[name] != nil }

func (a args) str(name string) (string, error) {
	switch v := a[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", argErr("argument %s must be a string, got %T", name, a[name])
}

func (a args) boolean(name string, def bool) (bool, error) {
	switch v := a[name].(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	}
	return false, argErr("argument %s must be a boolean, got %T", name, a[name])
}

func (a args) mapping(name string) (map[string]any, error) {
	switch v := a[name].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	case rpc.Kwargs:
		return map[string]any(v), nil
	}
	return nil, argErr("argument %s must be a dict, got %T", name, a[name])
}

// integer accepts whole numbers (int64, uint64 or an integral float).
func (a args) integer(name string, def int64) (int64, error) {
	v := a[name]
	if v == nil {
		return def, nil
	}
	if f, ok := convert.Number(v); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f), nil
	}
	return 0, argErr("argument %s must be an integer, got %v", name, v)
}

// seconds accepts a number of seconds (int or float); 0 when absent.
func (a args) seconds(name string) (time.Duration, bool, error) {
	v := a[name]
	if v == nil {
		return 0, false, nil
	}
	f, ok := convert.Number(v)
	if !ok || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, argErr("argument %s must be a non-negative number of seconds, got %v", name, v)
	}
	return time.Duration(f * float64(time.Second)), true, nil
}

func (a args) fn(name string) (*rpc.RemoteFunc, error) {
	switch v := a[name].(type) {
	case nil:
		return nil, nil
	case *rpc.RemoteFunc:
		return v, nil
	}
	return nil, argErr("argument %s must be a function, got %T", name, a[name])
}

// caller is the trusted identity of a call.
type caller struct {
	user *auth.UserInfo
	ws   string         // the caller's current workspace
	raw  map[string]any // the user map as stamped by the server
	from string         // "<ws>/<client_id>" of the caller
}

func callerOf(c *rpc.Call) (*caller, error) {
	if c.Context == nil || c.Context.User.Raw == nil || c.Context.WS == "" {
		return nil, errors.New("missing caller context")
	}
	u, err := auth.UserFromMap(c.Context.User.Raw)
	if err != nil {
		return nil, fmt.Errorf("invalid caller context: %w", err)
	}
	return &caller{user: u, ws: c.Context.WS, raw: c.Context.User.Raw, from: c.Context.From}, nil
}

// workerCaller is the caller as a worker sees it, acting in ws: the
// `context` keyword of every worker call (hyphaworker.Remote).
func (cl *caller) workerCaller(ws string) worker.Caller {
	return worker.Caller{Workspace: ws, User: cl.raw}
}

// contextMap is the explicit context upstream passes to workers.
func (cl *caller) contextMap(ws string) map[string]any {
	return cl.workerCaller(ws).ToMap()
}

// ErrPermission is what every refusal of the controller wraps (it is
// rpc.ErrPermission); the message keeps upstream's "Permission denied: …".
var ErrPermission = rpc.ErrPermission

type permissionError struct{ msg string }

func (e *permissionError) Error() string { return e.msg }
func (e *permissionError) Unwrap() error { return ErrPermission }

func denied(format string, args ...any) error {
	return &permissionError{msg: "Permission denied: " + fmt.Sprintf(format, args...)}
}

// need checks the caller's permission on ws.
func (c *Controller) need(cl *caller, ws string, p auth.Permission, what string) error {
	if c.host.Permission(cl.user, ws) < p {
		return denied("user %s needs %s permission on workspace %s to %s", cl.user.ID, p.Name(), ws, what)
	}
	return nil
}

// sessionWorkspace checks that the caller holds p on the workspace of a
// session id "<ws>/<client_id>" (its own workspace or another one).
func (c *Controller) sessionWorkspace(cl *caller, sessionID string, p auth.Permission, what string) (string, error) {
	ws, cid, ok := strings.Cut(sessionID, "/")
	if !ok || ws == "" || cid == "" {
		return "", fmt.Errorf("invalid session id %q: expected <workspace>/<client_id>", sessionID)
	}
	if err := c.need(cl, ws, p, what); err != nil {
		return "", err
	}
	return ws, nil
}

// api is a controller function as registered: the handler, with its
// parameter names declared (all optional: each function checks what it
// needs, with upstream's messages) so that the service schema lists them
// and keyword arguments by name, over HTTP too, reach them.
func (c *Controller) api(name string, fn func(ctx context.Context, cl *caller, call *rpc.Call) (any, error), params []string) any {
	opt := make([]string, len(params))
	for i, p := range params {
		opt[i] = p + "?"
	}
	return rpc.Params(c.handler(name, fn), opt...)
}

// handler adapts a method that needs the caller into an rpc.HandlerFunc.
func (c *Controller) handler(name string, fn func(ctx context.Context, cl *caller, call *rpc.Call) (any, error)) rpc.HandlerFunc {
	return func(ctx context.Context, call *rpc.Call) (any, error) {
		cl, err := callerOf(call)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		ctx, cancel := c.opContext(ctx)
		defer cancel()
		return fn(ctx, cl, call)
	}
}
