package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hypha-go/hypha/rpc"
)

// counters counts calls per function of a Go test service.
type counters struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counters) inc(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

func (c *counters) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// goService is the Go counterpart of the JS and Python test services:
// add, echo, fail, call_back, ctx_who (uses the trusted caller context, so
// require_context is set), greet (keyword arguments name/greeting) and
// check_pattern (verifies a big payload without echoing it).
func goService(id, visibility string, c *counters) rpc.Service {
	return rpc.Service{
		ID:          id,
		Name:        id,
		Description: "hypha-go interop Go service",
		Config:      rpc.ServiceConfig{Visibility: visibility, RequireContext: true},
		Functions: map[string]any{
			"add": rpc.Params(func(a, b int64) int64 { c.inc("add"); return a + b }, "a", "b"),
			"echo": rpc.Params(func(x any) any {
				c.inc("echo")
				return x
			}, "x"),
			"fail": rpc.Params(func(msg string) error { c.inc("fail"); return errors.New(msg) }, "msg"),
			"call_back": rpc.Params(func(ctx context.Context, cb *rpc.RemoteFunc, x any) (any, error) {
				c.inc("call_back")
				if cb == nil {
					return nil, errors.New("call_back: no callback given")
				}
				return cb.Call(ctx, x)
			}, "cb", "x"),
			"ctx_who": func(cc *rpc.CallContext) map[string]any {
				c.inc("ctx_who")
				return map[string]any{"ws": cc.WS, "from": cc.From, "user": cc.User.ID}
			},
			"greet": rpc.Params(func(name, greeting string) string {
				c.inc("greet")
				if greeting == "" {
					greeting = "hello"
				}
				return greeting + ", " + name
			}, "name", "greeting?"),
			"check_pattern": rpc.Params(func(b []byte) (map[string]any, error) {
				c.inc("check_pattern")
				return map[string]any{"len": len(b), "ok": bytes.Equal(b, pattern(len(b)))}, nil
			}, "data"),
		},
	}
}

// checkPatternBytes reports whether v is exactly pattern(n).
func checkPatternBytes(v any, n int) error {
	b, ok := v.([]byte)
	if !ok {
		return fmt.Errorf("got %T, not bytes", v)
	}
	if len(b) != n {
		return fmt.Errorf("got %d bytes, want %d", len(b), n)
	}
	if !bytes.Equal(b, pattern(n)) {
		return errors.New("bytes differ from the pattern")
	}
	return nil
}

// callGoPeerService runs the Go-side checks against a JS or Python test
// service (add, echo bytes, fail, ctx_who, call_back with a Go callback).
// caller is the Go client making the calls.
func callGoPeerService(t *testing.T, ctx context.Context, caller *rpc.Client, svc *rpc.RemoteService) {
	t.Helper()
	if v, err := svc.Call(ctx, "add", 2, 3); err != nil || fmt.Sprint(v) != "5" {
		t.Errorf("add(2, 3) = %v (%T), %v; want 5", v, v, err)
	}
	in := []byte{0, 1, 2, 250, 255}
	if v, err := svc.Call(ctx, "echo", in); err != nil {
		t.Errorf("echo(bytes): %v", err)
	} else if b, ok := v.([]byte); !ok || !bytes.Equal(b, in) {
		t.Errorf("echo(bytes) = %#v (%T), want %v", v, v, in)
	}
	obj := map[string]any{"s": "x", "n": 1.5, "l": []any{int64(1), nil, true}}
	if v, err := svc.Call(ctx, "echo", obj); err != nil || mustJSON(v) != mustJSON(obj) {
		t.Errorf("echo(obj) = %v, %v; want %v", v, err, obj)
	}
	_, err := svc.Call(ctx, "fail", "boom from go")
	var re *rpc.RemoteError
	if err == nil || !errors.As(err, &re) {
		t.Errorf("fail: err = %v (%T), want a *rpc.RemoteError", err, err)
	} else {
		expectContains(t, "fail error", err.Error(), "boom from go")
	}
	info := caller.Info()
	var who map[string]any
	if err := svc.CallInto(ctx, &who, "ctx_who"); err != nil {
		t.Errorf("ctx_who: %v", err)
	} else {
		expect(t, "ctx_who", who, map[string]any{
			"ws": info.Workspace, "from": info.Workspace + "/" + info.ClientID, "user": info.User.ID,
		})
	}
	var seen []string
	var mu sync.Mutex
	v, err := svc.Call(ctx, "call_back", func(x string) string {
		mu.Lock()
		seen = append(seen, x)
		mu.Unlock()
		return "go:" + x
	}, "ping")
	if err != nil || v != "go:ping" {
		t.Errorf("call_back(go func, ping) = %v, %v; want go:ping", v, err)
	}
	mu.Lock()
	expect(t, "Go callback arguments", seen, []string{"ping"})
	mu.Unlock()
}
