package hyphaworker

import (
	"context"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// TestExtensionGuardRule: the guard of an extension applies Admit's rule,
// including the refusal of calls relayed by the server's manager (which a
// server-level test cannot make a client send as itself), before the
// function runs.
func TestExtensionGuardRule(t *testing.T) {
	ran := 0
	a := &adapter{home: "ws-a", trusted: TrustedCaller}
	g, err := a.guard(worker.Extension{Name: "poke", Session: true, Permission: worker.PermissionReadWrite,
		Func: func(ctx context.Context, id string) error {
			if c, ok := worker.CallerFromContext(ctx); !ok || c.Workspace == "" {
				t.Errorf("poke ran without a Caller: %+v", c)
			}
			ran++
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	fn := g.(func(context.Context, *rpc.Call, string) error)
	root := rpc.UserInfo{ID: "root", Raw: map[string]any{"id": "root"}}
	member := func(perm string) rpc.UserInfo {
		return rpc.UserInfo{ID: "u", Raw: map[string]any{"id": "u", "scope": map[string]any{"workspaces": map[string]any{"ws-a": perm}}}}
	}
	for _, tc := range []struct {
		name string
		cc   *rpc.CallContext
		sid  string
		want string // "" allowed
	}{
		{"manager relay", &rpc.CallContext{From: "*/manager-x", WS: "public", User: root}, "ws-a/s1", "refused as a relayed call"},
		{"manager relay in ws", &rpc.CallContext{From: "*/manager-x", WS: "ws-a", User: root}, "ws-a/s1", "refused as a relayed call"},
		{"no context", nil, "ws-a/s1", "carries no caller context"},
		{"reader", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: member("r")}, "ws-a/s1", "poke needs read_write permission on workspace ws-a"},
		{"writer, foreign session", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: member("rw")}, "ws-b/s1", "poke: session not found: ws-b/s1"},
		{"writer, no session", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: member("rw")}, "", "session_id is required"},
		{"writer", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: member("rw")}, "ws-a/s1", ""},
		{"controller, any session", &rpc.CallContext{From: "public/ctl", WS: "public", User: root}, "ws-b/s1", ""},
	} {
		before := ran
		err := fn(context.Background(), &rpc.Call{Context: tc.cc}, tc.sid)
		switch {
		case tc.want == "" && (err != nil || ran != before+1):
			t.Errorf("%s: %v (ran %d)", tc.name, err, ran-before)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || ran != before):
			t.Errorf("%s: err = %v, want %q and the function not run", tc.name, err, tc.want)
		}
	}
}
