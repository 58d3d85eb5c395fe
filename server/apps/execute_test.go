package apps_test

import (
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// TestExecuteRelay: the controller relays execute to the session's worker
// for the session's owner (the worker here is in public, which users may
// not call), with the worker's result unchanged and progress forwarded
// through the controller's own callback.
func TestExecuteRelay(t *testing.T) {
	_, w, _, apps, _ := setup(t)
	call(t, apps, "install", with(testApp(""), "app_id", "kernel"))
	sid := asMap(t, call(t, apps, "start", "kernel"))["id"].(string)

	var mu sync.Mutex
	var progress []string
	cb := func(msg map[string]any) {
		mu.Lock()
		progress = append(progress, msg["message"].(string))
		mu.Unlock()
	}
	res := asMap(t, call(t, apps, "execute", sid, "print(1)", map[string]any{"timeout": 5}, cb))
	outs := asList(t, res["outputs"])
	if res["status"] != "ok" || len(outs) != 1 || asMap(t, outs[0])["text"] != "print(1)" {
		t.Fatalf("execute = %v", res)
	}
	testserver.WaitFor(t, 30*time.Second, "the worker's progress", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(progress, "executing")
	})
	if res := asMap(t, call(t, apps, "execute", rpc.Kwargs{"session_id": sid, "script": "fail"})); res["status"] != "error" {
		t.Fatalf("a failing execute = %v", res)
	}
	callErr(t, apps, "execute", "needs session_id and script", rpc.Kwargs{"session_id": sid})
	callErr(t, apps, "execute", "not found", aliceWS+"/_rapp_nothing", "1")
	w.mu.Lock()
	n := len(w.executed)
	w.mu.Unlock()
	if n != 2 {
		t.Fatalf("the worker ran %d executes, want 2", n)
	}
}

// TestHostileExecute: execute in alice's session by an anonymous client, by
// bob and with a read-only token of alice's workspace, over the websocket
// and over HTTP: refused, and the worker never runs anything.
func TestHostileExecute(t *testing.T) {
	s, w, _, apps, _ := setup(t)
	ctx := testserver.Ctx(t)
	call(t, apps, "install", with(testApp(""), "app_id", "kernel"))
	sid := asMap(t, call(t, apps, "start", "kernel"))["id"].(string)
	roTok, err := s.Issuer().Generate(&auth.UserInfo{ID: "reader", Roles: []string{}, Scope: auth.Scope{
		CurrentWorkspace: aliceWS, Workspaces: map[string]auth.Permission{aliceWS: auth.Read}}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{"anonymous": "", "bob": userToken(t, s, "bob"), "read-only": roTok}
	for name, tok := range tokens {
		cfg := rpc.Config{Token: tok, NoReconnect: true}
		if name == "read-only" {
			cfg.Workspace = aliceWS
		}
		svc := appsService(t, testserver.Connect(t, s, cfg))
		callErr(t, svc, "execute", "Permission denied", sid, "import os; os.system('touch /tmp/owned')")
		// The context keyword cannot make the caller someone else.
		callErr(t, svc, "execute", "Permission denied", rpc.Kwargs{"session_id": sid, "script": "1",
			"context": map[string]any{"ws": aliceWS, "user": map[string]any{"id": "alice"}}})

		q := url.Values{"session_id": {sid}, "script": {"print(2)"}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/public/services/server-apps/execute?"+q.Encode(), nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: HTTP execute answered %d, want 403", name, resp.StatusCode)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.executed) != 0 {
		t.Fatalf("the worker ran %d executes for refused callers", len(w.executed))
	}
}
