package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

func TestRegisterAndCall(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	a := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
	b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b"})
	if a.Info().Workspace != "ws-user-root" {
		t.Fatalf("workspace = %q", a.Info().Workspace)
	}
	id, err := a.RegisterService(ctx, rpc.Service{
		ID: "echo-svc",
		Functions: map[string]any{
			"echo": func(x any) any { return x },
			"add":  func(a, b int) int { return a + b },
			"fail": func(msg string) error { return errors.New(msg) },
			"call_back": func(ctx context.Context, cb func(context.Context, string) (string, error), x string) (string, error) {
				return cb(ctx, x)
			},
			"who": func(cc *rpc.CallContext) string { return cc.From },
			"ns":  map[string]any{"twice": func(s string) string { return s + s }},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id != "ws-user-root/a:echo-svc" {
		t.Fatalf("id = %q", id)
	}
	svc, err := b.GetService(ctx, "a:echo-svc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fn   string
		args []any
		want any
	}{
		{"echo", []any{"hi"}, "hi"},
		{"echo", []any{[]byte{1, 2, 3}}, []byte{1, 2, 3}},
		{"echo", []any{map[string]any{"a": []any{int64(1), 2.5, nil, true}}}, map[string]any{"a": []any{int64(1), 2.5, nil, true}}},
		{"add", []any{2, 3}, int64(5)},
		{"ns.twice", []any{"ab"}, "abab"},
		{"who", nil, "ws-user-root/b"},
		{"call_back", []any{func(s string) string { return strings.ToUpper(s) }, "hey"}, "HEY"},
	} {
		got, err := svc.Call(ctx, tc.fn, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.fn, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tc.fn, diff)
		}
	}
	_, err = svc.Call(ctx, "fail", "boom")
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Message != "boom" {
		t.Fatalf("fail: %v", err)
	}
	_, err = svc.Call(ctx, "add", "x", 1)
	if err == nil || !strings.Contains(err.Error(), "argument 0") {
		t.Fatalf("bad arg: %v", err)
	}
}

func TestBigPayload(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	a := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
	b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b"})
	_, err := a.RegisterService(ctx, rpc.Service{ID: "echo", Functions: map[string]any{
		"echo": func(x []byte) []byte { return x },
	}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := b.GetService(ctx, "a:echo")
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 10<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	got, err := svc.Call(ctx, "echo", payload)
	if err != nil {
		t.Fatal(err)
	}
	if gb, _ := got.([]byte); !bytes.Equal(gb, payload) {
		t.Fatalf("payload differs: %d bytes back", len(gb))
	}
}

func TestManyConcurrentCalls(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	a := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
	b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b"})
	_, err := a.RegisterService(ctx, rpc.Service{ID: "sq", Functions: map[string]any{
		"sq": func(x int) int { return x * x },
	}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := b.GetService(ctx, "a:sq")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 200)
	for i := range 200 {
		go func() {
			v, err := svc.Call(ctx, "sq", i)
			if err == nil && v != int64(i*i) {
				err = fmt.Errorf("sq(%d) = %v", i, v)
			}
			errs <- err
		}()
	}
	for range 200 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A service may name its functions like the promise callbacks.
func TestServiceFunctionNamedResolve(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	a := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
	b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b"})
	if _, err := a.RegisterService(ctx, rpc.Service{ID: "promise-like", Functions: map[string]any{
		"resolve":   func(x int) int { return x + 1 },
		"reject":    func() string { return "rejected?" },
		"heartbeat": func() string { return "alive" },
	}}); err != nil {
		t.Fatal(err)
	}
	svc, err := b.GetService(ctx, "a:promise-like")
	if err != nil {
		t.Fatal(err)
	}
	for fn, want := range map[string]any{"reject": "rejected?", "heartbeat": "alive"} {
		got, err := svc.Call(ctx, fn)
		if err != nil || got != want {
			t.Errorf("%s() = %v, %v; want %v", fn, got, err, want)
		}
	}
	if got, err := svc.Call(ctx, "resolve", 41); err != nil || got != int64(42) {
		t.Errorf("resolve(41) = %v, %v", got, err)
	}
}
