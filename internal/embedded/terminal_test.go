package embedded_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/workers/process"
)

// TestEmbeddedTerminalWorker: the system always registers the terminal
// worker; a terminal app installed by a user starts on it, and the user
// runs a command in it through the controller's execute.
func TestEmbeddedTerminalWorker(t *testing.T) {
	sys, err := embedded.Start(testserver.Ctx(t), embedded.Options{
		Server:    server.Config{DataDir: t.TempDir(), Logger: testserver.Logger(t)},
		Addr:      "127.0.0.1:0",
		Process:   process.Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)},
		NoConda:   true,
		NoBrowser: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if sys.TerminalWorker() == nil {
		t.Fatal("terminal worker not registered")
	}
	_, apps := aliceApps(t, sys)
	ctx := testserver.Ctx(t)
	_, err = apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "hello-terminal",
		"manifest": map[string]any{"type": "terminal", "name": "Hello terminal", "entry_point": "motd.txt", "startup_command": "/bin/bash --norc -i"},
		"files":    []any{map[string]any{"path": "motd.txt", "content": "welcome\n"}},
		"stage":    true,
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "hello-terminal", rpc.Kwargs{"timeout": 30.0, "stage": true})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := v.(map[string]any)["id"].(string)
	res, err := apps.Call(ctx, "execute", sid, "cat motd.txt; echo hello from $HYPHA_WORKSPACE", map[string]any{"timeout": 30})
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	m := res.(map[string]any)
	outs := m["outputs"].([]any)
	if m["status"] != "ok" || !strings.HasPrefix(outs[0].(map[string]any)["text"].(string), "welcome\nhello from ws-user-") {
		t.Fatalf("execute: %v", m)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the session to end", func() bool { return sys.TerminalWorker().Sessions.Len() == 0 })
}

func workerScreenQuery() worker.LogQuery { return worker.LogQuery{Type: "screen"} }

// TestHostileTerminalRelay: the controller's terminal relay
// (write_terminal, resize_terminal, attach_terminal on server-apps) lets
// the session's own workspace in and nobody else: another workspace's
// user, an anonymous client and a read-only member are refused, and what
// they tried to type never reaches the terminal.
func TestHostileTerminalRelay(t *testing.T) {
	sys, err := embedded.Start(testserver.Ctx(t), embedded.Options{
		Server:    server.Config{DataDir: t.TempDir(), Logger: testserver.Logger(t)},
		Addr:      "127.0.0.1:0",
		Process:   process.Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)},
		NoConda:   true,
		NoBrowser: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	_, apps := aliceApps(t, sys)
	ctx := testserver.Ctx(t)
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "t",
		"manifest": map[string]any{"type": "terminal", "name": "T", "entry_point": "rc.sh", "startup_command": "/bin/bash --norc -i"},
		"files":    []any{map[string]any{"path": "rc.sh", "content": "\n"}},
		"stage":    true,
	}); err != nil {
		t.Fatal(err)
	}
	v, err := apps.Call(ctx, "start", "t", rpc.Kwargs{"timeout": 30.0, "stage": true})
	if err != nil {
		t.Fatal(err)
	}
	sid := v.(map[string]any)["id"].(string)
	ws, _, _ := strings.Cut(sid, "/")
	token := func(u *auth.UserInfo) string {
		s, err := sys.Server.Issuer().Generate(u, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	clients := map[string]*rpc.Client{
		"bob":       testserver.Connect(t, sys.Server, rpc.Config{Token: token(&auth.UserInfo{ID: "bob", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-bob"}}), ClientID: "bob", NoReconnect: true}),
		"anonymous": testserver.Connect(t, sys.Server, rpc.Config{ClientID: "anon", NoReconnect: true}),
		"reader": testserver.Connect(t, sys.Server, rpc.Config{Token: token(&auth.UserInfo{ID: "reader", Roles: []string{},
			Scope: auth.Scope{CurrentWorkspace: ws, Workspaces: map[string]auth.Permission{ws: auth.Read}}}), ClientID: "reader", Workspace: ws, NoReconnect: true}),
	}
	for who, c := range clients {
		svc, err := c.GetService(ctx, "public/server-apps")
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range [][]any{{"write_terminal", sid, "touch /tmp/owned-by-" + who + "\r"}, {"resize_terminal", sid, 5, 5}, {"attach_terminal", sid}} {
			if _, err := svc.Call(ctx, call[0].(string), call[1:]...); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permission") {
				t.Errorf("%s %s: err = %v, want permission denied", who, call[0], err)
			}
		}
	}
	// Alice may.
	if _, err := apps.Call(ctx, "write_terminal", sid, "echo alice-was-here\r"); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "alice's input on the screen", func() bool {
		p, err := sys.TerminalWorker().GetLogs(context.Background(), sid, workerScreenQuery())
		return err == nil && strings.Contains(p.Items[0].Content, "alice-was-here")
	})
	p, _ := sys.TerminalWorker().GetLogs(context.Background(), sid, workerScreenQuery())
	if strings.Contains(p.Items[0].Content, "owned") {
		t.Fatalf("a refused write reached the terminal:\n%s", p.Items[0].Content)
	}
	// The controller's get_logs(type="screen"): a one-item page (the worker
	// sends the bare text on the wire, as upstream's does).
	lv, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "screen"})
	if err != nil {
		t.Fatal(err)
	}
	items, _ := lv.(map[string]any)["items"].([]any)
	if len(items) != 1 || !strings.Contains(items[0].(map[string]any)["content"].(string), "alice-was-here") {
		t.Fatalf("server-apps get_logs(type=screen): %v", lv)
	}
}
