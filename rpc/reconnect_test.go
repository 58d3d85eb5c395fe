package rpc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

func reconnected(c *rpc.Client) <-chan struct{} {
	ch := make(chan struct{}, 16)
	c.OnReconnect(func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch
}

// TestReconnectAfterServerRestart stops the server and starts a new one on
// the same address with the same JWT secret: clients reconnect by
// themselves, re-register their services, restore their subscriptions, and
// a call in flight completes or fails with a clear error.
func TestReconnectAfterServerRestart(t *testing.T) {
	cfg := server.Config{JWTSecret: "restart-secret"}
	s1 := testserver.Start(t, cfg)
	addr := strings.TrimPrefix(s1.URL(), "http://")
	ctx := testserver.Ctx(t)
	a := testserver.Connect(t, s1, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
	b := testserver.Connect(t, s1, rpc.Config{Token: testserver.RootToken, ClientID: "b", MethodTimeout: 3 * time.Second})
	aBack, bBack := reconnected(a), reconnected(b)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	testserver.MustRegister(t, a, rpc.Service{ID: "svc", Functions: map[string]any{
		"echo": func(x any) any { return x },
		"slow": func(ctx context.Context) (string, error) {
			started <- struct{}{}
			select {
			case <-release:
				return "finished", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		},
	}})
	added := events(b, "service_added")
	if err := b.Subscribe(ctx, "service_added"); err != nil {
		t.Fatal(err)
	}
	oldSvc, err := b.GetService(ctx, "a:svc")
	if err != nil {
		t.Fatal(err)
	}
	inflight := make(chan error, 1)
	go func() {
		v, err := oldSvc.Call(ctx, "slow")
		if err == nil && v != "finished" {
			err = errors.New("unexpected result")
		}
		inflight <- err
	}()
	recv(t, started, 5*time.Second, "the in-flight call to start", nil)

	s1.Close()
	s2 := testserver.StartAt(t, cfg, addr)
	close(release)

	recv(t, aBack, 15*time.Second, "a to reconnect", nil)
	recv(t, bBack, 15*time.Second, "b to reconnect", nil)
	if got, want := a.Info().ManagerID, "manager-"+s2.ServerID(); got != want {
		t.Errorf("a's manager = %q, want %q", got, want)
	}
	// The in-flight call either completed (its reply was sent after the
	// reconnection) or failed with a clear error; it never hangs.
	err = recv(t, inflight, 10*time.Second, "the in-flight call to end", nil)
	if err != nil && !errors.Is(err, rpc.ErrTimeout) && !errors.Is(err, rpc.ErrClosed) && !isDisconnectError(err) {
		t.Errorf("in-flight call: %v", err)
	}
	t.Logf("in-flight call: %v", err)

	// a's service was registered again on the new server.
	svc, err := b.GetService(ctx, "a:svc")
	if err != nil {
		t.Fatalf("get service after restart: %v", err)
	}
	for _, s := range []*rpc.RemoteService{svc, oldSvc} {
		if v, err := s.Call(ctx, "echo", "again"); err != nil || v != "again" {
			t.Errorf("echo after restart: %v, %v", v, err)
		}
	}
	// b's subscription was restored.
	testserver.MustRegister(t, a, rpc.Service{ID: "late", Functions: map[string]any{"f": func() {}}})
	recv(t, added, 5*time.Second, "service_added for the late service", func(e rpc.Event) bool {
		return eventID(e) == "ws-user-root/a:late"
	})
	// A fresh client sees both services.
	c := testserver.Connect(t, s2, rpc.Config{Token: testserver.RootToken, ClientID: "c"})
	list, err := c.ListServices(ctx, map[string]any{"client_id": "a"})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(list)
	for _, want := range []string{"ws-user-root/a:built-in", "ws-user-root/a:late", "ws-user-root/a:svc"} {
		if !contains(got, want) {
			t.Errorf("services of a on the new server: %v, missing %s", got, want)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestReconnectAfterServerDrop: the server drops an idle client (idle
// timeout); the client reconnects and its service is usable again.
func TestReconnectAfterServerDrop(t *testing.T) {
	s := testserver.Start(t, server.Config{IdleTimeout: time.Second})
	ctx := testserver.Ctx(t)
	// a sends no keep-alive within the idle timeout.
	a := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a", PingInterval: time.Hour})
	back := reconnected(a)
	testserver.MustRegister(t, a, rpc.Service{ID: "svc", Functions: map[string]any{"echo": func(x any) any { return x }}})
	// b keeps itself alive with frequent pings.
	b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b", PingInterval: 100 * time.Millisecond})
	recv(t, back, 10*time.Second, "a to reconnect after the idle timeout", nil)
	// a keeps being dropped and reconnecting; within a window it works again.
	var lastErr error
	testserver.WaitFor(t, 10*time.Second, "a's service to answer after the reconnection", func() bool {
		svc, err := b.GetService(ctx, "a:svc")
		if err == nil {
			var v any
			v, err = svc.Call(ctx, "echo", "hi")
			if err == nil && v == "hi" {
				return true
			}
		}
		lastErr = err
		return false
	})
	_ = lastErr
	select {
	case <-b.Done():
		t.Fatal("b, which pings, was dropped")
	default:
	}
}

// TestCallWhileServerDown: with the server gone for good, a call made while
// the client tries to reconnect fails within about one method timeout, even
// with a context that has no deadline; so does one already in flight.
func TestCallWhileServerDown(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	a := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a", MethodTimeout: time.Second})
	b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b", MethodTimeout: time.Second})
	started := make(chan struct{}, 1)
	testserver.MustRegister(t, a, rpc.Service{ID: "svc", Functions: map[string]any{
		"wait": func(ctx context.Context) error { started <- struct{}{}; <-ctx.Done(); return ctx.Err() },
	}})
	svc, err := b.GetService(testserver.Ctx(t), "a:svc")
	if err != nil {
		t.Fatal(err)
	}
	inflight := make(chan error, 1)
	go func() { _, err := svc.Call(context.Background(), "wait"); inflight <- err }()
	recv(t, started, 5*time.Second, "the call to start", nil)
	s.Close()
	t0 := time.Now()
	fresh := make(chan error, 1)
	go func() { _, err := b.Echo(context.Background(), "x"); fresh <- err }()
	for name, ch := range map[string]chan error{"in-flight call": inflight, "new call": fresh} {
		err := recv(t, ch, 10*time.Second, name+" to fail", nil)
		if err == nil {
			t.Errorf("%s succeeded with the server down", name)
		}
		t.Logf("%s: %v after %s", name, err, time.Since(t0))
	}
}

// A server that refuses the client's own credentials on reconnection (here:
// restarted with another JWT secret) makes the client give up and close,
// instead of retrying forever.
func TestReconnectRefusedGivesUp(t *testing.T) {
	s1 := testserver.Start(t, server.Config{JWTSecret: "first-secret"})
	addr := strings.TrimPrefix(s1.URL(), "http://")
	tok, err := s1.Issuer().Generate(auth.RootUser(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := testserver.Connect(t, s1, rpc.Config{Token: tok, ClientID: "jwt-client"})
	s1.Close()
	testserver.StartAt(t, server.Config{JWTSecret: "second-secret"}, addr)
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the client kept retrying with credentials the server refuses")
	}
	_, err = c.Echo(testserver.Ctx(t), "x")
	if !errors.Is(err, rpc.ErrClosed) {
		t.Fatalf("call after giving up: %v, want ErrClosed", err)
	}
}

// TestClientErrAndOnReconnectRemover: Err is nil while the client runs and
// says why it ended once Done is closed (Close, or a lost connection with
// NoReconnect); a removed OnReconnect hook is not run on the next
// reconnection while the others are.
func TestClientErrAndOnReconnectRemover(t *testing.T) {
	s := testserver.Start(t, server.Config{})

	c, tp := tapClient(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "err-lost", NoReconnect: true})
	if err := c.Err(); err != nil {
		t.Fatalf("Err while connected = %v", err)
	}
	tp.Kill()
	recv(t, c.Done(), 20*time.Second, "Done after the lost connection", nil)
	if err := c.Err(); !errors.Is(err, rpc.ErrClosed) || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("Err after a lost connection = %v, want ErrClosed saying the connection was lost", err)
	}

	c2 := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "err-closed"})
	c2.Close()
	<-c2.Done()
	if err := c2.Err(); !errors.Is(err, rpc.ErrClosed) || !strings.Contains(err.Error(), "closed by the client") {
		t.Errorf("Err after Close = %v, want ErrClosed saying the client closed it", err)
	}

	c3, tp3 := tapClient(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "hooks"})
	var removedRuns int
	remove := c3.OnReconnect(func() { removedRuns++ }) // hooks run in order, on one goroutine
	kept := reconnected(c3)
	remove()
	tp3.Kill()
	recv(t, kept, 20*time.Second, "the kept hook", nil)
	if removedRuns != 0 {
		t.Errorf("the removed hook ran %d times", removedRuns)
	}
	if err := c3.Err(); err != nil {
		t.Errorf("Err after a reconnection = %v", err)
	}
}
