package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/workers/a2aproxy"
)

// TestJSCallsA2AProxy: the npm hypha-rpc client calls an a2a-agent app's
// service (workers/a2aproxy; the agent is an A2A agent on httptest): run
// answers the agent's text, and stream is an async generator of the
// agent's message/stream events, read with for await to its end.
func TestJSCallsA2AProxy(t *testing.T) {
	t.Parallel()
	needJS(t)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"name": "Echo", "version": "1",
				"capabilities": map[string]any{"streaming": true}, "skills": []any{}})
			return
		}
		var req struct {
			ID     any    `json:"id"`
			Method string `json:"method"`
			Params struct {
				Message struct {
					Parts []struct{ Text string } `json:"parts"`
				} `json:"message"`
			} `json:"params"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		text := "echo " + req.Params.Message.Parts[0].Text
		msg := func(s string) map[string]any {
			return map[string]any{"kind": "message", "messageId": "m", "role": "agent", "parts": []any{map[string]any{"kind": "text", "text": s}}}
		}
		if req.Method == "message/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": msg(fmt.Sprint(text, " ", i))})
				fmt.Fprintf(w, "data: %s\n\n", b)
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": msg(text)})
	}))
	defer agent.Close()

	s := startServer(t)
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "root")
	if _, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": "a2a-team"}); err != nil {
		t.Fatal(err)
	}
	appTok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "a2a-team", Permission: "read_write", ClientID: "a2a-app"})
	if err != nil {
		t.Fatal(err)
	}
	userTok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "a2a-team", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	w := a2aproxy.New(a2aproxy.Options{Logger: testserver.Logger(t)})
	defer w.Shutdown(context.Background())
	if _, err := w.Start(ctx, worker.Config{ID: "a2a-team/a2a-app", Workspace: "a2a-team", ClientID: "a2a-app",
		ServerURL: s.URL(), Token: appTok, Manifest: worker.Manifest{"type": a2aproxy.Type,
			"a2aAgents": map[string]any{"echo": map[string]any{"url": agent.URL}}}}); err != nil {
		t.Fatal(err)
	}
	r := jsRun(t, "worker_extensions", s.URL(), map[string]any{"token": userTok, "workspace": "a2a-team",
		"service_id": "a2a-team/a2a-app:echo", "steps": []any{
			map[string]any{"fn": "run", "args": []any{"hi"}},
			map[string]any{"fn": "stream", "args": []any{"go"}, "stream": 10},
		}})
	steps := r["steps"].([]any)
	if got := steps[0].(map[string]any)["result"]; got != "echo hi" {
		t.Fatalf("run from JS = %v", steps[0])
	}
	st := steps[1].(map[string]any)
	items, _ := st["items"].([]any)
	if len(items) != 3 || st["ended"] != true {
		t.Fatalf("stream from JS = %v", st)
	}
	for i, it := range items {
		parts := it.(map[string]any)["parts"].([]any)
		if got := parts[0].(map[string]any)["text"]; got != fmt.Sprint("echo go ", i) {
			t.Fatalf("stream item %d = %v", i, it)
		}
	}
}
