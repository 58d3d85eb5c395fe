package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

// jsLogin runs interop/js/login.mjs (the npm client's login()) and returns
// its RESULT.
func jsLogin(t *testing.T, url string, args map[string]any) map[string]any {
	t.Helper()
	node, dir := needJS(t)
	return startProc(t, "js login", jsTimeout, false, dir, node, "login.mjs", url, mustJSON(args)).mustResult()
}

// TestJSLogin: the npm hypha-rpc client's login() against the embedded
// server: with an account created by an admin (the page's password form),
// with a workspace and lifetime asked, profile returned; with a token
// reported over report_url as hypha-rpc's own test does.
func TestJSLogin(t *testing.T) {
	dir := t.TempDir()
	if err := auth.OpenUsers(auth.UsersFile(dir)).Add("dana", "danas password!", "dana@example.org", nil); err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, server.Config{DataDir: dir})

	t.Run("password", func(t *testing.T) {
		r := jsLogin(t, s.URL(), map[string]any{"username": "dana", "password": "danas password!",
			"workspace": "ws-user-dana", "expires_in": 900, "profile": true})
		if r["login_url_path"] != server.LoginPagePath {
			t.Errorf("login_url path = %v", r["login_url_path"])
		}
		p, _ := r["result"].(map[string]any)
		if p["user_id"] != "dana" || p["email"] != "dana@example.org" || p["workspace"] != "ws-user-dana" {
			t.Fatalf("profile = %v", p)
		}
		tok, _ := p["token"].(string)
		u, err := s.Issuer().Parse(tok)
		if err != nil || u.ID != "dana" || u.Scope.CurrentWorkspace != "ws-user-dana" || u.ExpiresAt > time.Now().Add(901*time.Second).Unix() {
			t.Fatalf("token: %+v, %v", u, err)
		}
	})

	t.Run("token over report_url", func(t *testing.T) {
		anon := testserver.Connect(t, s, rpc.Config{})
		tok, err := anon.GenerateToken(testserver.Ctx(t), rpc.TokenConfig{})
		if err != nil {
			t.Fatal(err)
		}
		r := jsLogin(t, s.URL(), map[string]any{"token": tok, "report_get": true})
		if r["result"] != tok {
			t.Fatalf("login() = %v, want the reported token", r["result"])
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		node, dir := needJS(t)
		_, e := startProc(t, "js login", jsTimeout, false, dir, node, "login.mjs", s.URL(),
			mustJSON(map[string]any{"username": "dana", "password": "not her password"})).finish()
		if e == "" || !strings.Contains(e, "401") || !strings.Contains(e, "invalid username or password") {
			t.Fatalf("wrong password: %q", e)
		}
	})
}
