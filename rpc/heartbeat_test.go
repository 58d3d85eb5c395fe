package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestHeartbeats: a caller's MethodTimeout bounds the silence between
// heartbeats, not the call. A handler running 3x the timeout succeeds; a
// callee that died or hangs makes the call fail with a clear error.
func TestHeartbeats(t *testing.T) {
	const timeout = 600 * time.Millisecond
	for _, tc := range []struct {
		name    string
		fn      string
		before  func(tap *testserver.Tap)
		check   func(error) bool
		want    string
		maxTime time.Duration
	}{
		{name: "slow handler keeps the call alive", fn: "slow", check: func(err error) bool { return err == nil },
			want: "success", maxTime: 10 * time.Second},
		{name: "callee connection cut", fn: "slow", before: func(tap *testserver.Tap) { tap.Refuse(); tap.Kill() },
			check: isDisconnectError, want: "ErrClientDisconnect", maxTime: 3 * time.Second},
		{name: "callee stopped reading", fn: "fast", before: func(tap *testserver.Tap) { tap.Freeze() },
			check: func(err error) bool { return errors.Is(err, rpc.ErrTimeout) }, want: "ErrTimeout", maxTime: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.Start(t, server.Config{})
			ctx := testserver.Ctx(t)
			a, tap := tapClient(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "a"})
			t.Cleanup(tap.Thaw)
			b := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "b", MethodTimeout: timeout})
			testserver.MustRegister(t, a, rpc.Service{ID: "hb", Functions: map[string]any{
				"slow": func(ctx context.Context) (string, error) {
					select {
					case <-time.After(2 * time.Second):
						return "done", nil
					case <-ctx.Done():
						return "", ctx.Err()
					}
				},
				"fast": func() string { return "done" },
			}})
			svc, err := b.GetService(ctx, "a:hb")
			if err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				tc.before(tap)
			}
			t0 := time.Now()
			v, err := svc.Call(ctx, tc.fn)
			el := time.Since(t0)
			if !tc.check(err) {
				t.Fatalf("got %v, %v after %s; want %s", v, err, el, tc.want)
			}
			if el > tc.maxTime {
				t.Errorf("took %s, want at most %s", el, tc.maxTime)
			}
			if err == nil && (v != "done" || el < 2*time.Second) {
				t.Errorf("got %v after %s", v, el)
			}
			t.Logf("%s: %v after %s", tc.name, err, el)
		})
	}
}
