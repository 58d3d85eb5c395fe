package rpc_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

// TestChunkedBothDirections sends 10 MB through message_cache as an argument,
// as a result, both, and as the argument of a callback (a reply-side chunked
// message keyed by the caller's session).
func TestChunkedBothDirections(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	a := testserver.RootClient(t, s, "a")
	b := testserver.RootClient(t, s, "b")
	const n = 10 << 20
	testserver.MustRegister(t, a, rpc.Service{ID: "big", Functions: map[string]any{
		"make": func(n, seed int) []byte { return pattern(n, seed) },
		"sum": func(x []byte) int {
			s := 0
			for _, c := range x {
				s += int(c)
			}
			return s
		},
		"echo": func(x []byte) []byte { return x },
		"push": func(ctx context.Context, cb func(context.Context, []byte) (int, error)) (int, error) {
			return cb(ctx, pattern(n, 3))
		},
	}})
	svc, err := b.GetService(ctx, "a:big")
	if err != nil {
		t.Fatal(err)
	}
	sum := func(x []byte) int64 {
		s := int64(0)
		for _, c := range x {
			s += int64(c)
		}
		return s
	}
	t.Run("argument", func(t *testing.T) {
		p := pattern(n, 1)
		got, err := svc.Call(ctx, "sum", p)
		if err != nil || got != sum(p) {
			t.Fatalf("sum = %v, %v; want %d", got, err, sum(p))
		}
	})
	t.Run("result", func(t *testing.T) {
		got, err := svc.Call(ctx, "make", n, 2)
		if err != nil {
			t.Fatal(err)
		}
		if gb, _ := got.([]byte); !bytes.Equal(gb, pattern(n, 2)) {
			t.Fatalf("result differs (%d bytes)", len(gb))
		}
	})
	t.Run("argument and result", func(t *testing.T) {
		p := pattern(n, 5)
		got, err := svc.Call(ctx, "echo", p)
		if err != nil {
			t.Fatal(err)
		}
		if gb, _ := got.([]byte); !bytes.Equal(gb, p) {
			t.Fatalf("echo differs (%d bytes)", len(gb))
		}
	})
	t.Run("callback argument", func(t *testing.T) {
		var got []byte
		v, err := svc.Call(ctx, "push", func(x []byte) int { got = x; return len(x) })
		if err != nil || v != int64(n) || !bytes.Equal(got, pattern(n, 3)) {
			t.Fatalf("push = %v, %v (%d bytes seen)", v, err, len(got))
		}
	})
}

// TestMessageCacheOwnerChecked: another client cannot take over, feed,
// process or remove a chunked message it did not start, nor the entry of a
// chunked reply to someone else's call.
func TestMessageCacheOwnerChecked(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	a, tap := tapClient(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
	b := testserver.RootClient(t, s, "b")
	owner := testserver.RootClient(t, s, "owner")
	intruder := testserver.RootClient(t, s, "intruder")

	release := make(chan struct{})
	const n = 1 << 20
	testserver.MustRegister(t, a, rpc.Service{ID: "v", Functions: map[string]any{
		"slow": func(ctx context.Context) ([]byte, error) {
			select {
			case <-release:
				return pattern(n, 9), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}})
	var mu sync.Mutex
	var session string
	tap.OnFrame(func(main map[string]any) {
		if main["method"] == "services.v.slow" {
			mu.Lock()
			session, _ = main["session"].(string)
			mu.Unlock()
		}
	})
	svc, err := b.GetService(ctx, "a:v")
	if err != nil {
		t.Fatal(err)
	}
	result := make(chan any, 1)
	go func() {
		v, err := svc.Call(ctx, "slow")
		if err != nil {
			result <- err
			return
		}
		result <- v
	}()
	testserver.WaitFor(t, 5*time.Second, "the call to reach a", func() bool { mu.Lock(); defer mu.Unlock(); return session != "" })

	mcOf := func(c *rpc.Client) *rpc.RemoteService {
		m, err := c.GetService(ctx, "b:built-in")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ownerMC, intruderMC := mcOf(owner), mcOf(intruder)
	if _, err := ownerMC.Call(ctx, "message_cache.create", "k1", false); err != nil {
		t.Fatalf("owner create: %v", err)
	}
	if _, err := ownerMC.Call(ctx, "message_cache.set", "k1", 0, []byte("abc"), false); err != nil {
		t.Fatalf("owner set: %v", err)
	}
	for _, tc := range []struct {
		name string
		fn   string
		args []any
	}{
		{"overwrite another's entry", "message_cache.create", []any{"k1", false, true}},
		{"set into another's entry", "message_cache.set", []any{"k1", 1, []byte("x"), false}},
		{"append to another's entry", "message_cache.append", []any{"k1", []byte("x"), false}},
		{"process another's entry", "message_cache.process", []any{"k1", false}},
		{"remove another's entry", "message_cache.remove", []any{"k1"}},
		{"claim the reply key of b's pending call", "message_cache.create", []any{session, true}},
		{"heartbeat b's pending call", "message_cache.set", []any{session, 0, []byte("x"), true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := intruderMC.Call(ctx, tc.fn, tc.args...); err == nil {
				t.Fatalf("%s%v by the intruder succeeded", tc.fn, tc.args)
			}
		})
	}
	if _, err := ownerMC.Call(ctx, "message_cache.remove", "k1"); err != nil {
		t.Errorf("owner remove: %v", err)
	}
	// The genuine chunked reply still arrives.
	close(release)
	v := recv(t, result, 10*time.Second, "the chunked result", nil)
	if gb, ok := v.([]byte); !ok || !bytes.Equal(gb, pattern(n, 9)) {
		if err, isErr := v.(error); isErr && strings.Contains(err.Error(), "exists") {
			t.Fatalf("the intruder hijacked the reply: %v", err)
		}
		t.Fatalf("result: %v", v)
	}
}
