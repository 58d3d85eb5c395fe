package server_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

// revokeSetup is a server with workspace team-r, an app file and a service
// in it, and an admin token T for team-r minted by root.
type revokeSetup struct {
	s       *server.Server
	dir     string
	tok     string // T
	svcURL  string // GET .../services/<svc>/hello
	fileURL string
}

func newRevokeSetup(t *testing.T) *revokeSetup {
	t.Helper()
	ctx := testserver.Ctx(t)
	dir := t.TempDir()
	s1 := startOn(t, dir, server.Config{})
	r0 := testserver.ConnectRaw(t, s1, map[string]any{"client_id": "root-0", "token": testserver.RootToken})
	if _, err := r0.CallManager(ctx, "create_workspace", map[string]any{"id": "team-r"}); err != nil {
		t.Fatal(err)
	}
	restart(s1, r0)
	writeApp(t, dir, "team-r", "app", "main.py", "data = 'team-r'\n")
	s := startOn(t, dir, server.Config{})
	rs := &revokeSetup{s: s, dir: dir}
	root := testserver.Connect(t, s, rpc.Config{Token: rootJWT(t, s), Workspace: "team-r", ClientID: "root-svc", NoReconnect: true})
	testserver.MustRegister(t, root, rpc.Service{ID: "svc", Config: rpc.ServiceConfig{Visibility: "protected"},
		Functions: map[string]any{"hello": func() string { return "hi" }}})
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Permission: "admin", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rs.tok = tok
	rs.svcURL = testserver.ServiceURL(s, "team-r", "root-svc:svc/hello", nil)
	rs.fileURL = fileURL(s, "team-r", "app", "main.py")
	return rs
}

// works asserts that tok reaches team-r on every path.
func (rs *revokeSetup) works(t *testing.T, tok string) {
	t.Helper()
	if reply := hello(t, rs.s, map[string]any{"client_id": "probe-" + fmt.Sprint(time.Now().UnixNano()), "token": tok, "workspace": "team-r"}); reply["type"] != "connection_info" {
		t.Fatalf("the token does not connect: %v", reply)
	}
	if code, body := httpDo(t, rs.svcURL, tok, true); code != http.StatusOK || body != `"hi"` {
		t.Fatalf("HTTP service call: %d %s", code, body)
	}
	for _, bearer := range []bool{false, true} {
		if code, body := httpDo(t, rs.fileURL, tok, bearer); code != http.StatusOK {
			t.Fatalf("HTTP app file (bearer %v): %d %s", bearer, code, body)
		}
	}
}

// refused asserts that tok is refused on every path with a message naming
// why.
func refusedEverywhere(t *testing.T, s *server.Server, tok, why, svcURL, fileURL string) {
	t.Helper()
	wantRefused(t, hello(t, s, map[string]any{"client_id": "probe-x", "token": tok, "workspace": "team-r"}), why)
	if svcURL != "" {
		if code, body := httpDo(t, svcURL, tok, true); code != http.StatusUnauthorized || !strings.Contains(body, why) {
			t.Fatalf("HTTP service call: %d %s, want 401 %q", code, body, why)
		}
	}
	for _, bearer := range []bool{false, true} {
		if code, body := httpDo(t, fileURL, tok, bearer); code != http.StatusUnauthorized || !strings.Contains(body, why) {
			t.Fatalf("HTTP app file (bearer %v): %d %s, want 401 %q", bearer, code, body, why)
		}
	}
}

// A revoked token, the tokens derived from it and the reconnection tokens
// of its connections are refused on every path, also after a restart; its
// live connections are closed; only those entitled may revoke it.
func TestHostileRevokedToken(t *testing.T) {
	rs := newRevokeSetup(t)
	s := rs.s
	ctx := testserver.Ctx(t)
	rs.works(t, rs.tok)

	// A live connection with T, its reconnection token, and a token it derives.
	live := testserver.ConnectRaw(t, s, map[string]any{"client_id": "live", "token": rs.tok, "workspace": "team-r"})
	reconn, _ := live.Info["reconnection_token"].(string)
	if reconn == "" {
		t.Fatalf("no reconnection token in %v", live.Info)
	}
	derived, err := live.CallManager(ctx, "generate_token", map[string]any{"permission": "read"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := testserver.Connect(t, s, rpc.Config{Token: rootJWT(t, s), Workspace: "team-r", ClientID: "root-2", NoReconnect: true}).
		GenerateToken(ctx, rpc.TokenConfig{Permission: "read", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	// Those not entitled cannot revoke it: a stranger (admin of its own
	// workspace only), a reader of team-r, an anonymous user.
	cases := []struct {
		name  string
		hello map[string]any
		want  string
	}{
		{"stranger", map[string]any{"client_id": "m", "token": loginToken(t, s, "mallory")}, "permission denied: only root, the user who generated the token, or an admin of workspace team-r"},
		{"reader", map[string]any{"client_id": "rd", "token": other, "workspace": "team-r"}, "permission denied"},
		{"anonymous", map[string]any{"client_id": "anon"}, "anonymous users cannot revoke tokens"},
	}
	var raws []*testserver.Raw
	for _, tc := range cases {
		r := testserver.ConnectRaw(t, s, tc.hello)
		raws = append(raws, r)
		if _, err := r.CallManager(ctx, "revoke_token", rs.tok); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s revoking T: %v, want %q", tc.name, err, tc.want)
		}
	}
	rs.works(t, rs.tok) // nothing happened

	root := testserver.ConnectRaw(t, s, map[string]any{"client_id": "root-3", "token": testserver.RootToken})
	if _, err := root.CallManager(ctx, "revoke_token", rs.tok); err != nil {
		t.Fatal(err)
	}
	if cl, err := live.WaitClose(10 * time.Second); err != nil || !strings.Contains(cl.Reason, "Token revoked") {
		t.Fatalf("the live connection of the revoked token: %+v, %v", cl, err)
	}
	refusedEverywhere(t, s, rs.tok, "the token has been revoked", rs.svcURL, rs.fileURL)
	refusedEverywhere(t, s, derived.(string), "derived from a revoked token", rs.svcURL, rs.fileURL)
	wantRefused(t, hello(t, s, map[string]any{"client_id": "live", "reconnection_token": reconn}), "revoked")
	if _, err := root.CallManager(ctx, "parse_token", rs.tok); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("parse_token of a revoked token: %v", err)
	}
	rs.works(t, other) // an unrelated token of the same workspace still works

	// After a restart the revocation holds.
	restart(s, append(raws, root)...)
	wantMode(t, filepath.Join(rs.dir, "tokens"), 0o700)
	wantMode(t, filepath.Join(rs.dir, "tokens", "revoked.jsonl"), 0o600)
	s2 := startOn(t, rs.dir, server.Config{})
	f2 := fileURL(s2, "team-r", "app", "main.py")
	svc2 := testserver.ServiceURL(s2, "team-r", "root-svc:svc/hello", nil)
	refusedEverywhere(t, s2, rs.tok, "the token has been revoked", svc2, f2)
	refusedEverywhere(t, s2, derived.(string), "derived from a revoked token", svc2, f2)
	wantRefused(t, hello(t, s2, map[string]any{"client_id": "live", "reconnection_token": reconn}), "revoked")
	if code, _ := httpDo(t, f2, other, false); code != http.StatusOK {
		t.Fatalf("an unrelated token after the restart: %d", code)
	}
}

// An expired token is refused on every path, reconnection tokens included.
func TestHostileExpiredToken(t *testing.T) {
	rs := newRevokeSetup(t)
	ctx := testserver.Ctx(t)
	// Minted two hours ago for one hour, with the server's secret.
	past := auth.NewIssuer(persistSecret, "")
	past.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	u := &auth.UserInfo{ID: "old-user", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "team-r",
		Workspaces: map[string]auth.Permission{"team-r": auth.ReadWrite}}}
	expired, err := past.Generate(u, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	refusedEverywhere(t, rs.s, expired, "the token has expired", rs.svcURL, rs.fileURL)
	u.Scope.ClientID = "old-client"
	reconn, err := past.Generate(u, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, hello(t, rs.s, map[string]any{"client_id": "old-client", "reconnection_token": reconn}), "the token has expired")
	root := testserver.ConnectRaw(t, rs.s, map[string]any{"client_id": "root-e", "token": testserver.RootToken})
	if _, err := root.CallManager(ctx, "parse_token", expired); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("parse_token of an expired token: %v", err)
	}
	if _, err := root.CallManager(ctx, "revoke_token", expired); err == nil || !strings.Contains(err.Error(), "already expired") {
		t.Fatalf("revoke_token of an expired token: %v", err)
	}
}

// generate_token refuses lifetimes over the cap and values that are not a
// positive finite number of seconds, naming what is wrong; nothing is minted.
func TestHostileTokenLifetime(t *testing.T) {
	s := testserver.Start(t, server.Config{MaxTokenLifetime: time.Hour})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "life-root")
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"centuries", 9e9, "expires_in 9000000000 s is over the maximum token lifetime of 3600 s (1h0m0s; --max-token-lifetime / HYPHA_MAX_TOKEN_LIFETIME)"},
		{"just over", int64(3601), "over the maximum token lifetime of 3600 s"},
		{"negative", int64(-5), "expires_in must be a positive number of seconds"},
		{"negative float", -0.5, "expires_in must be a positive number of seconds"},
		{"NaN", nanValue(), "expires_in must be a finite number of seconds"},
		{"inf", infValue(), "expires_in must be a finite number of seconds"},
		{"string", "3600", "expires_in must be a number of seconds, got string"},
		{"bool", true, "expires_in must be a number of seconds, got bool"},
		{"list", []any{int64(1)}, "expires_in must be a number of seconds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := root.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": tc.v})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("expires_in %v: %v, %v; want an error containing %q", tc.v, v, err, tc.want)
			}
			if v != nil {
				t.Fatalf("a token was returned: %v", v)
			}
		})
	}
	// At the cap it works, and the token expires within the cap.
	tok, err := root.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": int64(3600)})
	if err != nil {
		t.Fatal(err)
	}
	info, err := root.Manager().Call(ctx, "parse_token", tok)
	if err != nil {
		t.Fatal(err)
	}
	if exp, _ := info.(map[string]any)["expires_at"].(int64); exp == 0 || exp > time.Now().Add(time.Hour+time.Minute).Unix() {
		t.Fatalf("expires_at %v", info.(map[string]any)["expires_at"])
	}
	// The default cap is 30 days.
	s2 := testserver.Start(t, server.Config{})
	r2 := testserver.RootClient(t, s2, "life-root-2")
	if _, err := r2.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": int64(30*24*3600 + 1)}); err == nil || !strings.Contains(err.Error(), "maximum token lifetime of 2592000 s") {
		t.Fatalf("default cap: %v", err)
	}
	if _, err := r2.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": int64(30 * 24 * 3600)}); err != nil {
		t.Fatal(err)
	}
}

// Tokens derived from tokens derived from … are bounded, so the chain a
// token carries stays short.
func TestHostileTokenChainDepth(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	tok := loginToken(t, s, "deep")
	var err error
	for i := 0; ; i++ {
		r := testserver.ConnectRaw(t, s, map[string]any{"client_id": fmt.Sprintf("deep-%d", i), "token": tok})
		var v any
		v, err = r.CallManager(ctx, "generate_token", map[string]any{"permission": "admin"})
		if err != nil {
			if i != auth.MaxChain-1 {
				t.Fatalf("derivation %d refused: %v", i, err)
			}
			break
		}
		tok = v.(string)
		if i > auth.MaxChain {
			t.Fatal("derivation never refused")
		}
	}
	if !strings.Contains(err.Error(), "tokens may be derived at most 8 levels deep") {
		t.Fatalf("refusal: %v", err)
	}
	if len(tok) > 2000 {
		t.Fatalf("the deepest token is %d bytes", len(tok))
	}
}

func nanValue() float64 { z := 0.0; return z / z }
func infValue() float64 { z := 0.0; return 1 / z }
