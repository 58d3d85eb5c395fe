package rpc_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// deputyFixture is a victim service (a worker-like stop that must never be
// called by a deputy), a Go service that calls the functions it is given
// (the would-be deputy) and a raw hostile client.
type deputyFixture struct {
	s        *server.Server
	stops    atomic.Int64 // victim's stop calls
	ran      atomic.Int64 // deputy handler runs
	victim   string       // absolute id of the victim peer
	deputyID string       // absolute id of the deputy peer
	mallory  *testserver.Raw
	cbErr    atomic.Value // error of call_result's callback call
}

func newDeputyFixture(t *testing.T, allowForeign bool, logger *slog.Logger) *deputyFixture {
	t.Helper()
	f := &deputyFixture{s: testserver.Start(t, server.Config{})}
	victim := testserver.RootClient(t, f.s, "victim")
	f.victim = victim.Info().Workspace + "/victim"
	testserver.MustRegister(t, victim, rpc.Service{ID: "worker", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"stop": func() string { f.stops.Add(1); return "stopped" }}})
	deputy := testserver.Connect(t, f.s, rpc.Config{ClientID: "deputy", AllowForeignCallables: allowForeign, Logger: logger})
	f.deputyID = deputy.Info().Workspace + "/deputy"
	testserver.MustRegister(t, deputy, rpc.Service{ID: "svc", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{
			"call_back": func(ctx context.Context, cb func(context.Context) (any, error)) (any, error) {
				f.ran.Add(1)
				return cb(ctx)
			},
			// call_result calls cb, then the function cb returned.
			"call_result": func(ctx context.Context, cb func(context.Context) (any, error)) (any, error) {
				f.ran.Add(1)
				v, err := cb(ctx)
				if err != nil {
					f.cbErr.Store(err)
					return nil, err
				}
				fn, ok := v.(*rpc.RemoteFunc)
				if !ok {
					return nil, errors.New("cb did not return a function")
				}
				return fn.Call(ctx)
			},
			"ping": func() string { f.ran.Add(1); return "pong" },
		}})
	f.mallory = testserver.ConnectRaw(t, f.s, map[string]any{"client_id": "mallory"})
	return f
}

// ref is a method reference as a hostile peer writes it.
func ref(target, method string, promise any) map[string]any {
	return map[string]any{"_rtype": "method", "_rtarget": target, "_rmethod": method, "_rpromise": promise}
}

// sync makes sure the victim handled everything sent to it before: the
// deputy's calls and this ping travel the same route.
func (f *deputyFixture) sync(t *testing.T, ctx context.Context) {
	t.Helper()
	if v, err := f.mallory.Call(ctx, f.victim, "services.built-in.ping", []any{"ping"}, nil, nil); err != nil || v != "pong" {
		t.Fatalf("ping the victim: %v, %v", v, err)
	}
}

// TestHostileForeignCallable: a Go service never calls a function that the
// caller sent but does not own (a confused deputy): not inside the
// arguments, not as the promise's resolve/reject/heartbeat, and not when it
// comes back as the result of the caller's own callback. The call is
// refused with ErrForeignCallable naming the sender and the owner, before
// the handler runs, and the victim's function is never invoked.
func TestHostileForeignCallable(t *testing.T) {
	f := newDeputyFixture(t, false, nil)
	ctx := testserver.Ctx(t)
	mal := f.mallory.ID
	victimStop := ref(f.victim, "services.worker.stop", "*")
	for _, tc := range []struct {
		name        string
		method      string
		args        []any
		extra       map[string]any
		wantInError []string
	}{
		{name: "argument", method: "services.svc.call_back", args: []any{victimStop},
			wantInError: []string{"foreign callable refused", mal, f.victim}},
		{name: "nested in a keyword argument", method: "services.svc.call_back",
			args:        []any{map[string]any{"cb": map[string]any{"deep": []any{victimStop}}}},
			extra:       map[string]any{"with_kwargs": true},
			wantInError: []string{"foreign callable refused", f.victim}},
		{name: "bare id of another client of the sender's workspace", method: "services.svc.call_back",
			args:        []any{ref("victim", "services.worker.stop", "*")},
			wantInError: []string{"foreign callable refused", f.mallory.Workspace() + "/victim"}},
		{name: "no target", method: "services.svc.call_back", args: []any{map[string]any{"_rtype": "method", "_rmethod": "x"}},
			wantInError: []string{"foreign callable refused", "(no target)"}},
		{name: "promise resolve and reject", method: "services.svc.ping", args: []any{},
			extra: map[string]any{"promise": map[string]any{
				"resolve": ref(f.victim, "services.worker.stop", false), "reject": ref(f.victim, "services.worker.stop", false)}},
			wantInError: []string{"foreign callable refused", f.victim}},
		{name: "promise heartbeat", method: "services.svc.ping", args: []any{},
			extra: map[string]any{"promise": map[string]any{
				"resolve":   ref(mal, "own.resolve", false),
				"reject":    ref(mal, "own.reject", false),
				"heartbeat": ref(f.victim, "services.worker.stop", false), "interval": 0.01}},
			wantInError: []string{"foreign callable refused", f.victim}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.ran.Load()
			_, err := f.mallory.Call(ctx, f.deputyID, tc.method, tc.args, nil, tc.extra)
			if err == nil {
				t.Fatal("the call was accepted")
			}
			for _, w := range tc.wantInError {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			f.sync(t, ctx)
			if n := f.stops.Load(); n != 0 {
				t.Fatalf("the victim's stop was called %d times", n)
			}
			if n := f.ran.Load() - before; n != 0 {
				t.Errorf("the deputy's handler ran %d times; the call must be refused before it runs", n)
			}
		})
	}

	// The caller's own callback returns a function of the victim: the
	// deputy's call of the callback fails, and the function is not called.
	t.Run("result of the caller's callback", func(t *testing.T) {
		if err := f.mallory.Send(map[string]any{"type": "method", "to": f.deputyID, "method": "services.svc.call_result", "session": "res1"},
			map[string]any{"args": []any{ref(mal, "cbsess.cb", "*")}, "promise": "*", "t": 15.0}); err != nil {
			t.Fatal(err)
		}
		var final error
		for final == nil {
			fr, err := f.mallory.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			meth, _ := fr.Main["method"].(string)
			switch {
			case meth == "cbsess.cb":
				// The deputy calls our callback: answer with the victim's stop.
				sid, _ := fr.Main["session"].(string)
				if err := f.mallory.Send(map[string]any{"type": "method", "to": f.deputyID, "method": sid + ".resolve"},
					map[string]any{"args": []any{victimStop}}); err != nil {
					t.Fatal(err)
				}
			case meth == "res1.resolve":
				t.Fatalf("call_result resolved: %v", fr.Extra["args"])
			case meth == "res1.reject":
				final = errors.New(rejectMessage(fr))
			}
		}
		if !strings.Contains(final.Error(), "foreign callable refused") || !strings.Contains(final.Error(), f.victim) {
			t.Errorf("call_result failed with %q, want a foreign callable refusal naming %s", final, f.victim)
		}
		if err, _ := f.cbErr.Load().(error); !errors.Is(err, rpc.ErrForeignCallable) {
			t.Errorf("the deputy's callback call returned %v, want ErrForeignCallable", err)
		}
		f.sync(t, ctx)
		if n := f.stops.Load(); n != 0 {
			t.Fatalf("the victim's stop was called %d times", n)
		}
	})

	// The caller's own functions still work, bare or absolute.
	for _, target := range []string{mal, "mallory"} {
		t.Run("own callback "+target, func(t *testing.T) {
			if err := f.mallory.Send(map[string]any{"type": "method", "to": f.deputyID, "method": "services.svc.call_back", "session": "own1"},
				map[string]any{"args": []any{ref(target, "cbsess2.cb", "*")}, "promise": "*", "t": 15.0}); err != nil {
				t.Fatal(err)
			}
			for {
				fr, err := f.mallory.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				switch meth, _ := fr.Main["method"].(string); meth {
				case "cbsess2.cb":
					sid, _ := fr.Main["session"].(string)
					if err := f.mallory.Send(map[string]any{"type": "method", "to": f.deputyID, "method": sid + ".resolve"},
						map[string]any{"args": []any{"mine"}}); err != nil {
						t.Fatal(err)
					}
				case "own1.resolve":
					if a, _ := fr.Extra["args"].([]any); len(a) != 1 || a[0] != "mine" {
						t.Fatalf("resolved with %v", fr.Extra["args"])
					}
					return
				case "own1.reject":
					t.Fatalf("own callback refused: %v", fr.Extra["args"])
				}
			}
		})
	}
}

// TestHostileForeignCallableLogBounded: a peer sending foreign functions
// over and over gets a refusal each time, but the log gets one line.
func TestHostileForeignCallableLogBounded(t *testing.T) {
	var warns atomic.Int64
	f := newDeputyFixture(t, false, slog.New(countHandler{&warns}))
	ctx := testserver.Ctx(t)
	stop := ref(f.victim, "services.worker.stop", "*")
	for i := 0; i < 200; i++ {
		if _, err := f.mallory.Call(ctx, f.deputyID, "services.svc.call_back", []any{stop}, nil, nil); err == nil ||
			!strings.Contains(err.Error(), "foreign callable refused") {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := warns.Load(); n != 1 {
		t.Errorf("%d warnings logged for 200 refusals, want 1", n)
	}
	if n := f.stops.Load(); n != 0 {
		t.Fatalf("the victim's stop ran %d times", n)
	}
}

// countHandler counts the warnings logged through it.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestForeignCallableAllowedByOption: AllowForeignCallables restores the
// old behaviour for trusted setups: the same foreign function is called.
func TestForeignCallableAllowedByOption(t *testing.T) {
	f := newDeputyFixture(t, true, nil)
	ctx := testserver.Ctx(t)
	v, err := f.mallory.Call(ctx, f.deputyID, "services.svc.call_back", []any{ref(f.victim, "services.worker.stop", "*")}, nil, nil)
	if err != nil || v != "stopped" {
		t.Fatalf("call_back with the option: %v, %v", v, err)
	}
	if n := f.stops.Load(); n != 1 {
		t.Fatalf("the victim's stop was called %d times, want 1", n)
	}
}

// TestServiceFunctionsFromManagerAccepted: functions the manager forwards
// (get_service) belong to the provider, not to the manager; they are
// accepted, and passing one's own callbacks keeps working.
func TestServiceFunctionsFromManagerAccepted(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	testserver.MustRegister(t, prov, rpc.Service{ID: "svc", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: map[string]any{
		"apply": func(ctx context.Context, cb func(context.Context, string) (string, error), x string) (string, error) {
			return cb(ctx, x)
		},
	}})
	c := testserver.Connect(t, s, rpc.Config{ClientID: "user"})
	svc, err := c.GetService(ctx, "ws-user-root/prov:svc")
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Call(ctx, "apply", func(x string) string { return "cb:" + x }, "a")
	if err != nil || v != "cb:a" {
		t.Fatalf("apply: %v, %v", v, err)
	}
}

// rejectMessage is the error message of a reject frame.
func rejectMessage(fr testserver.Frame) string {
	a, _ := fr.Extra["args"].([]any)
	if len(a) == 0 {
		return ""
	}
	if m, ok := a[0].(map[string]any); ok {
		s, _ := m["_rvalue"].(string)
		return s
	}
	s, _ := a[0].(string)
	return s
}
