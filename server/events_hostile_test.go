package server_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestHostileCrossWorkspaceEvents: events (frames that are not RPC calls)
// reach a client only from its own workspace or from the server; a direct
// event from another workspace is dropped by the router, whatever its type.
func TestHostileCrossWorkspaceEvents(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	tap := testserver.NewTap(s.URL())
	victim := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "victim", Dialer: tap.Dial})
	var mu sync.Mutex
	var got []string
	tap.OnFrame(func(main map[string]any) {
		if typ, _ := main["type"].(string); typ != "method" {
			from, _ := main["from"].(string)
			mu.Lock()
			got = append(got, typ+" from "+from)
			mu.Unlock()
		}
	})
	if err := victim.Subscribe(ctx, "my-event", "service_added"); err != nil {
		t.Fatal(err)
	}
	mallory := anonRaw(t, s, "mallory")
	friend := rootRaw(t, s, "friend")
	for _, typ := range []string{"my-event", "service_added", "client_disconnected", "", "x"} {
		if err := mallory.Send(map[string]any{"type": typ, "to": "ws-user-root/victim", "data": map[string]any{"id": "x"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := friend.Send(map[string]any{"type": "my-event", "to": "victim", "data": map[string]any{}}, nil); err != nil {
		t.Fatal(err)
	}
	// A server event still arrives.
	testserver.MustRegister(t, testserver.RootClient(t, s, "other"), rpc.Service{ID: "svc", Functions: map[string]any{"f": func() {}}})
	// The router handles each sender's frames in order: once the victim
	// answered both pings, every earlier frame of theirs reached it or was dropped.
	for _, r := range []*testserver.Raw{mallory, friend} {
		if _, err := r.Call(ctx, "ws-user-root/victim", "services.built-in.ping", []any{"ping"}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	testserver.WaitFor(t, 10*time.Second, "the server's service_added event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if g == "service_added from " {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	for _, g := range got {
		if strings.Contains(g, mallory.ID) {
			t.Errorf("an event from another workspace reached the victim: %s (all: %v)", g, got)
		}
	}
	found := false
	for _, g := range got {
		found = found || g == "my-event from ws-user-root/friend"
	}
	if !found {
		t.Errorf("the same-workspace event did not arrive: %v", got)
	}
}
