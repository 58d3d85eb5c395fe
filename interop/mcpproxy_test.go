package interop

// The MCP proxy worker (workers/mcpproxy) with the npm MCP SDK's server
// (interop/js/mcp_stdio_server.mjs, @modelcontextprotocol/sdk) as a stdio
// MCP server: its tools, resource and prompt are called from Go and from
// the npm hypha-rpc client through the app's service.

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/workers/mcpproxy"
)

func TestJSMCPServerThroughProxy(t *testing.T) {
	t.Parallel()
	node, dir := needJS(t)
	script, err := filepath.Abs(filepath.Join(dir, "mcp_stdio_server.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	root := goConnect(t, s.URL(), rpc.Config{Token: testserver.RootToken, ClientID: "mcp-caller"})
	ctx := testserver.Ctx(t)
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	w := mcpproxy.New(mcpproxy.Options{AllowStdio: true, Logger: testserver.Logger(t)})
	ws := root.Info().Workspace
	cfg := worker.Config{ID: ws + "/_rapp_node-mcp", AppID: "node-mcp", Workspace: ws, ClientID: "_rapp_node-mcp",
		ServerURL: s.URL(), Token: tok, Manifest: worker.Manifest{"type": mcpproxy.AppType, "mcpServers": map[string]any{
			"node": map[string]any{"type": "stdio", "command": node, "args": []any{script}},
		}}}
	startCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	_, err = w.Start(startCtx, cfg)
	cancel()
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := w.Stop(context.Background(), cfg.ID); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	sid := cfg.ID + ":node"

	// From Go.
	svc, err := root.GetService(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "type", svc.Type, "mcp")
	sum, err := svc.Func("tools.add").Call(ctx, rpc.Kwargs{"a": 2, "b": 40})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "add from Go", mustJSON(sum), `{"sum":42}`)
	params, _ := svc.Func("tools.add").Schema()["parameters"].(map[string]any)
	expect(t, "add schema required", mustJSON(params["required"]), `["a","b"]`)
	motd, err := svc.Func("resources.motd.read").Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "resource", motd, "node says hi")
	p, err := svc.Func("prompts.review.read").Call(ctx, rpc.Kwargs{"code": "x := 1"})
	if err != nil {
		t.Fatal(err)
	}
	expectContains(t, "prompt", mustJSON(p), "Review: x := 1")

	// From the npm hypha-rpc client.
	r := jsRun(t, "call", s.URL(), map[string]any{
		"token": testserver.RootToken, "workspace": ws, "service_id": sid,
		"calls": []any{
			map[string]any{"fn": "tools.greet", "kwargs": map[string]any{"name": "Ada"}},
			map[string]any{"fn": "tools.add", "kwargs": map[string]any{"a": 1, "b": 2}},
		},
	})
	expect(t, "greet from JS", at(r, "results", 0), "Hello, Ada!")
	expect(t, "add from JS", mustJSON(at(r, "results", 1)), `{"sum":3}`)

	stop()
	testserver.WaitFor(t, 30*time.Second, "no service of the app", func() bool {
		list, err := root.ListServices(ctx, ws)
		if err != nil {
			return false
		}
		for _, si := range list {
			if strings.HasPrefix(si.ID, cfg.ID+":") {
				return false
			}
		}
		return true
	})
}
