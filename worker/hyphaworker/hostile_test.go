package hyphaworker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// memberWorld is a worker registered by user alice in her own workspace
// (a user workspace, not public), with members of that workspace holding
// each permission, outsiders and the apps controller.
type memberWorld struct {
	s                     *server.Server
	home                  string
	id                    string
	echo                  *echoWorker
	reader, writer, admin *rpc.Client // members of home
	outsider              *rpc.Client // another user, in its own workspace
	anon                  *rpc.Client
	trusted               *rpc.Client // root in public: the apps controller
}

// userToken mints a token for user id with the given workspace grants,
// current workspace ws.
func userToken(t *testing.T, s *server.Server, id, ws string, grants map[string]auth.Permission) string {
	t.Helper()
	tok, err := s.Issuer().Generate(&auth.UserInfo{ID: id, Scope: auth.Scope{CurrentWorkspace: ws, Workspaces: grants}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newMemberWorld(t *testing.T) *memberWorld {
	t.Helper()
	ctx := ctxT(t)
	mw := &memberWorld{s: testserver.Start(t, server.Config{}), home: "ws-user-alice"}
	wc := testserver.Connect(t, mw.s, rpc.Config{Token: userToken(t, mw.s, "alice", mw.home, nil), ClientID: "alice-worker"})
	if wsOf(wc) != mw.home {
		t.Fatalf("worker client in %q", wsOf(wc))
	}
	var w worker.Worker
	mw.echo, w = newEchoWorker(t, true)
	id, err := hyphaworker.Register(ctx, wc, w, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	mw.id = id
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hyphaworker.Shutdown(sctx, wc, w, id); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	member := func(name string, p auth.Permission) *rpc.Client {
		return testserver.Connect(t, mw.s, rpc.Config{ClientID: name, Workspace: mw.home,
			Token: userToken(t, mw.s, name, mw.home, map[string]auth.Permission{mw.home: p})})
	}
	mw.reader = member("reader", auth.Read)
	mw.writer = member("writer", auth.ReadWrite)
	mw.admin = member("admin", auth.Admin)
	mw.outsider = testserver.Connect(t, mw.s, rpc.Config{ClientID: "bob", Token: userToken(t, mw.s, "bob", "", nil)})
	mw.anon = testserver.Connect(t, mw.s, rpc.Config{ClientID: "anon"})
	mw.trusted = testserver.Connect(t, mw.s, rpc.Config{Token: publicRootToken(t, mw.s), Workspace: "public", ClientID: "controller"})
	return mw
}

func (mw *memberWorld) svc(t *testing.T, c *rpc.Client) *rpc.RemoteService {
	t.Helper()
	svc, err := c.GetService(ctxT(t), mw.id)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// workerCall is one call of every session function, aimed at session sid
// of workspace ws.
type workerCall struct {
	fn   string
	args func(ws, sid string) []any
}

var everyWorkerFunction = []workerCall{
	{"start", func(ws, _ string) []any { return []any{startConfig(ws, "intruder", "intruder")} }},
	{"stop", func(_, sid string) []any { return []any{sid} }},
	{"list_sessions", func(ws, _ string) []any { return []any{ws} }},
	{"get_session_info", func(_, sid string) []any { return []any{sid} }},
	{"get_logs", func(_, sid string) []any { return []any{sid} }},
	{"prepare_workspace", func(ws, _ string) []any { return []any{ws} }},
	{"close_workspace", func(ws, _ string) []any { return []any{ws} }},
	{"compile", func(ws, _ string) []any {
		return []any{map[string]any{"type": "echo"}, []any{}, map[string]any{"workspace": ws}}
	}},
	{"execute", func(_, sid string) []any { return []any{sid, "x"} }},
	{"shutdown", func(string, string) []any { return nil }},
}

// mustBeRunning fails unless session sid is still running (asked as the
// trusted controller) and no intruder session was started.
func mustBeRunning(t *testing.T, ctx context.Context, st *rpc.RemoteService, e *echoWorker, sid string) {
	t.Helper()
	info, err := st.Call(ctx, "get_session_info", sid)
	if err != nil || info.(map[string]any)["status"] != "running" {
		t.Fatalf("session %s after the attack: %v, %v", sid, info, err)
	}
	for _, s := range e.sessions.List("") {
		if strings.HasSuffix(s.SessionID, "/intruder") {
			t.Fatalf("an intruder session was started: %s", s.SessionID)
		}
	}
	e.mu.Lock()
	n := e.shutdown
	e.mu.Unlock()
	if n != 0 {
		t.Fatalf("the worker was shut down %d times", n)
	}
}

// TestHostileWorkerAccessPublic: the worker registered in public (the
// embedded server's built-in worker) refuses every function to everyone
// but the apps controller and root: anonymous users, users of other
// workspaces, a child token root minted for public, a user holding admin
// on public in its scope; with and without a forged `context` argument.
func TestHostileWorkerAccessPublic(t *testing.T) {
	wd := newWorld(t, true)
	ctx := ctxT(t)
	st := wd.svc(t, wd.trusted)
	victimWS := "ws-victim"
	sid := victimWS + "/v1"
	if _, err := st.Call(ctx, "start", startConfig(victimWS, "v1", "victim"), rpc.Kwargs{"context": map[string]any{"ws": victimWS}}); err != nil {
		t.Fatal(err)
	}
	rootTok := testserver.RootClient(t, wd.s, "root-minter")
	if _, err := rootTok.Manager().Call(ctx, "create_workspace", map[string]any{"id": victimWS}); err != nil {
		t.Fatal(err)
	}
	child, err := rootTok.GenerateToken(ctx, rpc.TokenConfig{Workspace: "public", Permission: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	callers := map[string]*rpc.Client{
		"anonymous":                 wd.a,
		"user in its own ws":        testserver.Connect(t, wd.s, rpc.Config{ClientID: "carol", Token: userToken(t, wd.s, "carol", "", nil)}),
		"root's child token":        testserver.Connect(t, wd.s, rpc.Config{ClientID: "child", Workspace: "public", Token: child}),
		"user with admin on public": testserver.Connect(t, wd.s, rpc.Config{ClientID: "dave", Workspace: "public", Token: userToken(t, wd.s, "dave", "public", map[string]auth.Permission{"public": auth.Admin})}),
		"user with admin on victim": testserver.Connect(t, wd.s, rpc.Config{ClientID: "erin", Workspace: victimWS, Token: userToken(t, wd.s, "erin", victimWS, map[string]auth.Permission{victimWS: auth.Admin})}),
	}
	for name, c := range callers {
		svc := wd.svc(t, c)
		for _, call := range everyWorkerFunction {
			for _, forged := range []bool{false, true} {
				args := call.args(victimWS, sid)
				if forged {
					args = append(args, rpc.Kwargs{"context": map[string]any{"ws": victimWS, "user": map[string]any{"id": "root"}}})
				}
				_, err := svc.Call(ctx, call.fn, args...)
				if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), call.fn+": ") {
					t.Errorf("%s: %s(forged context %v): err = %v, want a permission denied naming %s", name, call.fn, forged, err, call.fn)
				}
			}
		}
		mustBeRunning(t, ctx, st, wd.echo, sid)
	}
	if !strings.HasPrefix(wsOf(callers["root's child token"]), "public") {
		t.Fatalf("the child token connected in %q, not public", wsOf(callers["root's child token"]))
	}
	// The controller still works: it lists and starts.
	if _, err := st.Call(ctx, "start", startConfig(victimWS, "v2", "again")); err != nil {
		t.Fatalf("controller start after the attacks: %v", err)
	}
}

// TestHostileWorkerAccessMembers: a worker registered in a user workspace
// serves members of that workspace by permission (read: list, info, logs;
// read_write: stop, execute, compile; admin: prepare/close_workspace,
// shutdown) and never start; outsiders get nothing.
func TestHostileWorkerAccessMembers(t *testing.T) {
	mw := newMemberWorld(t)
	ctx := ctxT(t)
	st := mw.svc(t, mw.trusted)
	n := 0
	// ensure starts a fresh home session through the controller.
	ensure := func() string {
		n++
		cid := "s" + string(rune('a'+n%26)) + strings.Repeat("x", n/26)
		if _, err := st.Call(ctx, "start", startConfig(mw.home, cid, "member-app"), rpc.Kwargs{"context": map[string]any{"ws": mw.home}}); err != nil {
			t.Fatal(err)
		}
		return mw.home + "/" + cid
	}
	allowed := map[string]map[string]bool{
		"reader":   {"list_sessions": true, "get_session_info": true, "get_logs": true},
		"writer":   {"list_sessions": true, "get_session_info": true, "get_logs": true, "stop": true, "execute": true, "compile": true},
		"admin":    {"list_sessions": true, "get_session_info": true, "get_logs": true, "stop": true, "execute": true, "compile": true, "prepare_workspace": true, "close_workspace": true, "shutdown": true},
		"outsider": {},
		"anon":     {},
	}
	clients := map[string]*rpc.Client{"reader": mw.reader, "writer": mw.writer, "admin": mw.admin, "outsider": mw.outsider, "anon": mw.anon}
	for _, role := range []string{"reader", "writer", "admin", "outsider", "anon"} {
		svc := mw.svc(t, clients[role])
		for _, call := range everyWorkerFunction {
			t.Run(role+"/"+call.fn, func(t *testing.T) {
				sid := ensure()
				mw.echo.mu.Lock()
				mw.echo.shutdown = 0
				mw.echo.mu.Unlock()
				_, err := svc.Call(ctx, call.fn, call.args(mw.home, sid)...)
				if allowed[role][call.fn] {
					if err != nil {
						t.Fatalf("%s may call %s: %v", role, call.fn, err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), "permission denied") {
					t.Fatalf("%s %s: err = %v, want permission denied", role, call.fn, err)
				}
				if role == "reader" || role == "writer" {
					if p, _ := hyphaworker.MemberNeeds(call.fn); call.fn != "start" && !strings.Contains(err.Error(), "needs "+p.Name()+" permission on workspace "+mw.home) {
						t.Fatalf("%s %s: error does not name the permission needed: %v", role, call.fn, err)
					}
				}
				mustBeRunning(t, ctx, st, mw.echo, sid)
			})
		}
	}
	// get_logs with a follower holds the app back: read is not enough.
	sid := ensure()
	_, err := mw.svc(t, mw.reader).Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 0, "follower": "r1"})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "needs read_write permission") {
		t.Fatalf("reader get_logs with a follower: %v", err)
	}
	if _, err := mw.svc(t, mw.writer).Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 0, "follower": "w1", "wait": 0}); err != nil {
		t.Fatalf("writer get_logs with a follower: %v", err)
	}
	mustBeRunning(t, ctx, st, mw.echo, sid)
}

func TestAdmitRule(t *testing.T) {
	user := func(id string, grants map[string]any) rpc.UserInfo {
		return rpc.UserInfo{ID: id, Raw: map[string]any{"id": id, "scope": map[string]any{"workspaces": grants}}}
	}
	root := rpc.UserInfo{ID: "root", Raw: map[string]any{"id": "root"}}
	for _, tc := range []struct {
		name, home, fn string
		cc             *rpc.CallContext
		ok             bool
	}{
		{"nil context", "ws-a", "get_logs", nil, false},
		{"controller", "public", "start", &rpc.CallContext{From: "public/ctl", WS: "public", User: root}, true},
		{"root elsewhere, public worker", "public", "start", &rpc.CallContext{From: "ws-x/c", WS: "ws-x", User: root}, true},
		{"anonymous flagged root id", "public", "get_logs", &rpc.CallContext{From: "public/c", WS: "public", User: rpc.UserInfo{ID: "root", IsAnonymous: true}}, false},
		{"member read, get_logs", "ws-a", "get_logs", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: user("u", map[string]any{"ws-a": "r"})}, true},
		{"member read, stop", "ws-a", "stop", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: user("u", map[string]any{"ws-a": "r"})}, false},
		{"member rw, stop", "ws-a", "stop", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: user("u", map[string]any{"ws-a": "rw"})}, true},
		{"member admin, start", "ws-a", "start", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: user("u", map[string]any{"ws-a": "a"})}, false},
		{"grant but connected elsewhere", "ws-a", "get_logs", &rpc.CallContext{From: "ws-b/c", WS: "ws-b", User: user("u", map[string]any{"ws-a": "a"})}, false},
		{"star grant", "ws-a", "close_workspace", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: user("u", map[string]any{"*": "a"})}, true},
		{"own user workspace", "ws-user-u", "shutdown", &rpc.CallContext{From: "ws-user-u/c", WS: "ws-user-u", User: user("u", nil)}, true},
		{"public has no members", "public", "get_logs", &rpc.CallContext{From: "public/c", WS: "public", User: user("u", map[string]any{"public": "a"})}, false},
		{"unknown home", "", "list_sessions", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: user("u", map[string]any{"ws-a": "a"})}, false},
		{"manager relay, public worker", "public", "start", &rpc.CallContext{From: "*/manager-x", WS: "public", User: root}, false},
		{"manager relay, user worker", "ws-a", "stop", &rpc.CallContext{From: "*/manager-x", WS: "ws-a", User: root}, false},
		{"unknown function", "ws-a", "frobnicate", &rpc.CallContext{From: "ws-a/c", WS: "ws-a", User: user("u", map[string]any{"ws-a": "a"})}, false},
	} {
		_, err := hyphaworker.Admit(tc.cc, nil, tc.home, tc.fn, nil)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Admit = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestWorkerMemberByOwnership: the owner of a created workspace has admin
// there through ownership, not through its token's grants; the server stamps
// that effective permission, so the worker lets the owner close the
// workspace, while a read-only member of it cannot.
func TestWorkerMemberByOwnership(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := ctxT(t)
	ownerTok := userToken(t, s, "olga", "", nil)
	boot := testserver.Connect(t, s, rpc.Config{ClientID: "olga-boot", Token: ownerTok})
	if _, err := boot.Manager().Call(ctx, "create_workspace", map[string]any{"id": "team-o"}); err != nil {
		t.Fatal(err)
	}
	wc := testserver.Connect(t, s, rpc.Config{ClientID: "olga-worker", Workspace: "team-o", Token: ownerTok})
	_, w := newEchoWorker(t, false)
	id, err := hyphaworker.Register(ctx, wc, w, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hyphaworker.Shutdown(sctx, wc, w, id)
	})
	owner := testserver.Connect(t, s, rpc.Config{ClientID: "olga", Workspace: "team-o", Token: ownerTok})
	svc, err := owner.GetService(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Call(ctx, "close_workspace"); err != nil {
		t.Fatalf("owner close_workspace: %v", err)
	}
	readTok, err := owner.GenerateToken(ctx, rpc.TokenConfig{Workspace: "team-o", Permission: "read"})
	if err != nil {
		t.Fatal(err)
	}
	reader := testserver.Connect(t, s, rpc.Config{ClientID: "r", Workspace: "team-o", Token: readTok})
	rsvc, err := reader.GetService(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsvc.Call(ctx, "list_sessions"); err != nil {
		t.Fatalf("reader list_sessions: %v", err)
	}
	if _, err := rsvc.Call(ctx, "close_workspace"); err == nil || !strings.Contains(err.Error(), "needs admin permission on workspace team-o; caller") {
		t.Fatalf("reader close_workspace: %v", err)
	}
}
