package hyphaworker

import (
	"fmt"
	"strings"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

// RootUserID is the id of the server's root user.
const RootUserID = "root"

// PublicWorkspace is the workspace the server's own clients live in.
const PublicWorkspace = "public"

// MethodStart and the other session function names, as registered.
const (
	MethodStart            = "start"
	MethodStop             = "stop"
	MethodListSessions     = "list_sessions"
	MethodGetSessionInfo   = "get_session_info"
	MethodGetLogs          = "get_logs"
	MethodPrepareWorkspace = "prepare_workspace"
	MethodCloseWorkspace   = "close_workspace"
)

// memberNeeds is the permission a member of the worker's (non-public)
// workspace needs for each function. A function missing here (start, and
// any function added later without an entry) is refused to members: only
// the server's apps controller and root may call it.
var memberNeeds = map[string]auth.Permission{
	MethodListSessions:     auth.Read,
	MethodGetSessionInfo:   auth.Read,
	MethodGetLogs:          auth.Read,
	MethodStop:             auth.ReadWrite,
	worker.MethodExecute:   auth.ReadWrite,
	worker.MethodCompile:   auth.ReadWrite,
	MethodPrepareWorkspace: auth.Admin,
	MethodCloseWorkspace:   auth.Admin,
	worker.MethodShutdown:  auth.Admin,
}

// MemberNeeds returns the permission a member of a worker's workspace needs
// on that workspace to call method, and false when members may not call it
// at all (start: only the apps controller or root).
func MemberNeeds(method string) (auth.Permission, bool) {
	p, ok := memberNeeds[method]
	return p, ok
}

// TrustedCaller is the default rule recognising the server's apps
// controller (worker-contract §0.6). A trusted caller may call every
// function and sees the sessions of every workspace. The server stamped the
// call as coming from the server's root user connected in the "public"
// workspace (its From is "public/<client_id>"): that is how the server's
// apps controller calls workers (with require_context the caller is the
// server's root client in public, not the end user; upstream's controller
// does the same).
//
// Everything checked here comes from the trusted fields the server stamps
// on every message (from, ws, user); nothing is taken from the call's
// arguments. The explicit `context` keyword argument a caller may send is
// never used for this decision. Only holders of the root token can connect
// as root (a token root mints with generate_token carries a new user id,
// with root only as its parent), so a user of another workspace can never
// be trusted.
//
// The server's manager peer ("*/<manager id>", user root) is not trusted:
// it never calls worker functions on its own, so a call from it can only be
// a callable some client handed it (a confused deputy).
func TrustedCaller(cc *rpc.CallContext) bool {
	return isRoot(cc) && cc.WS == PublicWorkspace && strings.HasPrefix(cc.From, PublicWorkspace+"/")
}

// isRoot reports whether the stamped user is the server's root user on a
// client connection; the manager ("*/…", workspace "*") is excluded.
func isRoot(cc *rpc.CallContext) bool {
	return cc != nil && cc.User.ID == RootUserID && !cc.User.IsAnonymous && !fromManager(cc)
}

// fromManager reports a call relayed by the server's manager peer: no
// client can connect with a '*' in its workspace, so only the manager
// carries it.
func fromManager(cc *rpc.CallContext) bool {
	return strings.HasPrefix(cc.From, "*/") || strings.Contains(cc.WS, "*")
}

// Admit applies the worker access rule to one call of method on a worker
// registered in workspace home and returns the Caller to attach to the
// call. trusted recognises the apps controller (TrustedCaller when nil).
//
// The rule, decided from the server-stamped context only:
//
//  1. the apps controller (trusted) may call everything and sees every
//     workspace; a call relayed by the server's manager is always refused;
//  2. root may call everything; connected outside public it is confined to
//     the workspace it is connected in;
//  3. for a worker registered in a user workspace (not public), a client
//     connected in that workspace whose user holds MemberNeeds(method) on it
//     may call method, confined to that workspace; start is never allowed;
//  4. everyone else is refused (ErrPermission), before the worker sees the
//     call. A worker registered in public (or in an unknown workspace) has
//     no members: only the controller and root may use it.
//
// Extension methods (worker.Extension) follow the same rule, with the
// permission the extension declares in place of MemberNeeds (the adapter
// applies it; Admit itself knows only the worker API's functions and
// refuses members any other name).
func Admit(cc *rpc.CallContext, kwargs map[string]any, home, method string, trusted func(*rpc.CallContext) bool) (worker.Caller, error) {
	need, ok := memberNeeds[method]
	return admit(cc, kwargs, home, method, need, ok, trusted)
}

// admit is Admit with the members' permission given: need when members
// may call method at all (membersMay).
func admit(cc *rpc.CallContext, kwargs map[string]any, home, method string, need auth.Permission, membersMay bool, trusted func(*rpc.CallContext) bool) (worker.Caller, error) {
	if trusted == nil {
		trusted = TrustedCaller
	}
	if cc == nil {
		return worker.Caller{}, fmt.Errorf("%s: %w: the call carries no caller context", method, ErrPermission)
	}
	if fromManager(cc) {
		return worker.Caller{}, fmt.Errorf("%s: %w: the call comes from the server's manager (%s), which never calls workers itself; refused as a relayed call",
			method, ErrPermission, cc.From)
	}
	if trusted(cc) {
		return CallerOf(cc, kwargs, trusted), nil
	}
	caller := worker.Caller{Workspace: cc.WS, User: cc.User.Raw, From: cc.From}
	if isRoot(cc) {
		return caller, nil
	}
	who := cc.User.ID
	if who == "" {
		who = "an unknown user"
	}
	if home == "" || home == PublicWorkspace {
		return worker.Caller{}, fmt.Errorf("%s: %w: this worker is registered in %q; only the server's apps controller or root may call it (caller %s in workspace %s)",
			method, ErrPermission, PublicWorkspace, who, cc.WS)
	}
	if !membersMay {
		return worker.Caller{}, fmt.Errorf("%s: %w: only the server's apps controller or root may call %s on this worker (caller %s in workspace %s)",
			method, ErrPermission, method, who, cc.WS)
	}
	if cc.WS != home {
		return worker.Caller{}, fmt.Errorf("%s: %w: the worker serves members of workspace %s; caller %s is connected in workspace %s",
			method, ErrPermission, home, who, cc.WS)
	}
	have := auth.None
	if u, err := auth.UserFromMap(cc.User.Raw); err == nil {
		have = u.Permission(home)
	}
	if have < need {
		got := have.Name()
		if got == "" {
			got = "none"
		}
		return worker.Caller{}, fmt.Errorf("%s: %w: %s needs %s permission on workspace %s; caller %s has %s",
			method, ErrPermission, method, need.Name(), home, who, got)
	}
	return caller, nil
}

// CallerOf converts the trusted call context into a worker.Caller, applying
// trusted (TrustedCaller when nil). It does not decide access (see Admit).
// For a trusted caller the explicit `context` keyword argument ({"ws",
// "user"}), which the controller fills with the end user's workspace and
// identity, is used for Workspace and User (information only: a trusted
// caller sees everything anyway). For other callers only the stamped fields
// count.
func CallerOf(cc *rpc.CallContext, kwargs map[string]any, trusted func(*rpc.CallContext) bool) worker.Caller {
	if trusted == nil {
		trusted = TrustedCaller
	}
	if cc == nil {
		// No context at all cannot happen over RPC; treat it as a caller
		// that can see nothing rather than as an in-process call.
		return worker.Caller{}
	}
	c := worker.Caller{Workspace: cc.WS, User: cc.User.Raw, From: cc.From}
	if !trusted(cc) {
		return c
	}
	c.Trusted = true
	if explicit, ok := kwargs["context"].(map[string]any); ok {
		ec := worker.CallerFromMap(explicit)
		if ec.Workspace != "" {
			c.Workspace = ec.Workspace
		}
		if ec.User != nil {
			c.User = ec.User
		}
	}
	return c
}
