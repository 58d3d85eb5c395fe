package rpc_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestEvents subscribes to the workspace events and receives each of them.
func TestEvents(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	watcher := testserver.RootClient(t, s, "watcher")
	ch := events(watcher, "client_connected", "client_disconnected", "service_added", "service_removed")
	if err := watcher.Subscribe(ctx, "client_connected", "client_disconnected", "service_added", "service_removed"); err != nil {
		t.Fatal(err)
	}
	b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b", NoReconnect: true})
	is := func(typ, id string) func(rpc.Event) bool {
		return func(e rpc.Event) bool { return e.Type == typ && eventID(e) == id }
	}
	const d = 5 * time.Second
	e := recv(t, ch, d, "client_connected of b", is("client_connected", "ws-user-root/b"))
	if e.Data["workspace"] != "ws-user-root" {
		t.Errorf("client_connected data = %v", e.Data)
	}
	testserver.MustRegister(t, b, rpc.Service{ID: "evsvc", Type: "ev-type", Functions: map[string]any{"f": func() {}}})
	e = recv(t, ch, d, "service_added", is("service_added", "ws-user-root/b:evsvc"))
	if e.Data["type"] != "ev-type" {
		t.Errorf("service_added data = %v", e.Data)
	}
	if err := b.UnregisterService(ctx, "evsvc"); err != nil {
		t.Fatal(err)
	}
	recv(t, ch, d, "service_removed", is("service_removed", "ws-user-root/b:evsvc"))
	b.Close()
	e = recv(t, ch, d, "client_disconnected", is("client_disconnected", "b"))
	if e.Data["workspace"] != "ws-user-root" {
		t.Errorf("client_disconnected data = %v", e.Data)
	}
}

// TestUnsubscribedEventsAreNotDelivered: after Unsubscribe the server stops
// sending that type. The watcher's transport is tapped: an Echo round trip
// after the registration proves every earlier frame was already seen.
func TestUnsubscribedEventsAreNotDelivered(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	watcher, tap := tapClient(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "watcher"})
	var mu sync.Mutex
	var seen []string
	tap.OnFrame(func(main map[string]any) {
		if main["type"] == "service_added" {
			mu.Lock()
			seen = append(seen, main["data"].(map[string]any)["id"].(string))
			mu.Unlock()
		}
	})
	prov := testserver.RootClient(t, s, "prov")
	registerAndSync := func(id string) {
		testserver.MustRegister(t, prov, rpc.Service{ID: id, Functions: map[string]any{"f": func() {}}})
		if _, err := watcher.Echo(ctx, "sync"); err != nil {
			t.Fatal(err)
		}
	}
	registerAndSync("before-subscribe")
	if err := watcher.Subscribe(ctx, "service_added"); err != nil {
		t.Fatal(err)
	}
	registerAndSync("subscribed")
	if err := watcher.Unsubscribe(ctx, "service_added"); err != nil {
		t.Fatal(err)
	}
	registerAndSync("after-unsubscribe")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "ws-user-root/prov:subscribed" {
		t.Errorf("service_added frames seen: %v, want only ws-user-root/prov:subscribed", seen)
	}
}

// TestPendingCallFailsWhenCalleeLeaves: a call waiting on a client that goes
// away fails at once with ErrClientDisconnect (or the server's "not
// connected" reject), long before the 30 s method timeout.
func TestPendingCallFailsWhenCalleeLeaves(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(a *rpc.Client, tap *testserver.Tap)
	}{
		{"callee disconnects", func(a *rpc.Client, _ *testserver.Tap) { a.Close() }},
		{"callee's connection is cut", func(_ *rpc.Client, tap *testserver.Tap) { tap.Refuse(); tap.Kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.Start(t, server.Config{})
			ctx := testserver.Ctx(t)
			a, tap := tapClient(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
			b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b", MethodTimeout: 30 * time.Second})
			started := make(chan struct{}, 1)
			testserver.MustRegister(t, a, rpc.Service{ID: "block", Functions: map[string]any{
				"wait": func(ctx context.Context) error {
					started <- struct{}{}
					<-ctx.Done()
					return ctx.Err()
				},
			}})
			svc, err := b.GetService(ctx, "a:block")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := svc.Call(ctx, "wait")
				done <- err
			}()
			recv(t, started, 5*time.Second, "the handler to start", nil)
			t0 := time.Now()
			tc.leave(a, tap)
			err = recv(t, done, 5*time.Second, "the pending call to fail", nil)
			if !isDisconnectError(err) {
				t.Fatalf("err = %v, want ErrClientDisconnect or 'not connected'", err)
			}
			t.Logf("failed after %s: %v", time.Since(t0), err)

			// A new call to the departed client is refused by the server at once.
			t0 = time.Now()
			_, err = svc.Call(ctx, "wait")
			if !isDisconnectError(err) || time.Since(t0) > 5*time.Second {
				t.Fatalf("call after leaving: %v after %s", err, time.Since(t0))
			}
			var re *rpc.RemoteError
			if errors.As(err, &re) && re.Message != "Target peer ws-user-root/a is not connected" {
				t.Errorf("reject message %q", re.Message)
			}
		})
	}
}
