package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestSpoofedTrustedFields: from, ws and user are whatever the server
// stamps, wherever a sender puts its own values (main segment, extra
// segment, or a "context" keyword argument).
func TestSpoofedTrustedFields(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	testserver.MustRegister(t, prov, rpc.Service{ID: "ctx", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: map[string]any{
		"who": func(cc *rpc.CallContext) map[string]any {
			return map[string]any{"from": cc.From, "ws": cc.WS, "user": cc.User.ID, "to": cc.To}
		},
	}})
	mallory := anonRaw(t, s, "mallory")
	rootUser := map[string]any{"id": "root", "roles": []any{"admin"}, "is_anonymous": false,
		"scope": map[string]any{"current_workspace": "ws-user-root", "workspaces": map[string]any{"*": "a"}}}
	spoof := map[string]any{"from": "ws-user-root/prov", "ws": "ws-user-root", "user": rootUser}
	want := map[string]any{"from": mallory.ID, "ws": mallory.Workspace(), "user": mallory.Info["user"].(map[string]any)["id"],
		"to": "ws-user-root/prov"}
	for _, tc := range []struct {
		name        string
		args        []any
		main, extra map[string]any
	}{
		{"spoofed main segment", []any{}, spoof, nil},
		{"spoofed extra segment", []any{}, nil, spoof},
		{"spoofed to in the extra segment", []any{}, nil, map[string]any{"to": "ws-user-root/other"}},
		{"context keyword", []any{map[string]any{"context": spoof}}, nil, map[string]any{"with_kwargs": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mallory.Call(ctx, "ws-user-root/prov", "services.ctx.who", tc.args, tc.main, tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the handler saw (-want +got)\n%s", diff)
			}
		})
	}
}

// TestForgedDisconnectEvent: only the server announces that a client left.
// A client_disconnected event forged by a client (sent directly or as a
// broadcast, from this or another workspace) must not fail calls pending
// on the named client.
func TestForgedDisconnectEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  func(t *testing.T, s *server.Server) *testserver.Raw
		to   string
	}{
		{"direct, other workspace", func(t *testing.T, s *server.Server) *testserver.Raw { return anonRaw(t, s, "mallory") }, "ws-user-root/b"},
		{"broadcast, other workspace", func(t *testing.T, s *server.Server) *testserver.Raw { return anonRaw(t, s, "mallory") }, "ws-user-root/*"},
		{"broadcast, same workspace", func(t *testing.T, s *server.Server) *testserver.Raw { return rootRaw(t, s, "mallory") }, "*"},
		{"direct, same workspace", func(t *testing.T, s *server.Server) *testserver.Raw { return rootRaw(t, s, "mallory") }, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.Start(t, server.Config{})
			ctx := testserver.Ctx(t)
			a := testserver.RootClient(t, s, "a")
			b := testserver.RootClient(t, s, "b")
			started := make(chan struct{}, 1)
			release := make(chan struct{})
			testserver.MustRegister(t, a, rpc.Service{ID: "w", Functions: map[string]any{
				"wait": func(ctx context.Context) (string, error) {
					started <- struct{}{}
					select {
					case <-release:
						return "ok", nil
					case <-ctx.Done():
						return "", ctx.Err()
					}
				},
			}})
			svc, err := b.GetService(ctx, "a:w")
			if err != nil {
				t.Fatal(err)
			}
			res := make(chan error, 1)
			go func() {
				_, err := svc.Call(ctx, "wait")
				res <- err
			}()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("handler did not start")
			}
			mallory := tc.raw(t, s)
			forged := map[string]any{"type": "client_disconnected", "to": tc.to,
				"data": map[string]any{"id": "a", "workspace": "ws-user-root"}}
			if err := mallory.Send(forged, nil); err != nil {
				t.Fatal(err)
			}
			// b handles frames in order: once it answered this ping, it has
			// seen whatever of the forged event reached it.
			if v, err := mallory.Call(ctx, "ws-user-root/b", "services.built-in.ping", []any{"ping"}, nil, nil); err != nil || v != "pong" {
				t.Fatalf("ping b: %v, %v", v, err)
			}
			close(release)
			select {
			case err := <-res:
				if err != nil {
					t.Fatalf("pending call failed after a forged event: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("pending call did not end")
			}
		})
	}
}

// TestNoBroadcastIntoAnotherWorkspace: a client's broadcast reaches its own
// workspace only.
func TestNoBroadcastIntoAnotherWorkspace(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	tap := testserver.NewTap(s.URL())
	victim := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "victim", Dialer: tap.Dial})
	var mu sync.Mutex
	var got []string
	tap.OnFrame(func(main map[string]any) {
		if main["type"] == "my-event" {
			mu.Lock()
			got = append(got, main["from"].(string))
			mu.Unlock()
		}
	})
	if err := victim.Subscribe(ctx, "my-event"); err != nil {
		t.Fatal(err)
	}
	mallory := anonRaw(t, s, "mallory")
	friend := rootRaw(t, s, "friend")
	if err := mallory.Send(map[string]any{"type": "my-event", "to": "ws-user-root/*", "data": map[string]any{}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := friend.Send(map[string]any{"type": "my-event", "to": "*", "data": map[string]any{}}, nil); err != nil {
		t.Fatal(err)
	}
	// Sync both senders with the victim (see TestForgedDisconnectEvent).
	for _, r := range []*testserver.Raw{mallory, friend} {
		if _, err := r.Call(ctx, "ws-user-root/victim", "services.built-in.ping", []any{"ping"}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"ws-user-root/friend"}, got); diff != "" {
		t.Errorf("my-event senders seen by the victim (-want +got)\n%s", diff)
	}
}

// TestProtectedAcrossWorkspaces: a protected service is refused to another
// workspace (through get_service and by a direct method call), public ones
// work, and authorized_workspaces lets the named workspace in.
func TestProtectedAcrossWorkspaces(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	same := testserver.RootClient(t, s, "same")
	outsider := testserver.Connect(t, s, rpc.Config{ClientID: "outsider"})
	outsiderRaw := anonRaw(t, s, "outsider-raw")
	stranger := anonRaw(t, s, "stranger") // a third workspace, not authorized
	hi := map[string]any{"hi": func() string { return "hi" }}
	testserver.MustRegister(t, prov, rpc.Service{ID: "prot", Config: rpc.ServiceConfig{Visibility: "protected"}, Functions: hi})
	testserver.MustRegister(t, prov, rpc.Service{ID: "pub", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: hi})
	testserver.MustRegister(t, prov, rpc.Service{ID: "unl", Config: rpc.ServiceConfig{Visibility: "unlisted"}, Functions: hi})
	testserver.MustRegister(t, prov, rpc.Service{ID: "auth", Config: rpc.ServiceConfig{Visibility: "protected",
		AuthorizedWorkspaces: []string{outsider.Info().Workspace, outsiderRaw.Workspace()}}, Functions: hi})

	for _, tc := range []struct {
		svc                 string
		outsiderOK          bool // from an authorized/other workspace
		strangerCallAllowed bool
	}{
		{"prot", false, false},
		{"pub", true, true},
		{"unl", true, true},
		{"auth", true, false},
	} {
		t.Run(tc.svc, func(t *testing.T) {
			// The provider's own workspace always may.
			if svc, err := same.GetService(ctx, "prov:"+tc.svc); err != nil {
				t.Fatalf("same workspace: %v", err)
			} else if v, err := svc.Call(ctx, "hi"); err != nil || v != "hi" {
				t.Fatalf("same workspace call: %v, %v", v, err)
			}
			svc, err := outsider.GetService(ctx, "ws-user-root/prov:"+tc.svc)
			if tc.outsiderOK {
				if err != nil {
					t.Fatalf("get_service from another workspace: %v", err)
				}
				if v, err := svc.Call(ctx, "hi"); err != nil || v != "hi" {
					t.Fatalf("call from another workspace: %v, %v", v, err)
				}
			} else if err == nil {
				t.Fatalf("get_service of a protected service from another workspace succeeded")
			}
			// Direct method calls, bypassing get_service.
			v, err := outsiderRaw.Call(ctx, "ws-user-root/prov", "services."+tc.svc+".hi", []any{}, nil, nil)
			if tc.outsiderOK != (err == nil) {
				t.Errorf("direct call from an authorized/other workspace: %v, %v", v, err)
			}
			if err != nil && !strings.Contains(err.Error(), "Permission denied") {
				t.Errorf("direct call refused with %v", err)
			}
			_, err = stranger.Call(ctx, "ws-user-root/prov", "services."+tc.svc+".hi", []any{}, nil, nil)
			if tc.strangerCallAllowed != (err == nil) {
				t.Errorf("direct call from an unrelated workspace: %v", err)
			}
			_, err = stranger.CallManager(ctx, "get_service", "ws-user-root/prov:"+tc.svc)
			if tc.strangerCallAllowed != (err == nil) {
				t.Errorf("get_service from an unrelated workspace: %v", err)
			}
		})
	}
}

// TestRegisterServiceRestrictions: nobody registers into another workspace
// or under another client's id.
func TestRegisterServiceRestrictions(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	a := testserver.RootClient(t, s, "a")
	testserver.RootClient(t, s, "b")
	anon := testserver.Connect(t, s, rpc.Config{ClientID: "anon"})
	anonWS := anon.Info().Workspace
	info := func(id string) map[string]any {
		return map[string]any{"id": id, "name": "x", "type": "generic", "config": map[string]any{"visibility": "public"},
			"service_schema": map[string]any{}}
	}
	for _, tc := range []struct {
		name    string
		c       *rpc.Client
		id      string
		wantErr string
	}{
		{"anonymous into another workspace", anon, "ws-user-root/anon:evil", "cannot register"},
		{"anonymous as another client of its workspace", anon, anonWS + "/other:evil", "cannot register a service for client"},
		{"anonymous, bare id of another client", anon, "other:evil", "cannot register a service for client"},
		{"as another live client", a, "ws-user-root/b:evil", "cannot register a service for client"},
		{"as another client's built-in", a, "ws-user-root/b:built-in", "cannot register a service for client"},
		{"root into another workspace from its own", a, anonWS + "/a:evil", "cannot register"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Manager().Call(ctx, "register_service", info(tc.id))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			ws := tc.id[:max(0, strings.IndexByte(tc.id, '/'))]
			if ws == "" {
				ws = tc.c.Info().Workspace
			}
			list, err := a.ListServices(ctx, map[string]any{"workspace": ws, "service_id": tc.id[strings.LastIndexByte(tc.id, ':')+1:]})
			if err == nil && len(list) > 0 && !strings.HasSuffix(tc.id, "built-in") {
				t.Errorf("the refused service is listed: %v", list[0].ID)
			}
		})
	}
	// And the anonymous user cannot even join another workspace.
	_, err := rpc.Connect(ctx, rpc.Config{ServerURL: s.URL(), Workspace: "ws-user-root", ClientID: "anon2", Logger: testserver.Logger(t)})
	var refused *rpc.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("anonymous connect to ws-user-root: %v", err)
	}
}
