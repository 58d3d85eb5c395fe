package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/server/auth"
)

func svc(id string, kv ...any) map[string]any {
	m := map[string]any{"id": id}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func cfg(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func ids(es []*Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.FullID())
	}
	return out
}

func mustRegister(t *testing.T, r *Registry, info map[string]any) {
	t.Helper()
	if _, err := r.Register(info); err != nil {
		t.Fatalf("Register(%v): %v", info["id"], err)
	}
}

func TestRegisterValidation(t *testing.T) {
	long := strings.Repeat("é", MaxDescriptionLength+1)
	tests := []struct {
		name    string
		info    map[string]any
		wantErr error // nil = success
	}{
		{"minimal", svc("ws/c:s"), nil},
		{"all visibilities: public", svc("ws/c:s", "config", cfg("visibility", "public")), nil},
		{"unlisted", svc("ws/c:s", "config", cfg("visibility", "unlisted")), nil},
		{"protected with authorized", svc("ws/c:s", "config", cfg("authorized_workspaces", []any{"ws-x"})), nil},
		{"explicit protected with authorized []string", svc("ws/c:s", "config", cfg("visibility", "protected", "authorized_workspaces", []string{"x"})), nil},
		{"authorized nil with public", svc("ws/c:s", "config", cfg("visibility", "public", "authorized_workspaces", nil)), nil},
		{"description at limit", svc("ws/c:s", "description", strings.Repeat("é", MaxDescriptionLength)), nil},
		{"nil config and fields", svc("ws/c:s", "config", nil, "type", nil, "app_id", nil, "name", nil, "description", nil), nil},

		{"nil info", nil, ErrInvalid},
		{"missing id", map[string]any{"name": "x"}, ErrInvalid},
		{"id not string", map[string]any{"id": 5}, ErrInvalid},
		{"no workspace", svc("c:s"), ErrInvalid},
		{"no client", svc("ws/s"), ErrInvalid},
		{"two slashes", svc("ws/c/d:s"), ErrInvalid},
		{"slash in name", svc("ws/c:s/x"), ErrInvalid},
		{"two colons", svc("ws/c:s:t"), ErrInvalid},
		{"colon before slash", svc("ws:c/s"), ErrInvalid},
		{"empty workspace", svc("/c:s"), ErrInvalid},
		{"empty client", svc("ws/:s"), ErrInvalid},
		{"empty name", svc("ws/c:"), ErrInvalid},
		{"at in name", svc("ws/c:s@app"), ErrInvalid},
		{"wildcard workspace", svc("*/c:s"), ErrInvalid},
		{"wildcard client", svc("ws/*:s"), ErrInvalid},
		{"bad visibility", svc("ws/c:s", "config", cfg("visibility", "secret")), ErrInvalid},
		{"visibility not string", svc("ws/c:s", "config", cfg("visibility", true)), ErrInvalid},
		{"config not map", svc("ws/c:s", "config", "x"), ErrInvalid},
		{"authorized with public", svc("ws/c:s", "config", cfg("visibility", "public", "authorized_workspaces", []any{"a"})), ErrInvalid},
		{"authorized with unlisted", svc("ws/c:s", "config", cfg("visibility", "unlisted", "authorized_workspaces", []any{})), ErrInvalid},
		{"authorized not list", svc("ws/c:s", "config", cfg("authorized_workspaces", "a")), ErrInvalid},
		{"authorized not strings", svc("ws/c:s", "config", cfg("authorized_workspaces", []any{1})), ErrInvalid},
		{"description too long", svc("ws/c:s", "description", long), ErrInvalid},
		{"description not string", svc("ws/c:s", "description", 1), ErrInvalid},
		{"docs not string", svc("ws/c:s", "docs", []any{}), ErrInvalid},
		{"type not string", svc("ws/c:s", "type", 1), ErrInvalid},
		{"name not string", svc("ws/c:s", "name", 1), ErrInvalid},
		{"app id with slash", svc("ws/c:s", "app_id", "a/b"), ErrInvalid},
		{"app id with at", svc("ws/c:s", "app_id", "a@b"), ErrInvalid},
		{"singleton not bool", svc("ws/c:s", "config", cfg("singleton", "yes")), ErrInvalid},
		{"flags not list", svc("ws/c:s", "config", cfg("flags", "x")), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			old, err := r.Register(tc.info)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if old != nil {
					t.Fatalf("replaced = %v on empty registry", old.FullID())
				}
				if r.Len() != 1 {
					t.Fatalf("Len = %d", r.Len())
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if r.Len() != 0 {
				t.Fatalf("failed registration stored an entry")
			}
		})
	}
}

func TestRegisterNormalises(t *testing.T) {
	r := New()
	schema := map[string]any{"echo": map[string]any{"type": "function"}}
	in := svc("ws-a/c1:echo-svc",
		"config", cfg("require_context", true, "extra", "kept", "workspace", "spoofed"),
		"service_schema", schema,
		"custom", int64(3),
	)
	mustRegister(t, r, in)
	e, ok := r.Get("ws-a/c1:echo-svc")
	if !ok {
		t.Fatal("not stored")
	}
	wantInfo := map[string]any{
		"id":             "ws-a/c1:echo-svc",
		"name":           "echo-svc",
		"type":           "generic",
		"description":    nil,
		"docs":           nil,
		"app_id":         "*",
		"service_schema": schema,
		"custom":         int64(3),
		"config": map[string]any{
			"visibility":            "protected",
			"workspace":             "ws-a",
			"require_context":       true,
			"flags":                 []any{},
			"singleton":             false,
			"created_by":            nil,
			"authorized_workspaces": nil,
			"extra":                 "kept",
		},
	}
	if diff := cmp.Diff(wantInfo, e.Info); diff != "" {
		t.Errorf("Info mismatch (-want +got):\n%s", diff)
	}
	got := [...]string{e.Workspace, e.ClientID, e.Name, e.AppID, e.Type, e.Visibility, e.Key()}
	want := [...]string{"ws-a", "c1", "echo-svc", "*", "generic", "protected", "services:protected|generic:ws-a/c1:echo-svc@*"}
	if got != want {
		t.Errorf("entry fields = %v, want %v", got, want)
	}
	if e.ClientKey() != "ws-a/c1" || e.IsBuiltIn() || e.Singleton() {
		t.Errorf("ClientKey/IsBuiltIn/Singleton wrong")
	}
	// The caller's map was not modified.
	if _, ok := in["name"]; ok || in["config"].(map[string]any)["workspace"] != "spoofed" {
		t.Error("Register modified its argument")
	}

	// Explicit values are kept.
	mustRegister(t, r, svc("ws-a/c1:b", "name", "Nice name", "type", "built-in", "app_id", "my-app",
		"description", "d", "docs", "doc", "config", cfg("visibility", "public", "authorized_workspaces", nil, "created_by", map[string]any{"id": "u"})))
	e, _ = r.Get("ws-a/c1:b")
	if e.Info["name"] != "Nice name" || e.Type != "built-in" || e.AppID != "my-app" || e.Visibility != "public" ||
		e.Info["description"] != "d" || e.Info["docs"] != "doc" || e.Config()["created_by"] == nil {
		t.Errorf("explicit values lost: %+v", e.Info)
	}
	// authorized_workspaces normalised to []any.
	mustRegister(t, r, svc("ws-a/c1:p", "config", cfg("authorized_workspaces", []string{"x", "y"})))
	e, _ = r.Get("ws-a/c1:p")
	if diff := cmp.Diff([]any{"x", "y"}, e.Config()["authorized_workspaces"]); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"x", "y"}, e.AuthorizedWorkspaces); diff != "" {
		t.Error(diff)
	}
}

func TestRegisterReplaces(t *testing.T) {
	r := New()
	mustRegister(t, r, svc("ws/c:a"))
	mustRegister(t, r, svc("ws/c:b", "app_id", "app1"))
	mustRegister(t, r, svc("ws/c:c"))

	old, err := r.Register(svc("ws/c:b", "app_id", "app2", "config", cfg("visibility", "public"), "type", "t2"))
	if err != nil {
		t.Fatal(err)
	}
	if old == nil || old.AppID != "app1" || old.Visibility != Protected {
		t.Fatalf("replaced = %+v", old)
	}
	if r.Len() != 3 || r.Count("ws", "c") != 3 {
		t.Fatalf("Len = %d Count = %d", r.Len(), r.Count("ws", "c"))
	}
	e, _ := r.Get("ws/c:b")
	if e.AppID != "app2" || e.Visibility != Public || e.Type != "t2" {
		t.Errorf("new entry = %+v", e)
	}
	// A re-registration moves to the end of the registration order.
	got := ids(r.Find(ServiceQuery{Workspace: "ws", ClientID: "*", Name: "*", AppID: "*"}))
	if diff := cmp.Diff([]string{"ws/c:a", "ws/c:c", "ws/c:b"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if len(r.Find(ServiceQuery{Workspace: "ws", ClientID: "c", Name: "b", AppID: "app1"})) != 0 {
		t.Error("old app id still found")
	}
}

func TestSingleton(t *testing.T) {
	single := cfg("singleton", true)
	tests := []struct {
		name     string
		existing []map[string]any
		add      map[string]any
		wantErr  bool
	}{
		{"singleton alone", nil, svc("ws/c1:s", "config", single), false},
		{"singleton joins existing name", []map[string]any{svc("ws/c1:s")}, svc("ws/c2:s", "config", single), true},
		{"plain joins singleton name", []map[string]any{svc("ws/c1:s", "config", single)}, svc("ws/c2:s"), true},
		{"singleton re-registered", []map[string]any{svc("ws/c1:s", "config", single)}, svc("ws/c1:s", "config", single), false},
		{"singleton re-registered other app", []map[string]any{svc("ws/c1:s", "config", single, "app_id", "a")}, svc("ws/c1:s", "config", single, "app_id", "b"), false},
		{"other workspace is independent", []map[string]any{svc("ws/c1:s", "config", single)}, svc("ws2/c1:s", "config", single), false},
		{"other name is independent", []map[string]any{svc("ws/c1:s", "config", single)}, svc("ws/c1:t"), false},
		{"two plain services share a name", []map[string]any{svc("ws/c1:s")}, svc("ws/c2:s"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			for _, e := range tc.existing {
				mustRegister(t, r, e)
			}
			_, err := r.Register(tc.add)
			if tc.wantErr {
				if !errors.Is(err, ErrSingleton) {
					t.Fatalf("err = %v, want ErrSingleton", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnregister(t *testing.T) {
	r := New()
	mustRegister(t, r, svc("ws/c:a", "app_id", "app"))
	mustRegister(t, r, svc("ws/c:b"))
	tests := []struct {
		id      string
		wantErr bool
	}{
		{"ws/c:a@other", true},
		{"ws/c:a@app", false},
		{"ws/c:a", true},
		{"ws/c:b@*", false},
		{"ws/c:b", true},
		{"nonsense", true},
	}
	for _, tc := range tests {
		e, err := r.Unregister(tc.id)
		if tc.wantErr {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Unregister(%q) err = %v, want ErrNotFound", tc.id, err)
			}
			continue
		}
		if err != nil || e == nil || !strings.HasPrefix(tc.id, e.FullID()) {
			t.Errorf("Unregister(%q) = %v, %v", tc.id, e, err)
		}
	}
	if r.Len() != 0 || len(r.Workspaces()) != 0 {
		t.Errorf("registry not empty: %d %v", r.Len(), r.Workspaces())
	}
}

func TestClientBookkeeping(t *testing.T) {
	r := New()
	mustRegister(t, r, svc("ws/c1:built-in", "type", "built-in", "config", cfg("visibility", "public")))
	mustRegister(t, r, svc("ws/c2:built-in", "type", "built-in", "config", cfg("visibility", "public")))
	mustRegister(t, r, svc("ws/c1:a"))
	mustRegister(t, r, svc("ws/c1:b"))
	mustRegister(t, r, svc("ws/c2:a"))
	mustRegister(t, r, svc("other/c1:a"))

	if got := r.ClientsOf("ws"); !cmp.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("ClientsOf = %v", got)
	}
	if got := r.ClientsOf("nope"); len(got) != 0 {
		t.Errorf("ClientsOf(nope) = %v", got)
	}
	if got := r.Workspaces(); !cmp.Equal(got, []string{"other", "ws"}) {
		t.Errorf("Workspaces = %v", got)
	}
	counts := map[string]int{"c1": 2, "c2": 1, "c3": 0}
	for c, want := range counts {
		if got := r.Count("ws", c); got != want {
			t.Errorf("Count(ws, %s) = %d, want %d", c, got, want)
		}
	}
	if !r.HasService("ws", "c1", "built-in") || r.HasService("ws", "c3", "built-in") || r.HasService("ws", "c1", "zzz") {
		t.Error("HasService")
	}

	removed := r.RemoveClient("ws", "c1")
	if diff := cmp.Diff([]string{"ws/c1:built-in", "ws/c1:a", "ws/c1:b"}, ids(removed)); diff != "" {
		t.Errorf("RemoveClient (-want +got):\n%s", diff)
	}
	if r.HasService("ws", "c1", "built-in") || !r.HasService("other", "c1", "a") || !r.HasService("ws", "c2", "a") {
		t.Error("RemoveClient removed the wrong services")
	}
	if got := r.ClientsOf("ws"); !cmp.Equal(got, []string{"c2"}) {
		t.Errorf("ClientsOf after removal = %v", got)
	}
	if got := r.RemoveClient("ws", "c1"); len(got) != 0 {
		t.Errorf("second RemoveClient = %v", ids(got))
	}
	r.RemoveClient("ws", "c2")
	if got := r.Workspaces(); !cmp.Equal(got, []string{"other"}) {
		t.Errorf("Workspaces = %v", got)
	}
}

func TestParseServiceID(t *testing.T) {
	tests := []struct {
		query, callerWS string
		want            ServiceQuery
		wantErr         bool
	}{
		{query: "svc", callerWS: "ws", want: ServiceQuery{Workspace: "ws", ClientID: "*", Name: "svc", AppID: "*"}},
		{query: "svc@app", callerWS: "ws", want: ServiceQuery{Workspace: "ws", ClientID: "*", Name: "svc", AppID: "app"}},
		{query: "other/svc", callerWS: "ws", want: ServiceQuery{Workspace: "other", ClientID: "*", Name: "svc", AppID: "*"}},
		{query: "other/svc@app", callerWS: "ws", want: ServiceQuery{Workspace: "other", ClientID: "*", Name: "svc", AppID: "app"}},
		{query: "cl:svc", callerWS: "ws", want: ServiceQuery{Workspace: "ws", ClientID: "cl", Name: "svc", AppID: "*"}},
		{query: "other/cl:svc", callerWS: "ws", want: ServiceQuery{Workspace: "other", ClientID: "cl", Name: "svc", AppID: "*"}},
		{query: "other/cl:svc@a1", callerWS: "ws", want: ServiceQuery{Workspace: "other", ClientID: "cl", Name: "svc", AppID: "a1"}},
		{query: "other/*:svc", callerWS: "ws", want: ServiceQuery{Workspace: "other", ClientID: "*", Name: "svc", AppID: "*"}},
		{query: "ws-user-github|1/cl:svc", callerWS: "ws", want: ServiceQuery{Workspace: "ws-user-github|1", ClientID: "cl", Name: "svc", AppID: "*"}},
		{query: "~", callerWS: "ws", want: ServiceQuery{Workspace: "ws", Manager: true}},
		{query: "other/~", callerWS: "ws", want: ServiceQuery{Workspace: "other", Manager: true}},
		{query: "~", callerWS: "", wantErr: true},
		{query: "/~", callerWS: "ws", wantErr: true},
		{query: "", callerWS: "ws", wantErr: true},
		{query: "svc", callerWS: "", wantErr: true},
		{query: "a/b/c", callerWS: "ws", wantErr: true},
		{query: "a:b:c", callerWS: "ws", wantErr: true},
		{query: "a@b@c", callerWS: "ws", wantErr: true},
		{query: "*/svc", callerWS: "ws", wantErr: true},
		{query: "*/cl:svc", callerWS: "ws", wantErr: true},
		{query: "cl:ws/svc", callerWS: "ws", wantErr: true},
		{query: "ws/", callerWS: "ws", wantErr: true},
		{query: "/svc", callerWS: "ws", wantErr: true},
		{query: "ws/cl:", callerWS: "ws", wantErr: true},
		{query: "ws/:svc", callerWS: "ws", wantErr: true},
		{query: "svc@", callerWS: "ws", wantErr: true},
		{query: "a@b/c", callerWS: "ws", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			got, err := ParseServiceID(tc.query, tc.callerWS)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidQuery) {
					t.Fatalf("ParseServiceID(%q) = %+v, %v; want ErrInvalidQuery", tc.query, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if s := (ServiceQuery{Workspace: "w", ClientID: "*", Name: "s", AppID: "*"}).String(); s != "w/*:s@*" {
		t.Errorf("String = %q", s)
	}
}

// fixture registers a set of services in three workspaces, in this order.
func fixture(t *testing.T) *Registry {
	t.Helper()
	r := New()
	pub := cfg("visibility", "public")
	for _, info := range []map[string]any{
		svc("ws-a/c1:built-in", "type", "built-in", "config", pub),
		svc("ws-a/c1:pub-a", "config", pub),
		svc("ws-a/c1:prot-a"),
		svc("ws-a/c2:unl-a", "config", cfg("visibility", "unlisted")),
		svc("ws-a/c2:echo", "type", "echo-type", "app_id", "app1"),
		svc("ws-b/c3:built-in", "type", "built-in", "config", pub),
		svc("ws-b/c3:pub-b", "config", pub),
		svc("ws-b/c3:prot-b"),
		svc("ws-b/c3:auth-b", "config", cfg("authorized_workspaces", []any{"ws-a", "ws-z"})),
		svc("ws-b/c3:unl-b", "config", cfg("visibility", "unlisted")),
		svc("public/srv:hypha-login", "config", pub),
		svc("public/srv:prot-pub"),
	} {
		mustRegister(t, r, info)
	}
	return r
}

func perms(m map[string]auth.Permission) func(string) auth.Permission {
	return func(ws string) auth.Permission { return m[ws] }
}

var (
	memberA = perms(map[string]auth.Permission{"ws-a": auth.ReadWrite})
	adminB  = perms(map[string]auth.Permission{"ws-b": auth.Admin})
	readerB = perms(map[string]auth.Permission{"ws-a": auth.Admin, "ws-b": auth.Read})
	nobody  = perms(nil)
	root    = auth.RootUser().Permission
)

func TestFind(t *testing.T) {
	r := fixture(t)
	tests := []struct {
		q    ServiceQuery
		want []string
	}{
		{ServiceQuery{Workspace: "ws-a", ClientID: "*", Name: "echo", AppID: "*"}, []string{"ws-a/c2:echo"}},
		{ServiceQuery{Workspace: "ws-a", ClientID: "c2", Name: "echo", AppID: "*"}, []string{"ws-a/c2:echo"}},
		{ServiceQuery{Workspace: "ws-a", ClientID: "c2", Name: "echo", AppID: "app1"}, []string{"ws-a/c2:echo"}},
		{ServiceQuery{Workspace: "ws-a", ClientID: "c2", Name: "echo"}, []string{"ws-a/c2:echo"}},
		{ServiceQuery{Workspace: "ws-a", ClientID: "c2", Name: "echo", AppID: "app2"}, []string{}},
		{ServiceQuery{Workspace: "ws-a", ClientID: "*", Name: "echo", AppID: "app2"}, []string{}},
		{ServiceQuery{Workspace: "ws-a", ClientID: "c1", Name: "echo", AppID: "*"}, []string{}},
		{ServiceQuery{Workspace: "ws-b", ClientID: "*", Name: "echo", AppID: "*"}, []string{}},
		{ServiceQuery{Workspace: "*", ClientID: "*", Name: "built-in", AppID: "*"}, []string{"ws-a/c1:built-in", "ws-b/c3:built-in"}},
		{ServiceQuery{Workspace: "ws-a", ClientID: "c1", Name: "*", AppID: "*"}, []string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-a/c1:prot-a"}},
		{ServiceQuery{Workspace: "nope", ClientID: "*", Name: "*", AppID: "*"}, []string{}},
		{ServiceQuery{Workspace: "ws-a", Manager: true}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.q.String(), func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ids(r.Find(tc.q))); diff != "" {
				t.Errorf("Find mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// Multiple providers of the same name come back in registration order.
	mustRegister(t, r, svc("ws-a/c9:echo", "config", cfg("visibility", "public")))
	q, err := ParseServiceID("echo", "ws-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ws-a/c2:echo", "ws-a/c9:echo"}, ids(r.Find(q))); diff != "" {
		t.Error(diff)
	}
}

func TestCanGet(t *testing.T) {
	r := fixture(t)
	tests := []struct {
		id       string
		callerWS string
		perm     func(string) auth.Permission
		want     bool
	}{
		{"ws-b/c3:pub-b", "ws-a", memberA, true},
		{"ws-b/c3:pub-b", "anon", nobody, true},
		{"ws-b/c3:pub-b", "", nil, true},
		{"ws-b/c3:unl-b", "ws-a", memberA, true},
		{"ws-b/c3:unl-b", "anon", nobody, true},
		{"ws-b/c3:built-in", "anon", nobody, true},
		{"ws-b/c3:prot-b", "ws-a", memberA, false},
		{"ws-b/c3:prot-b", "anon", nobody, false},
		{"ws-b/c3:prot-b", "ws-a", nil, false},
		{"ws-b/c3:prot-b", "ws-b", adminB, true},
		{"ws-b/c3:prot-b", "ws-a", readerB, true},
		{"ws-b/c3:prot-b", "somewhere", root, true},
		{"ws-b/c3:auth-b", "ws-a", memberA, true},
		{"ws-b/c3:auth-b", "ws-z", nobody, true},
		{"ws-b/c3:auth-b", "ws-c", nobody, false},
		{"ws-b/c3:auth-b", "", nobody, false},
		{"ws-a/c1:prot-a", "ws-a", memberA, true},
		{"ws-a/c1:prot-a", "ws-a", nobody, false},
		{"public/srv:prot-pub", "ws-a", memberA, false},
		{"public/srv:hypha-login", "ws-a", nobody, true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s from %s", tc.id, tc.callerWS), func(t *testing.T) {
			e, ok := r.Get(tc.id)
			if !ok {
				t.Fatalf("missing %s", tc.id)
			}
			if got := CanGet(e, tc.callerWS, tc.perm); got != tc.want {
				t.Errorf("CanGet = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestViewFor(t *testing.T) {
	r := fixture(t)
	e, _ := r.Get("ws-b/c3:auth-b")

	// Members see the list.
	if v := ViewFor(e, "ws-b", adminB); v != e {
		t.Error("member got a copy")
	}
	// Authorized outsiders do not.
	v := ViewFor(e, "ws-a", memberA)
	if v == e || v.AuthorizedWorkspaces != nil {
		t.Fatalf("outsider view = %+v", v)
	}
	if _, has := v.Config()["authorized_workspaces"]; has {
		t.Error("authorized_workspaces still in config")
	}
	if v.FullID() != e.FullID() || v.Config()["visibility"] != "protected" {
		t.Error("view lost fields")
	}
	// The registry's entry is untouched.
	if _, has := e.Config()["authorized_workspaces"]; !has || len(e.AuthorizedWorkspaces) != 2 {
		t.Error("ViewFor modified the stored entry")
	}
	// Services without the list are returned as is.
	p, _ := r.Get("ws-b/c3:pub-b")
	if ViewFor(p, "ws-a", memberA) != p {
		t.Error("public service copied")
	}
}

func TestParseListQuery(t *testing.T) {
	all := func(ws string) ListQuery {
		return ListQuery{Visibility: "*", Workspace: ws, ClientID: "*", ServiceID: "*", Type: "*", AppID: "*"}
	}
	mod := func(q ListQuery, f func(*ListQuery)) ListQuery { f(&q); return q }
	tests := []struct {
		name    string
		raw     any
		want    ListQuery
		wantErr bool
	}{
		{name: "nil", raw: nil, want: all("me")},
		{name: "empty string", raw: "", want: all("me")},
		{name: "workspace", raw: "ws-b", want: all("ws-b")},
		{name: "star", raw: "*", want: all("*")},
		{name: "ws/svc", raw: "ws-b/echo", want: mod(all("ws-b"), func(q *ListQuery) { q.ServiceID = "echo" })},
		{name: "ws/svc@app", raw: "ws-b/echo@a1", want: mod(all("ws-b"), func(q *ListQuery) { q.ServiceID, q.AppID = "echo", "a1" })},
		{name: "client:svc", raw: "c1:echo", want: mod(all("me"), func(q *ListQuery) { q.ClientID, q.ServiceID = "c1", "echo" })},
		{name: "ws/client:svc", raw: "ws-b/c1:echo", want: mod(all("ws-b"), func(q *ListQuery) { q.ClientID, q.ServiceID = "c1", "echo" })},
		{name: "*/client:svc", raw: "*/c1:echo", want: mod(all("*"), func(q *ListQuery) { q.ClientID, q.ServiceID = "c1", "echo" })},
		{name: "ws/", raw: "ws-b/", want: all("ws-b")},
		{name: "empty map", raw: map[string]any{}, want: all("me")},
		{name: "map full", raw: map[string]any{"visibility": "public", "workspace": "w", "client_id": "c*", "service_id": "s", "type": "t", "app_id": "a"},
			want: ListQuery{Visibility: "public", Workspace: "w", ClientID: "c*", ServiceID: "s", Type: "t", AppID: "a"}},
		{name: "map id alias", raw: map[string]any{"id": "s"}, want: mod(all("me"), func(q *ListQuery) { q.ServiceID = "s" })},
		{name: "map nil values", raw: map[string]any{"workspace": nil, "type": nil}, want: all("me")},
		{name: "map service@app", raw: map[string]any{"service_id": "s@a"}, want: mod(all("me"), func(q *ListQuery) { q.ServiceID, q.AppID = "s", "a" })},
		{name: "map service@app agreeing", raw: map[string]any{"service_id": "s@a", "app_id": "a"}, want: mod(all("me"), func(q *ListQuery) { q.ServiceID, q.AppID = "s", "a" })},
		{name: "map service@app mismatch", raw: map[string]any{"service_id": "s@a", "app_id": "b"}, wantErr: true},
		{name: "map both ids", raw: map[string]any{"id": "s", "service_id": "s"}, wantErr: true},
		{name: "map unknown key", raw: map[string]any{"name": "s"}, wantErr: true},
		{name: "map non-string", raw: map[string]any{"workspace": int64(1)}, wantErr: true},
		{name: "wrong type", raw: int64(3), wantErr: true},
		{name: "two slashes", raw: "a/b/c", wantErr: true},
		{name: "colon before slash", raw: "a:b/c", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseListQuery(tc.raw, "me")
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidQuery) {
					t.Fatalf("got %+v, %v; want ErrInvalidQuery", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestList(t *testing.T) {
	r := fixture(t)
	tests := []struct {
		name      string
		raw       any
		callerWS  string
		perm      func(string) auth.Permission
		unlisted  bool
		want      []string
		wantErr   error
		redacted  []string // entries returned without authorized_workspaces
		keepsAuth []string // entries returned with authorized_workspaces
	}{
		{name: "own workspace", raw: nil, callerWS: "ws-a", perm: memberA,
			want: []string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-a/c1:prot-a", "ws-a/c2:echo"}},
		{name: "own workspace with unlisted", raw: nil, callerWS: "ws-a", perm: memberA, unlisted: true,
			want: []string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-a/c1:prot-a", "ws-a/c2:unl-a", "ws-a/c2:echo"}},
		{name: "unlisted without permission", raw: nil, callerWS: "ws-a", perm: nobody, unlisted: true, wantErr: ErrPermission},
		{name: "own workspace without permission", raw: nil, callerWS: "ws-a", perm: nobody,
			want: []string{"ws-a/c1:built-in", "ws-a/c1:pub-a"}},
		{name: "other workspace", raw: "ws-b", callerWS: "ws-a", perm: memberA,
			want: []string{"ws-b/c3:built-in", "ws-b/c3:pub-b", "ws-b/c3:auth-b"}, redacted: []string{"ws-b/c3:auth-b"}},
		{name: "other workspace, not authorized", raw: "ws-b", callerWS: "ws-c", perm: nobody,
			want: []string{"ws-b/c3:built-in", "ws-b/c3:pub-b"}},
		{name: "other workspace with unlisted", raw: "ws-b", callerWS: "ws-a", perm: memberA, unlisted: true, wantErr: ErrPermission},
		{name: "public workspace with unlisted is allowed", raw: "public", callerWS: "ws-a", perm: memberA, unlisted: true,
			want: []string{"public/srv:hypha-login"}},
		{name: "other workspace as reader", raw: "ws-b", callerWS: "ws-a", perm: readerB,
			want: []string{"ws-b/c3:built-in", "ws-b/c3:pub-b", "ws-b/c3:prot-b", "ws-b/c3:auth-b"}, keepsAuth: []string{"ws-b/c3:auth-b"}},
		{name: "reader does not see unlisted elsewhere", raw: map[string]any{"workspace": "ws-b", "visibility": "unlisted"}, callerWS: "ws-a", perm: readerB,
			want: []string{}},
		{name: "unlisted visibility without permission falls back to public", raw: map[string]any{"workspace": "ws-b", "visibility": "unlisted"}, callerWS: "ws-a", perm: memberA,
			want: []string{"ws-b/c3:built-in", "ws-b/c3:pub-b"}},
		{name: "admin of ws-b with unlisted", raw: nil, callerWS: "ws-b", perm: adminB, unlisted: true,
			want: []string{"ws-b/c3:built-in", "ws-b/c3:pub-b", "ws-b/c3:prot-b", "ws-b/c3:auth-b", "ws-b/c3:unl-b"}, keepsAuth: []string{"ws-b/c3:auth-b"}},
		{name: "all workspaces", raw: "*", callerWS: "ws-a", perm: memberA,
			want: []string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-a/c1:prot-a", "ws-a/c2:echo", "ws-b/c3:built-in", "ws-b/c3:pub-b", "public/srv:hypha-login"}},
		{name: "all workspaces, anonymous", raw: "*", callerWS: "ws-user-anon", perm: nobody,
			want: []string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-b/c3:built-in", "ws-b/c3:pub-b", "public/srv:hypha-login"}},
		{name: "all workspaces by service", raw: "*/pub-b", callerWS: "ws-a", perm: memberA, want: []string{"ws-b/c3:pub-b"}},
		{name: "all workspaces with unlisted", raw: "*", callerWS: "ws-a", perm: memberA, unlisted: true, wantErr: ErrPermission},
		{name: "all workspaces protected", raw: map[string]any{"workspace": "*", "visibility": "protected"}, callerWS: "ws-a", perm: memberA, wantErr: ErrInvalidQuery},
		{name: "all workspaces unlisted", raw: map[string]any{"workspace": "*", "visibility": "unlisted"}, callerWS: "ws-a", perm: memberA, wantErr: ErrInvalidQuery},
		{name: "all workspaces public only", raw: map[string]any{"workspace": "*", "visibility": "public"}, callerWS: "ws-a", perm: memberA,
			want: []string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-b/c3:built-in", "ws-b/c3:pub-b", "public/srv:hypha-login"}},
		{name: "built-in type only", raw: map[string]any{"type": "built-in"}, callerWS: "ws-a", perm: memberA, want: []string{"ws-a/c1:built-in"}},
		{name: "built-in everywhere", raw: map[string]any{"workspace": "*", "type": "built-in"}, callerWS: "ws-a", perm: memberA,
			want: []string{"ws-a/c1:built-in", "ws-b/c3:built-in"}},
		{name: "type glob", raw: map[string]any{"type": "echo-*"}, callerWS: "ws-a", perm: memberA, want: []string{"ws-a/c2:echo"}},
		{name: "visibility filter", raw: map[string]any{"visibility": "protected"}, callerWS: "ws-a", perm: memberA,
			want: []string{"ws-a/c1:prot-a", "ws-a/c2:echo"}},
		{name: "visibility filter applies with include_unlisted", raw: map[string]any{"visibility": "public"}, callerWS: "ws-a", perm: memberA, unlisted: true,
			want: []string{"ws-a/c1:built-in", "ws-a/c1:pub-a"}},
		{name: "client and service", raw: "c2:echo", callerWS: "ws-a", perm: memberA, want: []string{"ws-a/c2:echo"}},
		{name: "client glob", raw: map[string]any{"client_id": "c*", "service_id": "*-a"}, callerWS: "ws-a", perm: memberA,
			want: []string{"ws-a/c1:pub-a", "ws-a/c1:prot-a"}},
		{name: "app filter", raw: "ws-a/c2:echo@app1", callerWS: "ws-b", perm: readerB, want: []string{"ws-a/c2:echo"}},
		{name: "app filter mismatch", raw: "ws-a/c2:echo@app2", callerWS: "ws-b", perm: readerB, want: []string{}},
		{name: "app_id key", raw: map[string]any{"app_id": "app*"}, callerWS: "ws-a", perm: memberA, want: []string{"ws-a/c2:echo"}},
		{name: "workspace glob", raw: map[string]any{"workspace": "ws-*"}, callerWS: "ws-a", perm: memberA,
			want:     []string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-a/c1:prot-a", "ws-a/c2:echo", "ws-b/c3:built-in", "ws-b/c3:pub-b", "ws-b/c3:auth-b"},
			redacted: []string{"ws-b/c3:auth-b"}},
		{name: "workspace glob with unlisted", raw: map[string]any{"workspace": "ws-*"}, callerWS: "ws-a", perm: memberA, unlisted: true, wantErr: ErrPermission},
		{name: "public workspace", raw: "public", callerWS: "ws-a", perm: memberA, want: []string{"public/srv:hypha-login"}},
		{name: "root sees all protected", raw: "public", callerWS: "ws-user-root", perm: root, want: []string{"public/srv:hypha-login", "public/srv:prot-pub"}},
		{name: "nil permission func", raw: "ws-b", callerWS: "ws-a", perm: nil, want: []string{"ws-b/c3:built-in", "ws-b/c3:pub-b", "ws-b/c3:auth-b"}},
		{name: "unknown workspace", raw: "nope", callerWS: "ws-a", perm: memberA, want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseListQuery(tc.raw, tc.callerWS)
			if err != nil {
				t.Fatalf("ParseListQuery: %v", err)
			}
			got, err := r.List(q, tc.callerWS, tc.perm, tc.unlisted)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("List = %v, %v; want %v", ids(got), err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("List mismatch (-want +got):\n%s", diff)
			}
			byID := map[string]*Entry{}
			for _, e := range got {
				byID[e.FullID()] = e
			}
			for _, id := range tc.redacted {
				if _, has := byID[id].Config()["authorized_workspaces"]; has {
					t.Errorf("%s: authorized_workspaces not removed", id)
				}
			}
			for _, id := range tc.keepsAuth {
				if _, has := byID[id].Config()["authorized_workspaces"]; !has {
					t.Errorf("%s: authorized_workspaces removed for a member", id)
				}
			}
		})
	}
	// The zero ListQuery means "everything in the caller's workspace".
	got, err := r.List(ListQuery{}, "ws-a", memberA, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ws-a/c1:built-in", "ws-a/c1:pub-a", "ws-a/c1:prot-a", "ws-a/c2:echo"}, ids(got)); diff != "" {
		t.Error(diff)
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything/at:all", true},
		{"", "", true},
		{"", "x", false},
		{"abc", "abc", true},
		{"abc", "abcd", false},
		{"a*", "a", true},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*c", "abc", true},
		{"*c", "ab", false},
		{"a*c", "ac", true},
		{"a*c", "abbbc", true},
		{"a*c", "abcd", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"ab*ba", "aba", false},
		{"**", "x", true},
		{"a?c", "abc", false}, // '?' is literal
		{"a?c", "a?c", true},
		{"[ab]", "a", false}, // '[' is literal
		{"ws-user-github|1", "ws-user-github|1", true},
	}
	for _, tc := range tests {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestConcurrentAccess(t *testing.T) {
	r := New()
	const workers = 8
	const perWorker = 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := fmt.Sprintf("ws-%d", w%2)
			cid := fmt.Sprintf("c%d", w)
			if _, err := r.Register(svc(ws+"/"+cid+":built-in", "type", "built-in", "config", cfg("visibility", "public"))); err != nil {
				t.Error(err)
				return
			}
			for i := range perWorker {
				id := fmt.Sprintf("%s/%s:s%d", ws, cid, i%10)
				if _, err := r.Register(svc(id, "config", cfg("visibility", []string{"public", "protected", "unlisted"}[i%3]))); err != nil {
					t.Error(err)
					return
				}
				r.Find(ServiceQuery{Workspace: ws, ClientID: "*", Name: "s1", AppID: "*"})
				if _, err := r.List(ListQuery{Workspace: "*"}, ws, memberA, false); err != nil {
					t.Error(err)
					return
				}
				r.Count(ws, cid)
				r.ClientsOf(ws)
				if i%7 == 0 {
					r.Unregister(id)
				}
			}
			r.RemoveClient(ws, cid)
		}()
	}
	wg.Wait()
	if r.Len() != 0 {
		t.Errorf("Len = %d after all clients removed", r.Len())
	}
}
