package process

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// nodeApp connects back with the HYPHA_* variables through the real
// hypha-rpc JavaScript client and registers the default service.
const nodeApp = `const WebSocket = require("ws");
if (typeof globalThis.WebSocket === "undefined") globalThis.WebSocket = WebSocket;
const { hyphaWebsocketClient } = require("hypha-rpc");
(async () => {
  const server = await hyphaWebsocketClient.connectToServer({
    server_url: process.env.HYPHA_SERVER_URL, workspace: process.env.HYPHA_WORKSPACE,
    client_id: process.env.HYPHA_CLIENT_ID, token: process.env.HYPHA_TOKEN,
  });
  await server.registerService({ id: "default", name: "Node App", config: { visibility: "public" },
    hello: (name) => "hello " + name + " from " + process.env.HYPHA_APP_ID });
  console.log("app ready in", process.env.HYPHA_WORKSPACE);
})().catch((e) => { console.error("app failed:", e); process.exit(1); });
`

// TestServerAppsNodeEval runs the whole path: a user installs a node-eval
// app through public/server-apps, the controller picks the process worker
// registered in public, the app process connects back and serves, and stop
// ends the process.
func TestServerAppsNodeEval(t *testing.T) {
	_, err := exec.LookPath("node")
	testserver.NeedOrSkip(t, err == nil, "node")
	modules, err := filepath.Abs("../../interop/js/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(modules, "hypha-rpc"))
	testserver.NeedOrSkip(t, err == nil, "interop/js/node_modules (npm ci in interop/js)")
	s := testserver.Start(t, server.Config{DataDir: t.TempDir()})
	wc := publicRoot(t, s, "builtin-process-worker")
	reg, err := Register(ctxT(t), wc, Options{NodePath: modules, WorkDir: testserver.SharedTempDir(t)}, hyphaworker.Options{UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := reg.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	tok, err := s.Issuer().Generate(&auth.UserInfo{ID: "alice", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-alice"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	user := testserver.Connect(t, s, rpc.Config{Token: tok, ClientID: "alice-client"})
	ctx := ctxT(t)
	apps, err := user.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	_, err = apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "node-app",
		"manifest": map[string]any{"type": TypeNode, "name": "Node App", "entry_point": "main.js"},
		"files":    []any{map[string]any{"path": "main.js", "content": nodeApp}},
		"timeout":  20.0,
		// The app's callers use its default service at once: it names it
		// (a process app is otherwise ready once it runs; docs/apps.md).
		"wait_for_service": "default",
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if n := reg.Worker.Sessions.Len(); n != 0 {
		t.Fatalf("%d sessions left by the install test run", n)
	}

	v, err := apps.Call(ctx, "start", "node-app", rpc.Kwargs{"timeout": 20.0})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	info := v.(map[string]any)
	sid, _ := info["id"].(string)
	if info["worker_id"] != reg.ServiceID || !strings.HasPrefix(sid, "ws-user-alice/_rapp_") {
		t.Fatalf("session = %v", info)
	}
	app, err := user.GetService(ctx, sid+":default")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := app.Call(ctx, "hello", "go"); err != nil || got != "hello go from node-app" {
		t.Fatalf("hello = %v, %v", got, err)
	}
	logs, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "stdout"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(logContents(logs), "\n"), "app ready in ws-user-alice") {
		t.Fatalf("logs = %v", logs)
	}
	pid := procOf(t, reg.Worker, sid).pid

	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	waitGone(t, []int{pid}, []int{pid})
	if n := reg.Worker.Sessions.Len(); n != 0 {
		t.Fatalf("%d sessions after stop", n)
	}
	noChildren(t)
}

func logContents(v any) []string {
	m, _ := v.(map[string]any)
	items, _ := m["items"].([]any)
	var out []string
	for _, it := range items {
		if e, ok := it.(map[string]any); ok {
			if s, ok := e["content"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
