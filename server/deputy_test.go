package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// methodRef is a method reference as a hostile client writes it.
func methodRef(target, method string) map[string]any {
	return map[string]any{"_rtype": "method", "_rtarget": target, "_rmethod": method, "_rpromise": false}
}

// TestHostileManagerForeignPromise: the manager is no confused deputy. An
// anonymous client calls services.default.echo with a promise (hypha-rpc's
// map form) or arguments holding method references to a protected service
// of another workspace; the manager refuses before calling anything, the
// refusal names the sender and the target, and the victim's function is
// never invoked.
func TestHostileManagerForeignPromise(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	victim := testserver.RootClient(t, s, "victim")
	var stops atomic.Int64
	testserver.MustRegister(t, victim, rpc.Service{ID: "worker", Config: rpc.ServiceConfig{Visibility: "protected"},
		Functions: map[string]any{"stop": func(any) string { stops.Add(1); return "stopped" }}})
	mallory := anonRaw(t, s, "mallory")
	stop := methodRef("ws-user-root/victim", "services.worker.stop")
	own := func(m string) map[string]any { return methodRef(mallory.ID, m) }
	for _, tc := range []struct {
		name  string
		args  []any
		extra map[string]any
	}{
		{"promise resolve and reject", []any{"x"}, map[string]any{"promise": map[string]any{
			"resolve": stop, "reject": stop, "heartbeat": stop, "interval": 0.01}}},
		{"promise reject only", []any{"x"}, map[string]any{"promise": map[string]any{
			"resolve": own("s.resolve"), "reject": stop}}},
		{"promise heartbeat only", []any{"x"}, map[string]any{"promise": map[string]any{
			"resolve": own("s.resolve"), "reject": own("s.reject"), "heartbeat": stop, "interval": 0.01}}},
		{"argument (echoed back)", []any{map[string]any{"f": stop}}, nil},
		{"bare target in the sender's workspace", []any{"x"}, map[string]any{"promise": map[string]any{
			"resolve": methodRef("victim", "services.worker.stop"), "reject": methodRef("victim", "services.worker.stop")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mallory.Call(ctx, mallory.ManagerID(), "services.default.echo", tc.args, nil, tc.extra)
			if err == nil {
				t.Fatal("the manager accepted the call")
			}
			for _, w := range []string{"foreign callable refused", mallory.ID} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			// The manager talks to the victim after this ping only if it
			// called it before: the victim must have seen nothing.
			if v, err := victim.Manager().Call(ctx, "ping", "victim"); err != nil || v != "pong" {
				t.Fatalf("victim ping through the manager: %v, %v (the victim session must stay alive)", v, err)
			}
			if n := stops.Load(); n != 0 {
				t.Fatalf("the manager called the victim's stop %d times", n)
			}
		})
	}
	// The manager's echo still works with the caller's own promise.
	if v, err := mallory.CallManager(ctx, "echo", "hello"); err != nil || v != "hello" {
		t.Fatalf("plain echo: %v, %v", v, err)
	}
}

// TestHostileProviderForeignFunctions: the manager forwards the functions a
// provider returns from its built-in get_service, and Go peers trust what
// the manager forwards; so the manager must refuse a provider that returns
// functions of another peer (here a protected stop of another workspace).
// Otherwise the apps controller, or an HTTP caller's peer, would call them.
// Both routes (websocket get_service, HTTP call) are refused, naming the
// provider and the victim, and the victim's stop never runs.
func TestHostileProviderForeignFunctions(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	victim := testserver.RootClient(t, s, "victim")
	var stops atomic.Int64
	testserver.MustRegister(t, victim, rpc.Service{ID: "worker", Config: rpc.ServiceConfig{Visibility: "protected"},
		Functions: map[string]any{"stop": func() string { stops.Add(1); return "stopped" }}})
	mallory := anonRaw(t, s, "mallory")
	if _, err := mallory.CallManager(ctx, "register_service", map[string]any{"id": mallory.ID + ":trap", "name": "trap",
		"type": "generic", "config": map[string]any{"visibility": "public"}, "service_schema": map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	// Mallory answers every get_service with the victim's stop as "stop".
	go func() {
		for {
			fr, err := mallory.Read(context.Background())
			if err != nil {
				return // the connection closed at the end of the test
			}
			if fr.Main["method"] != "services.built-in.get_service" {
				continue
			}
			from, _ := fr.Main["from"].(string)
			sid, _ := fr.Main["session"].(string)
			svc := map[string]any{"id": "trap", "name": "trap", "type": "generic", "config": map[string]any{"visibility": "public"},
				"stop": map[string]any{"_rtype": "method", "_rtarget": "ws-user-root/victim", "_rmethod": "services.worker.stop", "_rpromise": "*"}}
			_ = mallory.Send(map[string]any{"type": "method", "to": from, "method": sid + ".resolve"}, map[string]any{"args": []any{svc}})
		}
	}()

	t.Run("websocket get_service", func(t *testing.T) {
		c := testserver.Connect(t, s, rpc.Config{ClientID: "user"})
		_, err := c.GetService(ctx, mallory.ID+":trap")
		if err == nil || !strings.Contains(err.Error(), "foreign callable refused") ||
			!strings.Contains(err.Error(), mallory.ID) || !strings.Contains(err.Error(), "ws-user-root/victim") {
			t.Fatalf("get_service of a provider returning the victim's function: %v", err)
		}
	})
	t.Run("HTTP call", func(t *testing.T) {
		req, _ := http.NewRequest("GET", testserver.ServiceURL(s, mallory.Workspace(), "mallory:trap/stop", nil), nil)
		req.Header.Set("Authorization", "Bearer "+testserver.RootToken) // a victim lured into the request
		code, v := testserver.HTTPGetJSON(t, req)
		d, _ := v.(map[string]any)["detail"].(string)
		if code != http.StatusBadGateway || !strings.Contains(d, "foreign callable refused") {
			t.Fatalf("HTTP call through the trap: %d %v", code, v)
		}
	})
	if v, err := victim.Manager().Call(ctx, "ping", "victim"); err != nil || v != "pong" {
		t.Fatalf("victim ping: %v, %v", v, err)
	}
	if n := stops.Load(); n != 0 {
		t.Fatalf("the victim's stop ran %d times", n)
	}
}

// TestHostileServerWorkspace: "*" is the server's own workspace; a client
// admitted there would be stamped as the server. A token whose current
// workspace is "*" (only root can mint one) is refused at the handshake.
func TestHostileServerWorkspace(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "root")
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "*", Permission: "admin"})
	if err != nil {
		t.Skipf("no token for workspace *: %v", err)
	}
	r := testserver.DialRaw(t, s, "")
	m, err := r.Hello(map[string]any{"client_id": "star", "token": tok})
	if err != nil {
		t.Fatal(err)
	}
	if msg, _ := m["message"].(string); m["type"] != "error" || !strings.Contains(msg, "*") {
		t.Fatalf("handshake with a token for workspace *: %v", m)
	}
}
