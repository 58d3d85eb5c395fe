package rpc_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestGetServiceIDForms resolves every id form get_service accepts: svc,
// ws/svc, client:svc, ws/client:svc, each with and without @app.
func TestGetServiceIDForms(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	other := testserver.RootClient(t, s, "other")
	caller := testserver.RootClient(t, s, "caller")
	anon := testserver.Connect(t, s, rpc.Config{ClientID: "anon"})

	testserver.MustRegister(t, prov, rpc.Service{ID: "forms", AppID: "app1", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"who": func() string { return "prov" }}})
	testserver.MustRegister(t, prov, rpc.Service{ID: "dup", Functions: map[string]any{"who": func() string { return "prov" }}})
	testserver.MustRegister(t, other, rpc.Service{ID: "dup", Functions: map[string]any{"who": func() string { return "other" }}})

	for _, tc := range []struct {
		name    string
		c       *rpc.Client
		id      string
		opts    []rpc.GetServiceOption
		wantID  string // "" = an error is expected
		wantErr string
	}{
		{"svc", caller, "forms", nil, "ws-user-root/prov:forms", ""},
		{"ws/svc", caller, "ws-user-root/forms", nil, "ws-user-root/prov:forms", ""},
		{"client:svc", caller, "prov:forms", nil, "ws-user-root/prov:forms", ""},
		{"ws/client:svc", caller, "ws-user-root/prov:forms", nil, "ws-user-root/prov:forms", ""},
		{"svc@app", caller, "forms@app1", nil, "ws-user-root/prov:forms", ""},
		{"ws/svc@app", caller, "ws-user-root/forms@app1", nil, "ws-user-root/prov:forms", ""},
		{"client:svc@app", caller, "prov:forms@app1", nil, "ws-user-root/prov:forms", ""},
		{"ws/client:svc@app", caller, "ws-user-root/prov:forms@app1", nil, "ws-user-root/prov:forms", ""},
		{"other workspace, public, ws/svc", anon, "ws-user-root/forms", nil, "ws-user-root/prov:forms", ""},
		{"other workspace, public, ws/client:svc", anon, "ws-user-root/prov:forms@app1", nil, "ws-user-root/prov:forms", ""},
		{"bare svc resolves in the caller's workspace", anon, "forms", nil, "", "not found"},
		{"wrong app", caller, "forms@app2", nil, "", "not found"},
		{"wrong client", caller, "other:forms", nil, "", "not found"},
		{"unknown", caller, "nope", nil, "", "not found"},
		{"two slashes", caller, "a/b/c", nil, "", "at most one '/'"},
		{"ambiguous", caller, "dup", nil, "", "Multiple services"},
		{"ambiguous, mode first", caller, "dup", []rpc.GetServiceOption{rpc.Mode("first")}, "ws-user-root/prov:dup", ""},
		{"ambiguous, mode last", caller, "dup", []rpc.GetServiceOption{rpc.Mode("last")}, "ws-user-root/other:dup", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := tc.c.GetService(ctx, tc.id, tc.opts...)
			if tc.wantID == "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("GetService(%q) = %v, want an error containing %q", tc.id, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetService(%q): %v", tc.id, err)
			}
			if svc.ID != tc.wantID {
				t.Errorf("ID = %q, want %q", svc.ID, tc.wantID)
			}
			if got := svc.Config["workspace"]; got != "ws-user-root" {
				t.Errorf("config.workspace = %v", got)
			}
			want := strings.TrimPrefix(tc.wantID, "ws-user-root/")
			want = want[:strings.IndexByte(want, ':')]
			got, err := svc.Call(ctx, "who")
			if err != nil || got != want {
				t.Errorf("who() = %v, %v; want %q", got, err, want)
			}
		})
	}
}

func ids(list []rpc.ServiceInfo) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

// TestListServicesFilters checks the type, visibility and workspace filters
// and what a caller of another workspace may see.
func TestListServicesFilters(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	root := testserver.RootClient(t, s, "lister")
	anon := testserver.Connect(t, s, rpc.Config{ClientID: "anon"})
	anonWS := anon.Info().Workspace
	fn := map[string]any{"f": func() {}}
	testserver.MustRegister(t, prov, rpc.Service{ID: "pub-t1", Type: "t1", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: fn})
	testserver.MustRegister(t, prov, rpc.Service{ID: "prot-t2", Type: "t2", Config: rpc.ServiceConfig{Visibility: "protected"}, Functions: fn})
	testserver.MustRegister(t, prov, rpc.Service{ID: "unl-t1", Type: "t1", Config: rpc.ServiceConfig{Visibility: "unlisted"}, Functions: fn})

	notBuiltin := func(l []string) []string {
		return slices.DeleteFunc(l, func(id string) bool { return strings.HasSuffix(id, ":built-in") })
	}
	for _, tc := range []struct {
		name      string
		c         *rpc.Client
		query     any
		keepBuilt bool
		want      []string
		wantErr   string
	}{
		{"type t1 (unlisted hidden)", root, map[string]any{"type": "t1"}, false, []string{"ws-user-root/prov:pub-t1"}, ""},
		{"type t2", root, map[string]any{"type": "t2"}, false, []string{"ws-user-root/prov:prot-t2"}, ""},
		{"visibility protected", root, map[string]any{"visibility": "protected"}, true, []string{"ws-user-root/prov:prot-t2"}, ""},
		{"visibility public and type", root, map[string]any{"visibility": "public", "type": "t1"}, false, []string{"ws-user-root/prov:pub-t1"}, ""},
		{"no query", root, nil, false, []string{"ws-user-root/prov:prot-t2", "ws-user-root/prov:pub-t1"}, ""},
		{"built-in by type and client", root, map[string]any{"type": "built-in", "client_id": "prov"}, true, []string{"ws-user-root/prov:built-in"}, ""},
		{"string query", root, "ws-user-root/prov:pub-t1", false, []string{"ws-user-root/prov:pub-t1"}, ""},
		{"other workspace sees public only", anon, map[string]any{"workspace": "ws-user-root"}, false, []string{"ws-user-root/prov:pub-t1"}, ""},
		{"other workspace, protected type", anon, map[string]any{"workspace": "ws-user-root", "type": "t2"}, false, []string{}, ""},
		{"own workspace", anon, nil, true, []string{anonWS + "/anon:built-in"}, ""},
		{"all workspaces", anon, map[string]any{"workspace": "*", "type": "t1"}, false, []string{"ws-user-root/prov:pub-t1"}, ""},
		{"unknown key", root, map[string]any{"bogus": "x"}, false, nil, "invalid query key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := tc.c.ListServices(ctx, tc.query)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ids(list)
			if !tc.keepBuilt {
				got = notBuiltin(got)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			for _, si := range list {
				if si.Config["workspace"] == nil || si.Type == "" {
					t.Errorf("%s: incomplete entry %v", si.ID, si.Raw)
				}
			}
		})
	}
}

// TestUnregisterService removes a service: it can no longer be fetched,
// listed or called, and unregistering twice fails.
func TestUnregisterService(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	caller := testserver.RootClient(t, s, "caller")
	testserver.MustRegister(t, prov, rpc.Service{ID: "gone", Functions: map[string]any{"f": func() string { return "ok" }}})
	svc, err := caller.GetService(ctx, "prov:gone")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := svc.Call(ctx, "f"); err != nil || v != "ok" {
		t.Fatalf("before: %v, %v", v, err)
	}
	if err := prov.UnregisterService(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.GetService(ctx, "prov:gone"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("GetService after unregister: %v", err)
	}
	list, err := caller.ListServices(ctx, map[string]any{"client_id": "prov"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids(list), "ws-user-root/prov:gone") {
		t.Errorf("still listed: %v", ids(list))
	}
	var re *rpc.RemoteError
	if _, err := svc.Call(ctx, "f"); !errors.As(err, &re) || !strings.Contains(re.Message, "not found") {
		t.Errorf("call after unregister: %v", err)
	}
	if err := prov.UnregisterService(ctx, "gone"); !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("second unregister: %v", err)
	}
	// The full id is accepted too.
	testserver.MustRegister(t, prov, rpc.Service{ID: "gone2", Functions: map[string]any{"f": func() {}}})
	if err := prov.UnregisterService(ctx, "ws-user-root/prov:gone2"); err != nil {
		t.Errorf("unregister by full id: %v", err)
	}
	if _, err := caller.GetService(ctx, "prov:gone2"); err == nil {
		t.Errorf("gone2 still there")
	}
}

// TestKwargs sends keyword arguments from Go to handlers declared with
// rpc.Params, to HandlerFuncs and to Kwargs parameters, and from a handler
// back to a caller's callback.
func TestKwargs(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	caller := testserver.RootClient(t, s, "caller")
	raw := rpc.HandlerFunc(func(_ context.Context, c *rpc.Call) (any, error) {
		return map[string]any{"args": c.Args, "kwargs": c.Kwargs}, nil
	})
	testserver.MustRegister(t, prov, rpc.Service{ID: "kw", Functions: map[string]any{
		"sub": rpc.Params(func(a, b int) int { return a - b }, "a", "b"),
		"raw": raw,
		"rest": rpc.Params(func(a int, kw rpc.Kwargs) map[string]any {
			return map[string]any{"a": a, "rest": map[string]any(kw)}
		}, "a"),
		"call_kw": func(ctx context.Context, cb *rpc.RemoteFunc) (any, error) {
			return cb.Call(ctx, 1, rpc.Kwargs{"y": "z"})
		},
	}})
	svc, err := caller.GetService(ctx, "prov:kw")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		fn      string
		args    []any
		want    any
		wantErr string
	}{
		{"all keyword", "sub", []any{rpc.Kwargs{"a": 10, "b": 3}}, int64(7), ""},
		{"keyword order does not matter", "sub", []any{rpc.Kwargs{"b": 3, "a": 10}}, int64(7), ""},
		{"positional then keyword", "sub", []any{10, rpc.Kwargs{"b": 3}}, int64(7), ""},
		{"positional", "sub", []any{10, 3}, int64(7), ""},
		{"given twice", "sub", []any{10, rpc.Kwargs{"a": 1}}, nil, "given twice"},
		{"unknown keyword", "sub", []any{rpc.Kwargs{"c": 1}}, nil, "unexpected keyword argument"},
		{"HandlerFunc sees Kwargs", "raw", []any{1, rpc.Kwargs{"k": "v", "n": []any{true}}},
			map[string]any{"args": []any{int64(1)}, "kwargs": map[string]any{"k": "v", "n": []any{true}}}, ""},
		{"HandlerFunc without kwargs", "raw", []any{"x"}, map[string]any{"args": []any{"x"}, "kwargs": map[string]any(nil)}, ""},
		{"Kwargs parameter takes the rest", "rest", []any{rpc.Kwargs{"a": 1, "x": 2}},
			map[string]any{"a": int64(1), "rest": map[string]any{"x": int64(2)}}, ""},
		{"handler calls back with kwargs", "call_kw", []any{raw},
			map[string]any{"args": []any{int64(1)}, "kwargs": map[string]any{"y": "z"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.Call(ctx, tc.fn, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestRequireContext: a *rpc.CallContext parameter receives the caller's
// identity as stamped by the server, never what the caller claims.
func TestRequireContext(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	root := testserver.RootClient(t, s, "rc")
	anon := testserver.Connect(t, s, rpc.Config{ClientID: "anon"})
	testserver.MustRegister(t, prov, rpc.Service{ID: "ctx", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: map[string]any{
		"who": rpc.Params(func(cc *rpc.CallContext, note string) map[string]any {
			return map[string]any{"from": cc.From, "to": cc.To, "ws": cc.WS, "user": cc.User.ID, "note": note}
		}, "note"),
	}})
	list, err := root.ListServices(ctx, "ws-user-root/prov:ctx")
	if err != nil || len(list) != 1 || list[0].Config["require_context"] != true {
		t.Fatalf("require_context not advertised: %v %v", list, err)
	}
	anonWS := anon.Info().Workspace
	for _, tc := range []struct {
		name string
		c    *rpc.Client
		args []any
		want map[string]any
	}{
		{"same workspace", root, []any{"n"}, map[string]any{"from": "ws-user-root/rc", "ws": "ws-user-root", "user": "root"}},
		{"other workspace", anon, []any{"n"}, map[string]any{"from": anonWS + "/anon", "ws": anonWS, "user": anon.Info().User.ID}},
		{"a context keyword from the caller is ignored", anon, []any{rpc.Kwargs{"note": "n",
			"context": map[string]any{"from": "ws-user-root/rc", "ws": "ws-user-root", "user": map[string]any{"id": "root"}}}},
			map[string]any{"from": anonWS + "/anon", "ws": anonWS, "user": anon.Info().User.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := tc.c.GetService(ctx, "ws-user-root/prov:ctx")
			if err != nil {
				t.Fatal(err)
			}
			got, err := svc.Call(ctx, "who", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"to": "ws-user-root/prov", "note": "n"}
			for k, v := range tc.want {
				want[k] = v
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestCallbacks passes functions both ways: a caller's callback invoked by
// the handler, a handler's function passed into that callback, and a
// function returned inside a result.
func TestCallbacks(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	caller := testserver.RootClient(t, s, "caller")
	testserver.MustRegister(t, prov, rpc.Service{ID: "cb", Functions: map[string]any{
		"apply": func(ctx context.Context, cb func(context.Context, string) (string, error), x string) (string, error) {
			return cb(ctx, x)
		},
		"twoway": func(ctx context.Context, cb *rpc.RemoteFunc) (any, error) {
			return cb.Call(ctx, func(s string) string { return "prov saw " + s })
		},
		"maker": func(prefix string) map[string]any {
			return map[string]any{"fn": func(s string) string { return prefix + s }, "n": 1,
				"nested": []any{map[string]any{"g": func() string { return "deep" }}}}
		},
	}})
	svc, err := caller.GetService(ctx, "prov:cb")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("caller callback", func(t *testing.T) {
		got, err := svc.Call(ctx, "apply", func(s string) string { return strings.ToUpper(s) }, "hey")
		if err != nil || got != "HEY" {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("callback receives a function of the callee", func(t *testing.T) {
		got, err := svc.Call(ctx, "twoway", func(ctx context.Context, f *rpc.RemoteFunc) (any, error) {
			return f.Call(ctx, "caller")
		})
		if err != nil || got != "prov saw caller" {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("function inside a result", func(t *testing.T) {
		v, err := svc.Call(ctx, "maker", "p-")
		if err != nil {
			t.Fatal(err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("result %T", v)
		}
		fn, ok := m["fn"].(*rpc.RemoteFunc)
		if !ok {
			t.Fatalf("fn is %T", m["fn"])
		}
		for _, x := range []string{"a", "b"} { // callable more than once
			if got, err := fn.Call(ctx, x); err != nil || got != "p-"+x {
				t.Fatalf("fn(%q) = %v, %v", x, got, err)
			}
		}
		var g func(context.Context) (string, error)
		if err := rpc.Decode(m["nested"].([]any)[0].(map[string]any)["g"], &g); err != nil {
			t.Fatal(err)
		}
		if got, err := g(ctx); err != nil || got != "deep" {
			t.Fatalf("g() = %v, %v", got, err)
		}
	})
}

// TestRemoteErrors: the handler's error message reaches the caller intact.
func TestRemoteErrors(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	caller := testserver.RootClient(t, s, "caller")
	testserver.MustRegister(t, prov, rpc.Service{ID: "err", Functions: map[string]any{
		"fail":  func(msg string) error { return errors.New(msg) },
		"fail2": func(msg string) (int, error) { return 0, errors.New(msg) },
		"panic": func() { panic("kaboom") },
		"nested": func(ctx context.Context, cb func(context.Context) error) error {
			return cb(ctx)
		},
	}})
	svc, err := caller.GetService(ctx, "prov:err")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 10000)
	for _, tc := range []struct {
		name, fn string
		args     []any
		want     string // substring of RemoteError.Message
	}{
		{"error", "fail", []any{"boom"}, "boom"},
		{"unicode", "fail", []any{"ünïcødé ✓"}, "ünïcødé ✓"},
		{"long", "fail", []any{long}, long},
		{"value and error", "fail2", []any{"second"}, "second"},
		{"panic", "panic", nil, "kaboom"},
		{"error of a callback", "nested", []any{func() error { return errors.New("from the caller") }}, "from the caller"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Call(ctx, tc.fn, tc.args...)
			var re *rpc.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want a *rpc.RemoteError", err, err)
			}
			if !strings.Contains(re.Message, tc.want) {
				t.Errorf("message %q does not contain %q", re.Message, tc.want)
			}
		})
	}
}

// TestValueRoundTrip echoes values of every kind through another client.
func TestValueRoundTrip(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	caller := testserver.RootClient(t, s, "caller")
	var mu sync.Mutex
	var seen any
	testserver.MustRegister(t, prov, rpc.Service{ID: "echo", Functions: map[string]any{
		"echo": func(x any) any { mu.Lock(); seen = x; mu.Unlock(); return x },
	}})
	svc, err := caller.GetService(ctx, "prov:echo")
	if err != nil {
		t.Fatal(err)
	}
	nd := rpc.NDArray{Data: []byte{0, 0, 128, 63, 0, 0, 0, 64}, Shape: []int64{1, 2}, DType: "float32"}
	for _, tc := range []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"true", true, true},
		{"false", false, false},
		{"zero", 0, int64(0)},
		{"negative fixint", -1, int64(-1)},
		{"negative int8 boundary", -129, int64(-129)},
		{"above 2^32", int64(1<<32 + 5), int64(1<<32 + 5)},
		{"below -2^40", int64(-(1 << 40)), int64(-(1 << 40))},
		{"max int64", int64(math.MaxInt64), int64(math.MaxInt64)},
		{"min int64", int64(math.MinInt64), int64(math.MinInt64)},
		{"max uint64", uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"uint32", uint32(4000000000), int64(4000000000)},
		{"float", 2.5, 2.5},
		{"float32", float32(1.5), 1.5},
		{"huge float", -1e300, -1e300},
		{"tiny float", math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64},
		{"integral float stays float", 3.0, 3.0},
		{"empty string", "", ""},
		{"unicode string", "héllo ✓ 😀", "héllo ✓ 😀"},
		{"bytes", []byte{0, 1, 254, 255}, []byte{0, 1, 254, 255}},
		{"list", []any{1, "a", nil, 2.5, []byte("b")}, []any{int64(1), "a", nil, 2.5, []byte("b")}},
		{"empty list", []any{}, []any{}},
		{"strings", []string{"x", "y"}, []any{"x", "y"}},
		{"nested map", map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": -7}}}, "e": map[string]any{}},
			map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": int64(-7)}}}, "e": map[string]any{}}},
		{"ndarray", nd, nd},
		{"ndarray in a map", map[string]any{"arr": &nd}, map[string]any{"arr": nd}},
		{"typedarray", rpc.TypedArray{Data: []byte{1, 2, 3, 4}, DType: "int16"}, rpc.TypedArray{Data: []byte{1, 2, 3, 4}, DType: "int16"}},
		// What the JS and Python clients send, decoded on arrival.
		{"memoryview (JS ArrayBuffer)", map[string]any{"_rtype": "memoryview", "_rvalue": []byte{9, 8}}, []byte{9, 8}},
		{"set (JS Set)", map[string]any{"_rtype": "set", "_rvalue": []any{1, "a"}}, []any{int64(1), "a"}},
		{"orderedmap (JS Map pairs)", map[string]any{"_rtype": "orderedmap", "_rvalue": []any{[]any{"k", 1}, []any{"j", []byte{1}}}},
			map[string]any{"k": int64(1), "j": []byte{1}}},
		{"orderedmap (Python keys only)", map[string]any{"_rtype": "orderedmap", "_rvalue": []any{"a", "b"}},
			map[string]any{"a": nil, "b": nil}},
		{"ndarray in chunks", map[string]any{"_rtype": "ndarray", "_rvalue": []any{[]byte{1, 2}, []byte{3}}, "_rshape": []any{3}, "_rdtype": "uint8"},
			rpc.NDArray{Data: []byte{1, 2, 3}, Shape: []int64{3}, DType: "uint8"}},
		{"error value", map[string]any{"_rtype": "error", "_rvalue": "boom", "_rtrace": "at x"},
			&rpc.RemoteError{Message: "boom", Trace: "at x"}},
		{"unknown _rtype kept", map[string]any{"_rtype": "custom-thing", "x": 1, "inner": map[string]any{"_rtype": "other", "y": "z"}},
			map[string]any{"_rtype": "custom-thing", "x": int64(1), "inner": map[string]any{"_rtype": "other", "y": "z"}}},
		{"pydantic-model marker removed", map[string]any{"_rtype": "pydantic-model", "id": "x", "n": 2},
			map[string]any{"id": "x", "n": int64(2)}},
		{"pydantic-model nested", []any{map[string]any{"_rtype": "pydantic-model", "k": "v"}}, []any{map[string]any{"k": "v"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.Call(ctx, "echo", tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("round trip (-want +got)\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(tc.want, seen); diff != "" {
				t.Errorf("the handler saw (-want +got)\n%s", diff)
			}
		})
	}
}

// TestArgumentChecks: a call whose arguments do not fit the function's
// parameters fails with an error (rpc.ErrArguments' "TypeError" text) that
// names the parameter, instead of running with zero values; over the
// websocket from a Go caller, for reflected functions with and without
// rpc.Params and for a HandlerFunc declared with rpc.Params.
func TestArgumentChecks(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	caller := testserver.RootClient(t, s, "caller")
	var ran atomic.Int32
	testserver.MustRegister(t, prov, rpc.Service{ID: "args", Functions: map[string]any{
		"greet": rpc.Params(func(name, greeting string) string {
			ran.Add(1)
			if greeting == "" {
				greeting = "hello"
			}
			return greeting + ", " + name
		}, "name", "greeting?"),
		"add": func(a, b int) int { ran.Add(1); return a + b },
		"sum": func(xs ...int) int {
			n := 0
			for _, x := range xs {
				n += x
			}
			return n
		},
		"h": rpc.Params(rpc.HandlerFunc(func(_ context.Context, c *rpc.Call) (any, error) {
			ran.Add(1)
			return c.Arg(0, "path"), nil
		}), "path", "limit?"),
	}})
	svc, err := caller.GetService(ctx, "prov:args")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		fn      string
		args    []any
		want    any
		wantErr string
	}{
		{"by name", "greet", []any{rpc.Kwargs{"name": "Carol"}}, "hello, Carol", ""},
		{"optional by name", "greet", []any{rpc.Kwargs{"name": "Carol", "greeting": "hi"}}, "hi, Carol", ""},
		{"optional left out positionally", "greet", []any{"Ada"}, "hello, Ada", ""},
		{"required missing", "greet", []any{rpc.Kwargs{"greeting": "hi"}}, nil, `TypeError: greet: missing argument "name"`},
		{"no arguments", "greet", nil, nil, `missing argument "name"`},
		{"unknown keyword", "greet", []any{rpc.Kwargs{"name": "x", "nmae": "y"}}, nil,
			`TypeError: greet: unexpected keyword argument "nmae" (parameters: name, greeting?)`},
		{"too many positional", "greet", []any{"a", "b", "c"}, nil, "TypeError: greet takes 2 arguments (name, greeting?), 3 given"},
		{"wrong type names the parameter", "greet", []any{rpc.Kwargs{"name": 7}}, nil, `TypeError: greet: argument "name": convert`},
		{"unnamed: all positional", "add", []any{1, 2}, int64(3), ""},
		{"unnamed: one missing", "add", []any{1}, nil, "TypeError: add takes 2 arguments, 1 given"},
		{"unnamed: keyword refused with a hint", "add", []any{rpc.Kwargs{"a": 1, "b": 2}}, nil,
			`TypeError: add: unexpected keyword argument "a" (this function takes positional arguments only; its parameters can be named with rpc.Params)`},
		{"variadic: none", "sum", nil, int64(0), ""},
		{"variadic: many", "sum", []any{1, 2, 3}, int64(6), ""},
		{"declared HandlerFunc", "h", []any{rpc.Kwargs{"path": "/x"}}, "/x", ""},
		{"declared HandlerFunc: missing", "h", []any{rpc.Kwargs{"limit": 1}}, nil, `TypeError: h: missing argument "path"`},
		{"declared HandlerFunc: unknown", "h", []any{"/x", rpc.Kwargs{"depth": 1}}, nil, `unexpected keyword argument "depth" (parameters: path, limit?)`},
		{"declared HandlerFunc: too many", "h", []any{"/x", 1, 2}, nil, "h takes 2 arguments (path, limit?), 3 given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ran.Load()
			got, err := svc.Call(ctx, tc.fn, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if ran.Load() != before {
					t.Errorf("the function ran despite the bad arguments")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestParamsSchema: the parameters declared with rpc.Params, their JSON
// types and which are required appear in the service schema the server
// stores (service_schema) and in the function references get_service
// returns (_rschema); a bad declaration is refused at registration.
func TestParamsSchema(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	testserver.MustRegister(t, prov, rpc.Service{ID: "sch", Functions: map[string]any{
		"greet": rpc.Doc(rpc.Params(func(name string, times int, loud bool, tags []string, opts map[string]any) string {
			return name
		}, "name", "times?", "loud?", "tags?", "opts?"), "Greets someone."),
		"h": rpc.Params(rpc.HandlerFunc(func(context.Context, *rpc.Call) (any, error) { return nil, nil }), "path"),
	}})
	wantGreet := map[string]any{
		"name": "greet", "description": "Greets someone.",
		"parameters": map[string]any{"type": "object", "required": []any{"name"}, "properties": map[string]any{
			"name":  map[string]any{"type": "string", "description": ""},
			"times": map[string]any{"type": "integer", "description": ""},
			"loud":  map[string]any{"type": "boolean", "description": ""},
			"tags":  map[string]any{"type": "array", "description": ""},
			"opts":  map[string]any{"type": "object", "description": ""},
		}},
	}
	info, err := prov.Manager().Call(ctx, "get_service_info", "ws-user-root/prov:sch")
	if err != nil {
		t.Fatal(err)
	}
	schema, _ := info.(map[string]any)["service_schema"].(map[string]any)
	greet, _ := schema["greet"].(map[string]any)
	if diff := cmp.Diff(wantGreet, greet["function"]); diff != "" {
		t.Errorf("service_schema.greet (-want +got)\n%s", diff)
	}
	h, _ := schema["h"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"type": "object", "required": []any{"path"},
		"properties": map[string]any{"path": map[string]any{"description": ""}}},
		h["function"].(map[string]any)["parameters"]); diff != "" {
		t.Errorf("service_schema.h (-want +got)\n%s", diff)
	}
	svc, err := prov.GetService(ctx, "prov:sch")
	if err != nil {
		t.Fatal(err)
	}
	if f := svc.Func("greet"); f == nil || f.Schema() == nil {
		t.Fatalf("greet has no _rschema")
	} else if diff := cmp.Diff(wantGreet, f.Schema()); diff != "" {
		t.Errorf("_rschema of greet (-want +got)\n%s", diff)
	}

	for _, tc := range []struct {
		fn      any
		wantErr string
	}{
		{rpc.Params(func(a string) {}, "context"), `"context" is reserved`},
		{rpc.Params(func(a, b string) {}, "a", "a"), `"a" is named twice`},
		{rpc.Params(func(a string) {}, "?"), "empty name"},
		{rpc.Params(func(a string) {}, "a", "b"), "2 names for 1 parameters"},
	} {
		_, err := prov.RegisterService(ctx, rpc.Service{ID: "bad", Functions: map[string]any{"f": tc.fn}})
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("register: err = %v, want %q", err, tc.wantErr)
		}
	}
}
