package terminal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// world is a terminal worker registered by alice in her workspace, the
// controller (root in public) that starts a bash session in alice's
// workspace and one in bob's, alice, a read-only member of alice's
// workspace, bob (another workspace) and an anonymous client.
type world struct {
	s                        *server.Server
	w                        *Worker
	serviceID                string
	alice, reader, bob, anon *rpc.Client
	mine, foreign            string
}

func publicRoot(t *testing.T, s *server.Server, clientID string) *rpc.Client {
	t.Helper()
	root := auth.RootUser()
	root.Scope.CurrentWorkspace = "public"
	root.CurrentWorkspace = "public"
	tok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testserver.Connect(t, s, rpc.Config{Token: tok, Workspace: "public", ClientID: clientID})
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := ctxT(t)
	wd := &world{s: testserver.Start(t, server.Config{})}
	home := "ws-user-alice"
	tok := func(id, ws string, grants map[string]auth.Permission) string {
		s, err := wd.s.Issuer().Generate(&auth.UserInfo{ID: id, Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: ws, Workspaces: grants}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	aliceTok := tok("alice", home, nil)
	wc := testserver.Connect(t, wd.s, rpc.Config{Token: aliceTok, ClientID: "alice-worker"})
	wd.w = New(Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)})
	h, err := hyphaworker.Host(ctx, wc, wd.w, hyphaworker.Options{Visibility: hyphaworker.Public})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := h.Close(cctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	wd.serviceID = h.ServiceID
	wd.alice = testserver.Connect(t, wd.s, rpc.Config{Token: aliceTok, ClientID: "alice"})
	wd.reader = testserver.Connect(t, wd.s, rpc.Config{Token: tok("reader", home, map[string]auth.Permission{home: auth.Read}), ClientID: "reader", Workspace: home})
	wd.bob = testserver.Connect(t, wd.s, rpc.Config{Token: tok("bob", "", nil), ClientID: "bob"})
	wd.anon = testserver.Connect(t, wd.s, rpc.Config{ClientID: "anon"})

	ctl := wd.remote(t, publicRoot(t, wd.s, "controller"))
	for _, s := range []struct {
		ws  string
		dst *string
	}{{home, &wd.mine}, {"ws-user-bob", &wd.foreign}} {
		cfg := termConfig(s.ws, "term", map[string]any{"startup_command": "/bin/bash --norc -i"})
		if *s.dst, err = ctl.Start(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return wd
}

func (wd *world) remote(t *testing.T, c *rpc.Client) *hyphaworker.RemoteWorker {
	t.Helper()
	svc, err := c.GetService(ctxT(t), wd.serviceID)
	if err != nil {
		t.Fatal(err)
	}
	return hyphaworker.Remote(svc)
}

func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error containing %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: err = %v, want it to contain %q", what, err, p)
		}
	}
}

// TestTerminalOverRPC: alice, a member of the worker's workspace, drives
// her session through the service: execute, write_terminal, resize,
// get_screen_content and attach as a generator.
func TestTerminalOverRPC(t *testing.T) {
	wd := newWorld(t)
	ctx := ctxT(t)
	w := wd.remote(t, wd.alice)
	res, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: wd.mine, Script: "echo over-rpc", Config: map[string]any{"timeout": 60}})
	if err != nil {
		t.Fatal(err)
	}
	if got := stdoutText(t, res.(map[string]any)); got != "over-rpc\n" {
		t.Fatalf("execute: %q", got)
	}
	g, err := w.Stream(ctx, ExtAttach, wd.mine)
	if err != nil {
		t.Fatal(err)
	}
	first := true
	var seen strings.Builder
	for v, err := range g.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		m := v.(map[string]any)
		if first {
			first = false
			if m["type"] != "initial" || !strings.Contains(m["content"].(string), "over-rpc") {
				t.Fatalf("initial: %v", m)
			}
			if _, err := w.Call(ctx, ExtWriteTerminal, wd.mine, "echo live-$((2+3))\r"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		seen.WriteString(m["content"].(string))
		if strings.Contains(seen.String(), "live-5") {
			break
		}
	}
	if _, err := w.Call(ctx, ExtResizeTerminal, wd.mine, 40, 120); err != nil {
		t.Fatal(err)
	}
	v, err := w.Call(ctx, ExtGetScreenContent, wd.mine)
	if err != nil {
		t.Fatal(err)
	}
	if m := v.(map[string]any); m["rows"] != int64(40) || !strings.Contains(m["content"].(string), "live-5") {
		t.Fatalf("screen: %v", m)
	}
	// get_logs(type="screen") is the bare screen text on the wire, as
	// upstream's terminal worker answers it; RemoteWorker (our apps
	// controller) takes it back as a one-item page. Other types stay pages.
	raw, err := w.Service().Call(ctx, "get_logs", wd.mine, "screen")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := raw.(string); !ok || !strings.Contains(s, "live-5") {
		t.Fatalf("get_logs(type=screen) on the wire: %T %v", raw, raw)
	}
	page, err := w.GetLogs(ctx, wd.mine, worker.LogQuery{Type: "screen"})
	if err != nil || len(page.Items) != 1 || page.Items[0].Type != "screen" || !strings.Contains(page.Items[0].Content, "live-5") {
		t.Fatalf("get_logs(type=screen) through RemoteWorker: %+v, %v", page, err)
	}
	if stdout, err := w.GetLogs(ctx, wd.mine, worker.LogQuery{Type: worker.LogStdout}); err != nil || len(stdout.Items) == 0 {
		t.Fatalf("get_logs(type=stdout): %+v, %v", stdout, err)
	}

	// Upstream's form of attach, attach(session_id, on_screen_update), as
	// upstream's web terminal calls it: the items go to the callback; a
	// failing callback detaches, and the call answers {success, detached}.
	var mu sync.Mutex
	var cbSeen strings.Builder
	var types []string
	onUpdate := func(_ context.Context, m map[string]any) error {
		mu.Lock()
		defer mu.Unlock()
		types = append(types, fmt.Sprint(m["type"]))
		if len(types) == 1 {
			go func() { _, _ = w.Call(ctx, ExtWriteTerminal, wd.mine, "echo cb-$((4+5))\r") }()
			return nil
		}
		cbSeen.WriteString(fmt.Sprint(m["content"]))
		if strings.Contains(cbSeen.String(), "cb-9") {
			return errors.New("enough")
		}
		return nil
	}
	av, err := w.Service().Call(ctx, ExtAttach, wd.mine, onUpdate)
	if err != nil {
		t.Fatalf("attach(session_id, on_screen_update): %v", err)
	}
	g2, ok := av.(*rpc.RemoteGenerator)
	if !ok {
		t.Fatalf("attach with a callback answered %T", av)
	}
	var last any
	for v, err := range g2.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		last = v
	}
	if m, _ := last.(map[string]any); m["success"] != true || m["detached"] != true || m["session_id"] != wd.mine {
		t.Fatalf("attach with a callback ended with %v", last)
	}
	mu.Lock()
	defer mu.Unlock()
	if types[0] != "initial" || !strings.Contains(cbSeen.String(), "cb-9") {
		t.Fatalf("on_screen_update saw %v: %q", types, cbSeen.String())
	}
}

// TestHostileTerminalCallers: another workspace, an anonymous client and
// a read-only member cannot attach, write, resize or execute; alice
// cannot name bob's session; nothing reaches the terminals.
func TestHostileTerminalCallers(t *testing.T) {
	wd := newWorld(t)
	ctx := ctxT(t)
	calls := []struct {
		name string
		args []any
	}{
		{ExtWriteTerminal, []any{"touch /tmp/owned\r"}},
		{ExtResizeTerminal, []any{10, 10}},
		{ExtReadTerminal, nil},
		{ExtGetScreenContent, nil},
	}
	for who, c := range map[string]*rpc.Client{"bob": wd.bob, "anonymous": wd.anon} {
		svc, err := c.GetService(ctx, wd.serviceID)
		if err != nil {
			continue // not even found: refused earlier still
		}
		w := hyphaworker.Remote(svc)
		for _, sid := range []string{wd.mine, wd.foreign} {
			for _, call := range calls {
				_, err := w.Call(ctx, call.name, append([]any{sid}, call.args...)...)
				wantErr(t, who+" "+call.name, err, "permission denied")
			}
			_, err := w.Stream(ctx, ExtAttach, sid)
			wantErr(t, who+" attach", err, "permission denied")
			_, err = w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: "touch /tmp/owned"})
			wantErr(t, who+" execute", err, "permission denied")
		}
	}
	// The read-only member may look, not type.
	r := wd.remote(t, wd.reader)
	if _, err := r.Call(ctx, ExtGetScreenContent, wd.mine); err != nil {
		t.Fatalf("reader get_screen_content: %v", err)
	}
	for _, call := range calls[:3] {
		_, err := r.Call(ctx, call.name, append([]any{wd.mine}, call.args...)...)
		wantErr(t, "reader "+call.name, err, "permission denied", "read_write")
	}
	_, err := r.Stream(ctx, ExtAttach, wd.mine)
	wantErr(t, "reader attach", err, "permission denied")
	_, err = r.Execute(ctx, worker.ExecuteRequest{SessionID: wd.mine, Script: "id"})
	wantErr(t, "reader execute", err, "permission denied")
	// Alice cannot name bob's session: it does not exist for her.
	a := wd.remote(t, wd.alice)
	for _, call := range calls {
		_, err := a.Call(ctx, call.name, append([]any{wd.foreign}, call.args...)...)
		wantErr(t, "alice on bob's session "+call.name, err, "session not found")
	}
	_, err = a.Stream(ctx, ExtAttach, wd.foreign)
	wantErr(t, "alice attach bob's", err, "session not found")
	_, err = a.Execute(ctx, worker.ExecuteRequest{SessionID: wd.foreign, Script: "id"})
	wantErr(t, "alice execute bob's", err, "session not found")
	// Nothing was typed into either terminal.
	for _, sid := range []string{wd.mine, wd.foreign} {
		_, tt, err := wd.w.terminalOf(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		tt.mu.Lock()
		sb := string(tt.scroll.from(0, tt.scroll.len()))
		tt.mu.Unlock()
		if strings.Contains(sb, "owned") {
			t.Fatalf("a refused write reached %s: %q", sid, sb)
		}
	}
}
