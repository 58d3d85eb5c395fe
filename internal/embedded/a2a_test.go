package embedded_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/workers/process"
)

// TestEmbeddedA2AWorker: an a2a-agent app installed by a user starts on
// the built-in A2A proxy worker through the apps controller; the agent's
// service (an A2A agent on httptest) answers run, and stopping the app
// leaves no service of it.
func TestEmbeddedA2AWorker(t *testing.T) {
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet {
			_ = json.NewEncoder(w).Encode(map[string]any{"name": "Echo", "description": "echo", "version": "1",
				"capabilities": map[string]any{}, "skills": []any{map[string]any{"id": "echo", "name": "Echo"}}})
			return
		}
		var req struct {
			ID     any `json:"id"`
			Params struct {
				Message struct {
					Parts []struct{ Text string } `json:"parts"`
				} `json:"message"`
			} `json:"params"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": map[string]any{
			"kind": "message", "messageId": "m", "role": "agent",
			"parts": []any{map[string]any{"kind": "text", "text": "echo " + req.Params.Message.Parts[0].Text}}}})
	}))
	defer agent.Close()
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
	user, apps := aliceApps(t, sys)
	ctx := testserver.Ctx(t)
	_, err = apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "hello-a2a",
		"manifest": map[string]any{"type": "a2a-agent", "name": "Hello A2A", "a2aAgents": map[string]any{"echo": map[string]any{"url": agent.URL}}},
		"stage":    true,
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "hello-a2a", rpc.Kwargs{"timeout": 30.0, "stage": true, "wait_for_service": "default"})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := v.(map[string]any)["id"].(string)
	svc, err := user.GetService(ctx, sid+":echo")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Call(ctx, "run", "hi"); err != nil || got != "echo hi" {
		t.Fatalf("run = %v, %v", got, err)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the app's services to go", func() bool {
		infos, err := user.ListServices(ctx, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		for _, si := range infos {
			if strings.Contains(si.ID, strings.TrimPrefix(sid, "ws-user-alice/")+":") {
				return false
			}
		}
		return true
	})
}
