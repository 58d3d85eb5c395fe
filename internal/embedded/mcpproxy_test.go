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

// TestEmbeddedMCPProxyRoundTrip: a Hypha service, served as an MCP server
// by the server's MCP endpoint, is the MCP server of an mcp-server app
// that a user installs and starts on the built-in MCP proxy worker: its
// function is called back through the app's service, and stop leaves no
// service of the app.
func TestEmbeddedMCPProxyRoundTrip(t *testing.T) {
	sys, err := embedded.Start(testserver.Ctx(t), embedded.Options{
		Server:     server.Config{DataDir: t.TempDir(), Logger: testserver.Logger(t)},
		Addr:       "127.0.0.1:0",
		Process:    process.Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)},
		NoConda:    true,
		NoBrowser:  true,
		NoTerminal: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	alice, apps := aliceApps(t, sys)
	ctx := testserver.Ctx(t)
	testserver.MustRegister(t, alice, rpc.Service{ID: "calc", Name: "Calculator", Functions: map[string]any{
		"add": rpc.Doc(rpc.Params(func(a, b int) int { return a + b }, "a", "b"), "Add two integers."),
	}})
	tok, err := alice.GenerateToken(ctx, rpc.TokenConfig{Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	ws := alice.Info().Workspace
	endpoint := sys.Server.URL() + "/" + ws + "/mcp/" + alice.Info().ClientID + ":calc/mcp"
	_, err = apps.Call(ctx, "install", rpc.Kwargs{
		"app_id": "calc-mcp",
		"manifest": map[string]any{"type": "mcp-server", "name": "Calc over MCP", "mcpServers": map[string]any{
			"calc": map[string]any{"type": "streamable-http", "url": endpoint, "headers": map[string]any{"Authorization": "Bearer " + tok}},
		}},
		"files": []any{},
		"stage": true,
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "calc-mcp", rpc.Kwargs{"timeout": 60.0, "stage": true})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := v.(map[string]any)["id"].(string)
	svc, err := alice.GetService(ctx, sid+":calc")
	if err != nil {
		t.Fatalf("the app's calc service: %v", err)
	}
	if svc.Type != "mcp" {
		t.Fatalf("type: %q", svc.Type)
	}
	got, err := svc.Func("tools.add").Call(ctx, rpc.Kwargs{"a": 2, "b": 3})
	if err != nil {
		t.Fatalf("tools.add: %v", err)
	}
	if m, ok := got.(map[string]any); !ok || m["result"] != int64(5) && m["result"] != 5.0 && m["result"] != 5 {
		t.Fatalf("tools.add: %#v", got)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "no service of the app", func() bool {
		list, err := alice.ListServices(ctx, ws)
		if err != nil {
			return false
		}
		for _, si := range list {
			if strings.HasPrefix(si.ID, sid+":") {
				return false
			}
		}
		return true
	})
}
