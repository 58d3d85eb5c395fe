package embedded_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
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
