package rpcengine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/rpcengine"
	"github.com/hypha-go/hypha/rpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pair builds two engine peers in workspace ws whose frames go straight to
// each other (no router: each stamps its own id as the sender).
func pair(t *testing.T) (a, b rpcengine.Peer) {
	t.Helper()
	if rpcengine.New == nil {
		t.Fatal("rpcengine.New is nil although rpc is imported")
	}
	cfg := func(id string, to *rpcengine.Peer) rpcengine.Config {
		return rpcengine.Config{ClientID: id, Workspace: "ws", ManagerID: "manager",
			Send: func(_ context.Context, frame []byte) error {
				// Like the router, hand over a copy: the sender may reuse its buffer.
				go func() { _ = (*to).Receive(append([]byte(nil), frame...)) }()
				return nil
			}}
	}
	a = rpcengine.New(cfg("a", &b))
	b = rpcengine.New(cfg("b", &a))
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestEngineServesAndCalls(t *testing.T) {
	a, b := pair(t)
	err := a.AddService(rpc.Service{ID: "greeter", Functions: map[string]any{
		"greet": rpc.Params(func(name string) string { return "Hello, " + name }, "name"),
	}}, false)
	if err != nil {
		t.Fatalf("AddService: %v", err)
	}
	if _, ok := a.ServiceValue("greeter"); !ok {
		t.Fatal("ServiceValue(greeter) = false after AddService")
	}
	if _, ok := a.ServiceValue("missing"); ok {
		t.Fatal("ServiceValue(missing) = true")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := b.Call(ctx, "ws/a", "services.greeter.greet", "Ada")
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if v != "Hello, Ada" {
		t.Fatalf("Call = %#v, want %q", v, "Hello, Ada")
	}
}

func TestEngineAddServiceNeedsAnRPCService(t *testing.T) {
	a, _ := pair(t)
	err := a.AddService(map[string]any{"id": "x"}, false)
	if err == nil || !strings.Contains(err.Error(), "rpc.Service") || !strings.Contains(err.Error(), "map[string]interface {}") {
		t.Fatalf("AddService(map) error = %v, want one naming rpc.Service and the type given", err)
	}
	if _, ok := a.ServiceValue("x"); ok {
		t.Fatal("a refused service was stored")
	}
}

// lone builds a peer whose frames go nowhere: its calls are never answered.
func lone(t *testing.T) rpcengine.Peer {
	t.Helper()
	p := rpcengine.New(rpcengine.Config{ClientID: "a", Workspace: "ws",
		Send: func(context.Context, []byte) error { return nil }})
	t.Cleanup(p.Close)
	return p
}

func TestEngineRejectTargetEndsPendingCalls(t *testing.T) {
	a := lone(t)
	gone := errors.New("peer went away")
	errc := make(chan error, 1)
	go func() {
		// Nobody answers: only RejectTarget can end this call.
		_, err := a.Call(context.Background(), "ws/nobody", "services.x.y")
		errc <- err
	}()
	deadline := time.After(30 * time.Second)
	for {
		// The call may not be pending yet when RejectTarget first runs.
		a.RejectTarget("ws/nobody", gone)
		select {
		case err := <-errc:
			if !errors.Is(err, gone) {
				t.Fatalf("Call error = %v, want %v", err, gone)
			}
			return
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatal("call still pending 30 s after RejectTarget")
		}
	}
}

func TestEngineCloseEndsPendingCalls(t *testing.T) {
	a := lone(t)
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := a.Call(context.Background(), "ws/nobody", "services.x.y")
		errc <- err
	}()
	<-started
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, rpc.ErrClosed) {
			t.Fatalf("Call error = %v, want rpc.ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("call still pending 30 s after Close")
	}
}

// The two ChunkLimits types must keep the same fields: this conversion
// stops compiling when they drift apart.
var _ = rpcengine.ChunkLimits(rpc.ChunkLimits{})
