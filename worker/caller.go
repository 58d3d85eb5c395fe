package worker

import "context"

// Caller is who invoked a worker method, as far as the adapter can tell: the
// seed's `context` argument ({"ws", "user", "from"}) plus a trust flag that
// only the adapter can set.
//
// The adapter attaches a Caller to the ctx of every call it forwards
// (WithCaller). The session lookups used by Base and Funcs then hide
// sessions of other workspaces from untrusted callers. A ctx without a Caller
// is an in-process call (tests, the worker's own code, a local CLI) and sees
// everything.
type Caller struct {
	// Workspace is the caller's workspace ("ws").
	Workspace string
	// User is the caller's user info as sent ("user"), may be nil.
	User map[string]any
	// From is the calling client id ("from"), may be empty.
	From string
	// Trusted callers see every session. The adapter sets it for the Hypha
	// server's own client: with require_context the server's calls arrive as
	// its root client in the "public" workspace, not as the end user
	// (worker-contract §0.6), so a workspace check would lock the server out.
	Trusted bool
}

// CallerFromMap reads the seed's context dict ({"ws", "user", "from"}).
// Fields of the wrong type are ignored; Trusted is always false because the
// map can come from the caller.
func CallerFromMap(m map[string]any) Caller {
	var c Caller
	c.Workspace, _ = m["ws"].(string)
	c.User, _ = m["user"].(map[string]any)
	c.From, _ = m["from"].(string)
	return c
}

// UserID returns user["id"], or "".
func (c Caller) UserID() string {
	id, _ := c.User["id"].(string)
	return id
}

// CanAccess reports whether the caller may see sessions of workspace.
func (c Caller) CanAccess(workspace string) bool {
	return c.Trusted || (c.Workspace != "" && c.Workspace == workspace)
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the Caller attached by WithCaller.
func CallerFromContext(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// canAccess applies the rule above: no Caller means an in-process call.
func canAccess(ctx context.Context, workspace string) bool {
	c, ok := CallerFromContext(ctx)
	return !ok || c.CanAccess(workspace)
}
