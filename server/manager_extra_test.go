package server_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

func TestWorkspaceEnv(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "env-root")
	m := root.Manager()
	if _, err := m.Call(ctx, "set_env", "API_URL", "http://x"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Call(ctx, "set_env", rpc.Kwargs{"key": "MODE", "value": "fast"}); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Call(ctx, "get_env", "API_URL"); err != nil || v != "http://x" {
		t.Fatalf("get_env(API_URL) = %v, %v", v, err)
	}
	all, err := m.Call(ctx, "get_env")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"API_URL": "http://x", "MODE": "fast"}, all); diff != "" {
		t.Errorf("get_env() (-want +got)\n%s", diff)
	}
	if _, err := m.Call(ctx, "set_env", "MODE", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Call(ctx, "get_env", "MODE"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("removed variable: %v", err)
	}
	// Another workspace sees none of it.
	other := testserver.Connect(t, s, rpc.Config{ClientID: "env-anon"})
	if v, err := other.Manager().Call(ctx, "get_env"); err != nil || len(v.(map[string]any)) != 0 {
		t.Fatalf("another workspace's env: %v, %v", v, err)
	}
}

func TestServiceTypes(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "types-root")
	m := root.Manager()
	info := map[string]any{"id": "calculator", "name": "Calculator", "definition": map[string]any{"add": map[string]any{}}}
	if _, err := m.Call(ctx, "register_service_type", info); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Call(ctx, "register_service_type", info); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate type: %v", err)
	}
	got, err := m.Call(ctx, "get_service_type", "ws-user-root/calculator")
	if err != nil {
		t.Fatal(err)
	}
	if got.(map[string]any)["id"] != "ws-user-root/calculator" || got.(map[string]any)["name"] != "Calculator" {
		t.Fatalf("get_service_type = %v", got)
	}
	list, err := m.Call(ctx, "list_service_types")
	if err != nil || len(list.([]any)) != 1 {
		t.Fatalf("list_service_types = %v, %v", list, err)
	}
	// A protected type of another workspace is refused to outsiders.
	anon := testserver.Connect(t, s, rpc.Config{ClientID: "types-anon"})
	if _, err := anon.Manager().Call(ctx, "get_service_type", "ws-user-root/calculator"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("outsider get_service_type: %v", err)
	}
	if _, err := anon.Manager().Call(ctx, "register_service_type", map[string]any{"id": "ws-user-root/evil"}); err == nil {
		t.Fatal("registered a type into another workspace")
	}
}

func TestEventLog(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	m := testserver.RootClient(t, s, "events-root").Manager()
	for _, ev := range []string{"app_started", "app_started", "app_stopped"} {
		if _, err := m.Call(ctx, "log_event", ev, map[string]any{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Call(ctx, "log_event", "has space"); err == nil {
		t.Fatal("an event type with a space was accepted")
	}
	evs, err := m.Call(ctx, "get_events", "app_started")
	if err != nil || len(evs.([]any)) != 2 {
		t.Fatalf("get_events(app_started) = %v, %v", evs, err)
	}
	if ev := evs.([]any)[0].(map[string]any); ev["user_id"] != "root" || ev["workspace"] != "ws-user-root" {
		t.Fatalf("event = %v", ev)
	}
	stats, err := m.Call(ctx, "get_event_stats")
	if err != nil {
		t.Fatal(err)
	}
	want := []any{map[string]any{"event_type": "app_started", "count": int64(2)}, map[string]any{"event_type": "app_stopped", "count": int64(1)}}
	if diff := cmp.Diff(want, stats); diff != "" {
		t.Errorf("get_event_stats (-want +got)\n%s", diff)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if evs, err := m.Call(ctx, "get_events", rpc.Kwargs{"start_time": future}); err != nil || len(evs.([]any)) != 0 {
		t.Fatalf("events after %s = %v, %v", future, evs, err)
	}
}

// A revoked token no longer connects nor calls over HTTP; an admin of the
// workspace revokes it.
func TestRevokeToken(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "revoke-root")
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Permission: "read_write", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connectWith(ctx, t, s, rpc.Config{Token: tok, ClientID: "before", NoReconnect: true}); err != nil {
		t.Fatalf("the token does not work before revocation: %v", err)
	}
	if _, err := root.Manager().Call(ctx, "revoke_token", tok); err != nil {
		t.Fatal(err)
	}
	_, err = connectWith(ctx, t, s, rpc.Config{Token: tok, ClientID: "after", NoReconnect: true})
	var refused *rpc.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Message, "revoked") {
		t.Fatalf("connect with a revoked token: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/ws-user-root/services", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if code, _ := testserver.HTTPGetJSON(t, req); code != http.StatusUnauthorized {
		t.Fatalf("HTTP with a revoked token: %d, want 401", code)
	}
	// Only an admin of the caller's workspace may revoke.
	other, err := root.GenerateToken(ctx, rpc.TokenConfig{Permission: "read", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := connectWith(ctx, t, s, rpc.Config{Token: other, ClientID: "reader", NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Manager().Call(ctx, "revoke_token", other); err == nil {
		t.Fatal("a read-only client revoked a token")
	}
}

func TestBookmarks(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "bm-root")
	testserver.MustRegister(t, root, rpc.Service{ID: "tool", Name: "Tool", Functions: map[string]any{"f": func() {}}})
	m := root.Manager()
	for _, item := range []map[string]any{
		{"bookmark_type": "workspace", "id": "public"},
		{"bookmark_type": "service", "id": "bm-root:tool"},
	} {
		if _, err := m.Call(ctx, "bookmark", item); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Call(ctx, "bookmark", map[string]any{"bookmark_type": "planet", "id": "x"}); err == nil {
		t.Fatal("an unknown bookmark type was accepted")
	}
	info, err := m.Call(ctx, "get_workspace_info")
	if err != nil {
		t.Fatal(err)
	}
	bms := info.(map[string]any)["config"].(map[string]any)["bookmarks"].([]any)
	if len(bms) != 2 || bms[1].(map[string]any)["name"] != "Tool" {
		t.Fatalf("bookmarks = %v", bms)
	}
	if _, err := m.Call(ctx, "unbookmark", map[string]any{"bookmark_type": "workspace", "id": "public"}); err != nil {
		t.Fatal(err)
	}
	info, _ = m.Call(ctx, "get_workspace_info")
	if bms := info.(map[string]any)["config"].(map[string]any)["bookmarks"].([]any); len(bms) != 1 {
		t.Fatalf("after unbookmark: %v", bms)
	}
}

// cleanup disconnects clients that no longer answer pings and keeps the rest.
func TestCleanup(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	admin := testserver.RootClient(t, s, "cleanup-admin")
	testserver.RootClient(t, s, "cleanup-alive")
	frozen := testserver.NewTap(s.URL())
	if _, err := connectWith(ctx, t, s, rpc.Config{Token: testserver.RootToken, ClientID: "cleanup-frozen",
		Dialer: frozen.Dial, NoReconnect: true}); err != nil {
		t.Fatal(err)
	}
	frozen.Freeze()
	v, err := admin.Manager().Call(ctx, "cleanup", rpc.Kwargs{"timeout": 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"removed_clients": []any{"ws-user-root/cleanup-frozen"}}, v); diff != "" {
		t.Errorf("cleanup (-want +got)\n%s", diff)
	}
	anon := testserver.Connect(t, s, rpc.Config{ClientID: "cleanup-anon"})
	if _, err := anon.Manager().Call(ctx, "cleanup", "ws-user-root"); err == nil {
		t.Fatal("a non-admin cleaned up another workspace")
	}
}
