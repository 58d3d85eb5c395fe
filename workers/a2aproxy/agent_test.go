package a2aproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// testAgent is an A2A agent written for the tests: an agent card with two
// skills, message/send answering a completed task whose artifact echoes the
// text, and message/stream as server-sent events (working, an artifact per
// word, completed). endless makes message/stream send events until the
// client goes away; hugeCard makes the card larger than any limit.
type testAgent struct {
	*httptest.Server
	endless    bool
	hugeCard   bool
	streamGone atomic.Int64 // streams whose client went away
	lastAuth   atomic.Value
}

func newTestAgent(t *testing.T, setup func(*testAgent)) *testAgent {
	t.Helper()
	a := &testAgent{}
	if setup != nil {
		setup(a)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+CardPath, a.card)
	mux.HandleFunc("POST /", a.rpc)
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func (a *testAgent) card(w http.ResponseWriter, r *http.Request) {
	a.lastAuth.Store(r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	desc := "Echoes what it is told"
	if a.hugeCard {
		desc = strings.Repeat("x", 2<<20)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"name": "Echo Agent", "description": desc, "version": "1.2.3", "url": a.URL + "/",
		"protocolVersion":    "0.3.0",
		"capabilities":       map[string]any{"streaming": true, "pushNotifications": false},
		"defaultInputModes":  []string{"text/plain"},
		"defaultOutputModes": []string{"text/plain"},
		"skills": []any{
			map[string]any{"id": "echo", "name": "Echo", "description": "Echo the text back", "tags": []string{"echo"}},
			map[string]any{"id": "shout-loud", "name": "Shout", "description": "Echo in capitals", "tags": []string{}},
		},
	})
}

type rpcReq struct {
	ID     any    `json:"id"`
	Method string `json:"method"`
	Params struct {
		Message struct {
			Role  string           `json:"role"`
			Parts []map[string]any `json:"parts"`
		} `json:"message"`
	} `json:"params"`
}

func (req rpcReq) text() string {
	var s []string
	for _, p := range req.Params.Message.Parts {
		if t, ok := p["text"].(string); ok {
			s = append(s, t)
		}
		if d, ok := p["data"]; ok {
			b, _ := json.Marshal(d)
			s = append(s, string(b))
		}
	}
	return strings.Join(s, "+")
}

func (a *testAgent) rpc(w http.ResponseWriter, r *http.Request) {
	a.lastAuth.Store(r.Header.Get("Authorization"))
	var req rpcReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	text := req.text()
	answer := "echo: " + text
	if strings.HasPrefix(text, "SHOUT ") {
		answer = strings.ToUpper(answer)
	}
	task := func(state string, final bool) map[string]any {
		return map[string]any{"kind": "status-update", "taskId": "t1", "contextId": "c1",
			"status": map[string]any{"state": state}, "final": final}
	}
	switch req.Method {
	case "message/send":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": map[string]any{
			"kind": "task", "id": "t1", "contextId": "c1", "status": map[string]any{"state": "completed"},
			"artifacts": []any{map[string]any{"artifactId": "a1", "parts": []any{map[string]any{"kind": "text", "text": answer}}}},
		}})
	case "message/stream":
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		send := func(v map[string]any) bool {
			b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": v})
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return false
			}
			fl.Flush()
			return r.Context().Err() == nil
		}
		if a.endless {
			for i := 0; send(task("working", false)); i++ {
			}
			a.streamGone.Add(1)
			return
		}
		send(task("working", false))
		for i, word := range strings.Fields(answer) {
			send(map[string]any{"kind": "artifact-update", "taskId": "t1", "contextId": "c1",
				"artifact": map[string]any{"artifactId": fmt.Sprint("a", i), "parts": []any{map[string]any{"kind": "text", "text": word}}}})
		}
		send(task("completed", true))
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID,
			"error": map[string]any{"code": -32601, "message": "Method not found"}})
	}
}
