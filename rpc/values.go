package rpc

import (
	"context"
	"strings"
)

// Kwargs, passed as the last argument of a remote call, is sent as keyword
// arguments (the wire's with_kwargs flag). A Go handler receives keyword
// arguments in Call.Kwargs, or as a Kwargs parameter.
type Kwargs map[string]any

// RemoteError is an exception raised by a remote function (the wire's
// `_rtype: error`). Message is the remote text; Trace the remote traceback.
type RemoteError struct {
	Message string
	Trace   string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "remote error"
	}
	return e.Message
}

// NDArray is a numpy-style array (`_rtype: ndarray`): raw little-endian data,
// shape and numpy dtype name.
type NDArray struct {
	Data  []byte
	Shape []int64
	DType string
}

// TypedArray is a JavaScript typed array (`_rtype: typedarray`) other than Uint8Array.
type TypedArray struct {
	Data  []byte
	DType string
}

// UserInfo is the identity the server stamps on every message.
type UserInfo struct {
	ID          string
	Roles       []string
	IsAnonymous bool
	Email       string
	// Scope is the raw scope map: current_workspace, workspaces, client_id, extra_scopes.
	Scope map[string]any
	// Raw is the whole user map as received.
	Raw map[string]any
}

func userFromMap(m map[string]any) UserInfo {
	u := UserInfo{Raw: m}
	if m == nil {
		return u
	}
	u.ID, _ = m["id"].(string)
	u.IsAnonymous, _ = m["is_anonymous"].(bool)
	u.Email, _ = m["email"].(string)
	u.Scope, _ = m["scope"].(map[string]any)
	if rs, ok := m["roles"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				u.Roles = append(u.Roles, s)
			}
		}
	}
	return u
}

// CallContext is the trusted context of an incoming call: who sent it, as
// stamped by the server. Handlers take a *CallContext parameter to receive it.
type CallContext struct {
	From string // "<workspace>/<client_id>" of the caller
	To   string // absolute id of this peer
	WS   string // the caller's workspace
	User UserInfo
	// Raw holds every context field (including connection_type).
	Raw map[string]any
}

// Call is what a HandlerFunc receives: positional and keyword arguments and
// the caller's context.
type Call struct {
	Args    []any
	Kwargs  map[string]any
	Context *CallContext
}

// Arg returns the positional argument i, or else the keyword argument name,
// or nil; the common pattern for handlers that accept both forms.
func (c *Call) Arg(i int, name string) any {
	if i >= 0 && i < len(c.Args) {
		return c.Args[i]
	}
	if name != "" && c.Kwargs != nil {
		return c.Kwargs[name]
	}
	return nil
}

// Has reports whether argument i (or keyword name) was given.
func (c *Call) Has(i int, name string) bool {
	if i >= 0 && i < len(c.Args) {
		return true
	}
	if name != "" && c.Kwargs != nil {
		_, ok := c.Kwargs[name]
		return ok
	}
	return false
}

// HandlerFunc is the most general service function: it sees the raw decoded
// arguments. Any other Go func is adapted by reflection.
type HandlerFunc func(ctx context.Context, call *Call) (any, error)

// Params names the parameters of fn, in order, so that callers can pass
// them by name (Go reflection has no parameter names): keyword arguments from
// Python (`greet(name="Ada")`), JavaScript (`_rkwargs`) and HTTP (query
// string or JSON object) reach the parameter of that name, and the service
// schema lists the parameters with their JSON types. Parameters of type
// context.Context, *CallContext, *Call and Kwargs are filled by the peer and
// are not named.
//
// Every named parameter is required unless its name ends in "?" (the "?" is
// not part of the name): a call that leaves a required parameter out, gives
// an unknown keyword argument (unless fn takes a Kwargs parameter, which
// receives them), or gives a parameter twice fails with an error wrapping
// ErrArguments that names the parameter; an optional one left out is its
// zero value. A function without Params takes positional arguments only,
// all required.
//
// fn may also be a HandlerFunc: the names then only describe it (schema)
// and the same checks run before it, while it still reads its arguments from
// the Call. The name "context" is reserved for the injected caller context.
func Params(fn any, names ...string) any {
	return &namedFunc{fn: fn, names: names}
}

type namedFunc struct {
	fn    any
	names []string
}

// Doc attaches a description to fn, shown in the service schema.
func Doc(fn any, doc string) any {
	return &docFunc{fn: fn, doc: doc}
}

type docFunc struct {
	fn  any
	doc string
}

// Schema gives fn the JSON schema of its parameters (an object schema, as
// in `_rschema.parameters`), replacing the one derived from Params: for a
// function whose parameters are described elsewhere, e.g. a tool an MCP
// proxy relays. The schema only describes fn; arguments are not checked
// against it (fn, usually a HandlerFunc, reads them from its Call).
func Schema(fn any, parameters map[string]any) any {
	return &schemaFunc{fn: fn, parameters: parameters}
}

type schemaFunc struct {
	fn         any
	parameters map[string]any
}

// splitPeer splits "<ws>/<cid>".
func splitPeer(id string) (ws, cid string) {
	if i := strings.IndexByte(id, '/'); i >= 0 {
		return id[:i], id[i+1:]
	}
	return "", id
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// WireValue keeps these values intact when they are nested in structs that
// are encoded by reflection.
func (f *RemoteFunc) WireValue() any    { return f }
func (s *RemoteService) WireValue() any { return s }
func (a NDArray) WireValue() any        { return a }
func (a TypedArray) WireValue() any     { return a }
func (n *namedFunc) WireValue() any     { return n }
func (d *docFunc) WireValue() any       { return d }
