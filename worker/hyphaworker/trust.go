package hyphaworker

import (
	"strings"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// RootUserID is the id of the server's root user.
const RootUserID = "root"

// PublicWorkspace is the workspace the server's own clients live in.
const PublicWorkspace = "public"

// TrustedCaller is the default trusted-caller rule. A caller is trusted, and
// sees the sessions of every workspace, when the server stamped the call as
// coming from
//
//   - the server's root user connected in the "public" workspace (its From is
//     "public/<client_id>"): that is how the server's apps controller calls
//     workers (worker-contract §0.6: with require_context the caller is the
//     server's root client in public, not the end user); or
//   - the server's manager peer (its From is "*/<manager id>", user root): no
//     client can connect with a workspace containing '*', so only the
//     manager carries that prefix.
//
// Everything checked here comes from the trusted fields the server stamps
// on every message (from, ws, user); nothing is taken from the call's
// arguments. The explicit `context` keyword argument a caller may send is
// never used for this decision. Only holders of the root token can connect
// as root, so a user of another workspace can never be trusted; the root
// user connected in any other workspace is treated like any other client of
// that workspace.
func TrustedCaller(cc *rpc.CallContext) bool {
	if cc == nil || cc.User.ID != RootUserID || cc.User.IsAnonymous {
		return false
	}
	if strings.HasPrefix(cc.From, "*/") {
		return true
	}
	return cc.WS == PublicWorkspace && strings.HasPrefix(cc.From, PublicWorkspace+"/")
}

// CallerOf converts the trusted call context into a worker.Caller, applying
// trusted (TrustedCaller when nil). For a trusted caller the explicit
// `context` keyword argument ({"ws", "user"}), which the server fills with
// the end user's workspace and identity, is used for Workspace and User
// (information only: a trusted caller sees everything anyway). For other
// callers only the stamped fields count.
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
