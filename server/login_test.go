package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

// postPage posts fields to the login page's report endpoint, as the page's
// script does, and returns the status and the decoded JSON answer.
func postPage(t *testing.T, s *server.Server, fields map[string]string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(fields)
	req, err := http.NewRequestWithContext(testserver.Ctx(t), "POST", s.URL()+server.LoginPagePath+"report", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// keyOf is the key a login URL carries.
func keyOf(t *testing.T, loginURL string) string {
	t.Helper()
	u, err := url.Parse(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("key")
}

func loginConfig(s *server.Server, onURL func(context.Context, rpc.LoginInfo) error) rpc.LoginConfig {
	return rpc.LoginConfig{Connection: rpc.Config{ServerURL: s.URL()}, Timeout: 60 * time.Second, OnLoginURL: onURL}
}

// TestLoginFlowWithToken: rpc.Login starts a session; the "user" opens the
// page's endpoint and logs in with a token of this server; check returns
// that very token, which connects.
func TestLoginFlowWithToken(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "root")
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "ws-user-root", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rpc.Login(ctx, loginConfig(s, func(_ context.Context, info rpc.LoginInfo) error {
		if !strings.HasPrefix(info.LoginURL, s.URL()+server.LoginPagePath+"?key=") || keyOf(t, info.LoginURL) != info.Key {
			t.Errorf("login_url = %q, key %q", info.LoginURL, info.Key)
		}
		if info.ReportURL != s.URL()+"/public/services/hypha-login/report" {
			t.Errorf("report_url = %q", info.ReportURL)
		}
		if code, out := postPage(t, s, map[string]string{"key": info.Key, "token": tok}); code != 200 {
			t.Errorf("page report: %d %v", code, out)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Token != tok {
		t.Fatalf("check returned another token")
	}
	c := testserver.Connect(t, s, rpc.Config{Token: res.Token, Workspace: "ws-user-root"})
	if c.Info().Workspace != "ws-user-root" {
		t.Fatalf("connected to %q", c.Info().Workspace)
	}
}

// TestLoginFlowWithPassword: a user created by an admin (the account file
// in the data dir, as `hypha users add` writes it) logs in on the page with
// a password; the program gets a token of that user, scoped to the workspace
// it asked for, for the lifetime it asked for.
func TestLoginFlowWithPassword(t *testing.T) {
	dir := t.TempDir()
	if err := auth.OpenUsers(auth.UsersFile(dir)).Add("alice", "correct horse battery", "alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, server.Config{DataDir: dir})
	ctx := testserver.Ctx(t)
	cfg := loginConfig(s, func(_ context.Context, info rpc.LoginInfo) error {
		q, _ := url.Parse(info.LoginURL)
		if q.Query().Get("workspace") != "ws-user-alice" || q.Query().Get("expires_in") != "600" {
			t.Errorf("login_url lacks workspace/expires_in: %s", info.LoginURL)
		}
		// The page posts what its URL carries.
		code, out := postPage(t, s, map[string]string{"key": info.Key, "username": "alice", "password": "correct horse battery",
			"workspace": q.Query().Get("workspace"), "expires_in": q.Query().Get("expires_in")})
		if code != 200 {
			t.Errorf("page report: %d %v", code, out)
		}
		return nil
	})
	cfg.Workspace, cfg.ExpiresIn = "ws-user-alice", 10*time.Minute
	res, err := rpc.Login(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.UserID != "alice" || res.Email != "alice@example.org" || res.Workspace != "ws-user-alice" || res.ExpiresIn != 600 {
		t.Fatalf("profile = %+v", res.Raw)
	}
	u, err := s.Issuer().Parse(res.Token)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "alice" || u.Scope.CurrentWorkspace != "ws-user-alice" || u.ExpiresAt > time.Now().Add(601*time.Second).Unix() {
		t.Fatalf("token user = %+v", u)
	}
	c := testserver.Connect(t, s, rpc.Config{Token: res.Token})
	if c.Info().Workspace != "ws-user-alice" || c.Info().User.ID != "alice" {
		t.Fatalf("connected as %s in %s", c.Info().User.ID, c.Info().Workspace)
	}
}

// TestLoginUpstreamShapes: start/check/report as hypha-rpc's tests drive
// them: report over HTTP GET with key and token in the query (anonymous),
// check by the starter returns the token; check(timeout=0) answers nil
// while pending; the page is served at the login URL; logout's URL.
func TestLoginUpstreamShapes(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	anon := testserver.Connect(t, s, rpc.Config{})
	tok, err := anon.GenerateToken(ctx, rpc.TokenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := anon.GetService(ctx, "public/hypha-login")
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Call(ctx, "start")
	if err != nil {
		t.Fatal(err)
	}
	info := v.(map[string]any)
	for _, k := range []string{"login_url", "key", "report_url", "check_url", "generate_url"} {
		if _, ok := info[k].(string); !ok {
			t.Errorf("start lacks %s: %v", k, info)
		}
	}
	key := info["key"].(string)
	if got, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 0}); err != nil || got != nil {
		t.Fatalf("pending check(timeout=0) = %v, %v", got, err)
	}
	// The page at login_url.
	resp, err := http.Get(info["login_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Log in to Hypha") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'nonce-") {
		t.Fatalf("page: %d %q", resp.StatusCode, resp.Header)
	}
	// Report as hypha-rpc's test does.
	resp, err = http.Get(info["report_url"].(string) + "?key=" + key + "&token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("report over HTTP: %d %s", resp.StatusCode, body)
	}
	got, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 20})
	if err != nil || got != tok {
		t.Fatalf("check = %v, %v", got, err)
	}
	// The session is over.
	if _, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 0}); err == nil || !strings.Contains(err.Error(), "Invalid key") {
		t.Fatalf("second check: %v", err)
	}
	out, err := svc.Call(ctx, "logout", map[string]any{})
	if err != nil || !strings.HasSuffix(out.(map[string]any)["logout_url"].(string), server.LoginPagePath+"?logout=true&close=true") {
		t.Fatalf("logout = %v, %v", out, err)
	}
}

// TestLoginRootTokenIsNotHandedOut: a user who logs in with the root token
// gives the program a root JWT that expires, never the root token itself.
func TestLoginRootTokenIsNotHandedOut(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	res, err := rpc.Login(ctx, loginConfig(s, func(_ context.Context, info rpc.LoginInfo) error {
		if code, out := postPage(t, s, map[string]string{"key": info.Key, "token": testserver.RootToken}); code != 200 {
			t.Errorf("page report: %d %v", code, out)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Token == testserver.RootToken {
		t.Fatal("the root token itself was handed out")
	}
	u, err := s.Issuer().Parse(res.Token)
	if err != nil || !u.IsRoot() || u.ExpiresAt == 0 || u.ExpiresAt > time.Now().Add(time.Hour+time.Minute).Unix() {
		t.Fatalf("token = %+v, %v", u, err)
	}
}

// startLogin starts a session as c and returns its key.
func startLogin(t *testing.T, c *rpc.Client) (*rpc.RemoteService, string, error) {
	t.Helper()
	ctx := testserver.Ctx(t)
	svc, err := c.GetService(ctx, "public/hypha-login")
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Call(ctx, "start")
	if err != nil {
		return svc, "", err
	}
	return svc, v.(map[string]any)["key"].(string), nil
}

// TestHostileLogin: the attacks on the login service and its page.
func TestHostileLogin(t *testing.T) {
	dir := t.TempDir()
	if err := auth.OpenUsers(auth.UsersFile(dir)).Add("bob", "bobs real password", "", nil); err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, server.Config{DataDir: dir, Login: server.LoginConfig{
		MaxSessions: 40, MaxSessionsPerCaller: 4, MaxPasswordFailures: 3, PasswordFailureWindow: time.Hour}})
	ctx := testserver.Ctx(t)
	victim := testserver.Connect(t, s, rpc.Config{})
	attacker := testserver.Connect(t, s, rpc.Config{})

	t.Run("report with a token this server did not issue", func(t *testing.T) {
		svc, key, err := startLogin(t, victim)
		if err != nil {
			t.Fatal(err)
		}
		forged := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyb290In0.c2lnbmVkLWJ5LW1l"
		for _, tok := range []string{forged, "not-a-token", strings.Repeat("x", 5000)} {
			_, err := attacker.Manager().Call(ctx, "echo", nil) // the attacker is connected
			if err != nil {
				t.Fatal(err)
			}
			asvc, _ := attacker.GetService(ctx, "public/hypha-login")
			if _, err := asvc.Call(ctx, "report", key, tok); err == nil || !strings.Contains(err.Error(), "Invalid token") {
				t.Errorf("report(%.20q) = %v", tok, err)
			}
			if code, _ := postPage(t, s, map[string]string{"key": key, "token": tok}); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
				t.Errorf("page report(%.20q) = %d", tok, code)
			}
		}
		if got, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 0}); err != nil || got != nil {
			t.Fatalf("the session took a forged token: %v, %v", got, err)
		}
	})

	t.Run("guessed keys", func(t *testing.T) {
		asvc, _ := attacker.GetService(ctx, "public/hypha-login")
		tok, _ := attacker.GenerateToken(ctx, rpc.TokenConfig{})
		for _, k := range []string{"", "a", "0000000000000000000000", "../../x", strings.Repeat("k", 10000)} {
			if _, err := asvc.Call(ctx, "check", k, rpc.Kwargs{"timeout": 0}); err == nil {
				t.Errorf("check(%.20q) answered", k)
			}
			if _, err := asvc.Call(ctx, "report", k, tok); err == nil {
				t.Errorf("report(%.20q) accepted", k)
			}
		}
	})

	t.Run("check on someone else's key", func(t *testing.T) {
		svc, key, err := startLogin(t, victim)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := victim.GenerateToken(ctx, rpc.TokenConfig{})
		if _, err := svc.Call(ctx, "report", key, tok); err != nil {
			t.Fatal(err)
		}
		// The attacker saw the login URL (so it has the key).
		asvc, _ := attacker.GetService(ctx, "public/hypha-login")
		if got, err := asvc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 1}); err == nil || got != nil || !strings.Contains(err.Error(), "Invalid key") {
			t.Fatalf("attacker's check = %v, %v", got, err)
		}
		// An anonymous HTTP call has no lasting identity either.
		resp, err := http.Get(s.URL() + "/public/services/hypha-login/check?key=" + key + "&timeout=0")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(body), tok) {
			t.Fatalf("HTTP check by another caller: %d %s", resp.StatusCode, body)
		}
		// A second report (login fixation over the victim's token) is refused.
		atok, _ := attacker.GenerateToken(ctx, rpc.TokenConfig{})
		if _, err := asvc.Call(ctx, "report", key, atok); err == nil || !strings.Contains(err.Error(), "already been completed") {
			t.Fatalf("second report = %v", err)
		}
		if got, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 0}); err != nil || got != tok {
			t.Fatalf("the victim's check = %v, %v", got, err)
		}
	})

	t.Run("report for a workspace the token cannot read", func(t *testing.T) {
		_, key, err := startLogin(t, victim)
		if err != nil {
			t.Fatal(err)
		}
		atok, _ := attacker.GenerateToken(ctx, rpc.TokenConfig{})
		asvc, _ := attacker.GetService(ctx, "public/hypha-login")
		if _, err := asvc.Call(ctx, "report", key, atok, rpc.Kwargs{"workspace": "ws-user-root"}); err == nil || !strings.Contains(err.Error(), "Invalid permission") {
			t.Fatalf("report for ws-user-root = %v", err)
		}
	})

	t.Run("flooding start", func(t *testing.T) {
		flooder := testserver.Connect(t, s, rpc.Config{})
		var last error
		n := 0
		for range 10 {
			if _, _, err := startLogin(t, flooder); err != nil {
				last = err
				break
			}
			n++
		}
		if n != 4 || last == nil || !strings.Contains(last.Error(), "max 4 per caller") {
			t.Fatalf("per caller: %d started, then %v", n, last)
		}
		// Many callers reach the server's bound; the answer names it.
		var total error
		for i := 0; i < 20 && total == nil; i++ {
			c := testserver.Connect(t, s, rpc.Config{})
			for range 4 {
				if _, _, err := startLogin(t, c); err != nil {
					total = err
					break
				}
			}
		}
		if total == nil || !strings.Contains(total.Error(), "max 40") {
			t.Fatalf("server bound: %v", total)
		}
	})
}

// TestHostileLoginPassword: password guessing on the page is bounded per
// user and per address; the right password is refused too once the bound
// is reached; an unknown user answers as a wrong password.
func TestHostileLoginPassword(t *testing.T) {
	dir := t.TempDir()
	if err := auth.OpenUsers(auth.UsersFile(dir)).Add("carol", "carols real password", "", nil); err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, server.Config{DataDir: dir, Login: server.LoginConfig{MaxPasswordFailures: 3, PasswordFailureWindow: time.Hour}})
	anon := testserver.Connect(t, s, rpc.Config{})
	_, key, err := startLogin(t, anon)
	if err != nil {
		t.Fatal(err)
	}
	code, out := postPage(t, s, map[string]string{"key": key, "username": "nobody", "password": "whatever1"})
	if code != http.StatusUnauthorized || out["detail"] != auth.ErrBadCredentials.Error() {
		t.Fatalf("unknown user: %d %v", code, out)
	}
	// Parallel guesses: the count is taken before the check.
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for i := range 8 {
		wg.Go(func() {
			c, _ := postPage(t, s, map[string]string{"key": key, "username": "carol", "password": fmt.Sprintf("guess-%d-xx", i)})
			codes <- c
		})
	}
	wg.Wait()
	close(codes)
	tried := 0
	for c := range codes {
		if c == http.StatusUnauthorized {
			tried++
		} else if c != http.StatusTooManyRequests {
			t.Errorf("guess answered %d", c)
		}
	}
	if tried > 2 { // 3 per address, one spent on "nobody"
		t.Fatalf("%d password guesses were checked, the bound is 3 per address", tried)
	}
	code, out = postPage(t, s, map[string]string{"key": key, "username": "carol", "password": "carols real password"})
	if code != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(out["detail"]), "too many failed logins") {
		t.Fatalf("right password after the bound: %d %v", code, out)
	}
}

// TestLoginCheckWaits: a check waiting for the user returns when the page
// reports (no polling), and a check bounded by its timeout says so.
func TestLoginCheckWaits(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	anon := testserver.Connect(t, s, rpc.Config{})
	svc, key, err := startLogin(t, anon)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 0.2}); err == nil || !strings.Contains(err.Error(), "Login timeout") {
		t.Fatalf("check(timeout=0.2) = %v", err)
	}
	tok, _ := anon.GenerateToken(ctx, rpc.TokenConfig{})
	got := make(chan any, 1)
	go func() {
		v, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 60})
		if err != nil {
			v = err
		}
		got <- v
	}()
	// Report once the check waits (report does not need it to).
	if code, out := postPage(t, s, map[string]string{"key": key, "token": tok}); code != 200 {
		t.Fatalf("report: %d %v", code, out)
	}
	select {
	case v := <-got:
		if v != tok {
			t.Fatalf("check = %v", v)
		}
	case <-ctx.Done():
		t.Fatal("check did not return")
	}
}

// TestHostileLoginExpiredKey: a key past its life is refused by check and
// report alike.
func TestHostileLoginExpiredKey(t *testing.T) {
	s := testserver.Start(t, server.Config{Login: server.LoginConfig{SessionTTL: 500 * time.Millisecond}})
	ctx := testserver.Ctx(t)
	anon := testserver.Connect(t, s, rpc.Config{})
	svc, key, err := startLogin(t, anon)
	if err != nil {
		t.Fatal(err)
	}
	// check waits at most the session's life, whatever timeout it asks.
	if _, err := svc.Call(ctx, "check", key, rpc.Kwargs{"timeout": 3600}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("check past the session's life = %v", err)
	}
	tok, _ := anon.GenerateToken(ctx, rpc.TokenConfig{})
	if _, err := svc.Call(ctx, "report", key, tok); err == nil || !strings.Contains(err.Error(), "Invalid key") {
		t.Fatalf("report on an expired key = %v", err)
	}
	if code, _ := postPage(t, s, map[string]string{"key": key, "token": tok}); code != http.StatusBadRequest {
		t.Fatalf("page report on an expired key = %d", code)
	}
}

// TestLoginServiceReplaceable: with Login.Disabled the server registers no
// login service and no page, and a root client may register another
// provider's public/hypha-login, which rpc.Login then uses.
func TestLoginServiceReplaceable(t *testing.T) {
	s := testserver.Start(t, server.Config{Login: server.LoginConfig{Disabled: true}})
	ctx := testserver.Ctx(t)
	resp, err := http.Get(s.URL() + server.LoginPagePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("page of a disabled login service: %d", resp.StatusCode)
	}
	root := auth.RootUser()
	root.Scope.CurrentWorkspace, root.CurrentWorkspace = "public", "public"
	tok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	provider := testserver.Connect(t, s, rpc.Config{Token: tok, Workspace: "public", ClientID: "idp"})
	testserver.MustRegister(t, provider, rpc.Service{ID: "hypha-login", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{
			"start": func() map[string]any {
				return map[string]any{"key": "k1", "login_url": "https://idp.example/login?k=k1"}
			},
			"check": rpc.Params(func(key string, timeout float64, profile bool) map[string]any {
				return map[string]any{"token": "token-from-" + key, "user_id": "ext-user"}
			}, "key", "timeout?", "profile?"),
		}})
	res, err := rpc.Login(ctx, loginConfig(s, func(context.Context, rpc.LoginInfo) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if res.Token != "token-from-k1" || res.UserID != "ext-user" {
		t.Fatalf("login through the other provider = %+v", res)
	}
}
