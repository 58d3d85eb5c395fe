package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

// Servers of these tests share a fixed JWT secret, so that tokens survive
// a restart (as with --jwt-secret); a restart is Close and a new server on
// the same data dir.
const persistSecret = "persist-test-secret-0123456789abcdef"

func startOn(t *testing.T, dataDir string, cfg server.Config) *server.Server {
	t.Helper()
	cfg.DataDir = dataDir
	cfg.JWTSecret = persistSecret
	return testserver.Start(t, cfg)
}

// loginToken is the token of a logged-in user (as an identity provider
// sharing the JWT secret would mint it): no workspace of its own choosing.
func loginToken(t *testing.T, s *server.Server, id string) string {
	t.Helper()
	tok, err := s.Issuer().Generate(&auth.UserInfo{ID: id, Roles: []string{}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rootJWT is a root token that may join any workspace.
func rootJWT(t *testing.T, s *server.Server) string {
	t.Helper()
	u := auth.RootUser()
	u.Scope.CurrentWorkspace = ""
	tok, err := s.Issuer().Generate(u, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// writeApp puts an installed app on disk, as the apps store lays it out
// (an app installed before the server restarts).
func writeApp(t *testing.T, dataDir, ws, id, file, content string) {
	t.Helper()
	dir := filepath.Join(dataDir, "apps", ws, id)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(map[string]any{"id": id, "name": id, "type": "python-eval", "entry_point": file, "version": "0.1.0"})
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", file), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hello performs a handshake and returns the server's reply (connection_info
// or error).
func hello(t *testing.T, s *server.Server, h map[string]any) map[string]any {
	t.Helper()
	r := testserver.DialRaw(t, s, "")
	defer r.C.CloseNow()
	reply, err := r.Hello(h)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return reply
}

func wantRefused(t *testing.T, reply map[string]any, want string) {
	t.Helper()
	msg, _ := reply["message"].(string)
	if reply["type"] != "error" || !strings.Contains(msg, want) {
		t.Fatalf("handshake: got %v, want an error containing %q", reply, want)
	}
}

// httpDo performs a GET with the token as a query parameter (?token=) or as
// a Bearer header and returns the status and body.
func httpDo(t *testing.T, rawURL, token string, bearer bool) (int, string) {
	t.Helper()
	if token != "" && !bearer {
		sep := "?"
		if strings.Contains(rawURL, "?") {
			sep = "&"
		}
		rawURL += sep + "token=" + url.QueryEscape(token)
	}
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" && bearer {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// restart closes s after dropping the raw connections (which do not answer
// the websocket close handshake, and would make Close wait for it).
func restart(s *server.Server, raws ...*testserver.Raw) {
	for _, r := range raws {
		_ = r.C.CloseNow()
	}
	s.Close()
}

func fileURL(s *server.Server, ws, app, path string) string {
	return s.URL() + "/" + ws + "/artifacts/" + app + "/files/" + path
}

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s has mode %o, want %o", path, got, want)
	}
}

// After a restart, a stranger cannot create (and so own) an existing
// workspace, cannot join it nor read its apps over websocket or HTTP; its
// owner keeps access. The record on disk is 0600 in a 0700 folder.
func TestHostileWorkspaceTakeoverAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testserver.Ctx(t)
	s1 := startOn(t, dir, server.Config{})
	alice := loginToken(t, s1, "alice")
	ra := testserver.ConnectRaw(t, s1, map[string]any{"client_id": "alice-1", "token": alice})
	if _, err := ra.CallManager(ctx, "create_workspace", map[string]any{"id": "team-a", "description": "A's team"}); err != nil {
		t.Fatal(err)
	}
	restart(s1, ra)
	wantMode(t, filepath.Join(dir, "workspaces"), 0o700)
	wantMode(t, filepath.Join(dir, "workspaces", "team-a.json"), 0o600)
	writeApp(t, dir, "team-a", "secret-app", "main.py", "SECRET = 42\n")

	s2 := startOn(t, dir, server.Config{})
	mallory := loginToken(t, s2, "mallory")
	rm := testserver.ConnectRaw(t, s2, map[string]any{"client_id": "mallory-1", "token": mallory})
	if _, err := rm.CallManager(ctx, "create_workspace", map[string]any{"id": "team-a"}); err == nil || !strings.Contains(err.Error(), "workspace already exists: team-a") {
		t.Fatalf("a stranger created an existing workspace after a restart: %v", err)
	}
	if _, err := rm.CallManager(ctx, "create_workspace", map[string]any{"id": "team-a", "owners": []any{"mallory"}}, true); err == nil || !strings.Contains(err.Error(), "permission denied to overwrite team-a") {
		t.Fatalf("a stranger overwrote an existing workspace: %v", err)
	}
	if _, err := rm.CallManager(ctx, "delete_workspace", "team-a"); err == nil || !strings.Contains(err.Error(), "Permission denied for workspace team-a") {
		t.Fatalf("a stranger deleted an existing workspace: %v", err)
	}
	wantRefused(t, hello(t, s2, map[string]any{"client_id": "mallory-2", "token": mallory, "workspace": "team-a"}), "Permission denied for workspace: team-a")

	// Over websocket, through the apps controller.
	mc := testserver.Connect(t, s2, rpc.Config{Token: mallory, ClientID: "mallory-3", NoReconnect: true})
	apps, err := mc.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"get_app_info", "read_file"} {
		args := []any{"team-a/secret-app"}
		if fn == "read_file" {
			args = append(args, "main.py")
		}
		v, err := apps.Call(ctx, fn, args...)
		if err == nil || !strings.Contains(err.Error(), "team-a") || strings.Contains(fmt.Sprint(v), "SECRET") {
			t.Fatalf("%s by a stranger: %v, %v", fn, v, err)
		}
	}
	// Over HTTP, with the token as ?token= and as a Bearer header.
	for _, bearer := range []bool{false, true} {
		code, body := httpDo(t, fileURL(s2, "team-a", "secret-app", "main.py"), mallory, bearer)
		if code != http.StatusForbidden || strings.Contains(body, "SECRET") {
			t.Fatalf("a stranger read team-a's app file (bearer %v): %d %s", bearer, code, body)
		}
	}

	// The owner keeps access.
	info, err := testserver.ConnectRaw(t, s2, map[string]any{"client_id": "alice-2", "token": alice, "workspace": "team-a"}).CallManager(ctx, "get_workspace_info")
	if err != nil {
		t.Fatal(err)
	}
	if owners := info.(map[string]any)["owners"]; fmt.Sprint(owners) != "[alice]" {
		t.Fatalf("team-a owners after the attacks: %v", owners)
	}
	if code, body := httpDo(t, fileURL(s2, "team-a", "secret-app", "main.py"), alice, true); code != http.StatusOK || body != "SECRET = 42\n" {
		t.Fatalf("the owner cannot read its app file: %d %s", code, body)
	}
	// The owner may not delete a workspace that still holds apps (they
	// would be left to whoever creates it again).
	ra2 := testserver.ConnectRaw(t, s2, map[string]any{"client_id": "alice-3", "token": alice})
	if _, err := ra2.CallManager(ctx, "delete_workspace", "team-a"); err == nil || !strings.Contains(err.Error(), "still has 1 installed app") {
		t.Fatalf("deleting a workspace with apps: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "workspaces", "team-a.json")); err != nil {
		t.Fatalf("the record is gone after the refused attacks: %v", err)
	}
}

// A workspace created and deleted is gone after a restart: anyone may then
// create it (it holds no apps).
func TestWorkspaceDeleteIsDurable(t *testing.T) {
	dir := t.TempDir()
	ctx := testserver.Ctx(t)
	s1 := startOn(t, dir, server.Config{})
	ra := testserver.ConnectRaw(t, s1, map[string]any{"client_id": "alice-1", "token": loginToken(t, s1, "alice")})
	for _, id := range []string{"team-keep", "team-gone"} {
		if _, err := ra.CallManager(ctx, "create_workspace", map[string]any{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ra.CallManager(ctx, "delete_workspace", "team-gone"); err != nil {
		t.Fatal(err)
	}
	restart(s1, ra)
	s2 := startOn(t, dir, server.Config{})
	rb := testserver.ConnectRaw(t, s2, map[string]any{"client_id": "bob-1", "token": loginToken(t, s2, "bob")})
	if _, err := rb.CallManager(ctx, "create_workspace", map[string]any{"id": "team-gone"}); err != nil {
		t.Fatalf("re-creating a deleted workspace: %v", err)
	}
	if _, err := rb.CallManager(ctx, "create_workspace", map[string]any{"id": "team-keep"}); err == nil {
		t.Fatal("re-created a workspace that still exists")
	}
}

// A data dir from before workspace records: a workspace with installed apps
// but no record is reserved for root, who may hand it to its owners.
func TestHostileOrphanWorkspaceReserved(t *testing.T) {
	dir := t.TempDir()
	ctx := testserver.Ctx(t)
	writeApp(t, dir, "team-old", "legacy", "main.py", "TOKEN = 'old-secret'\n")
	s := startOn(t, dir, server.Config{})
	mallory := loginToken(t, s, "mallory")
	rm := testserver.ConnectRaw(t, s, map[string]any{"client_id": "mallory-1", "token": mallory})
	if _, err := rm.CallManager(ctx, "create_workspace", map[string]any{"id": "team-old"}); err == nil || !strings.Contains(err.Error(), "workspace is reserved: team-old holds 1 installed app(s) but no owner record") {
		t.Fatalf("a stranger claimed a workspace with apps and no record: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "workspaces", "team-old.json")); !os.IsNotExist(err) {
		t.Fatalf("a record was written for the refused claim: %v", err)
	}
	wantRefused(t, hello(t, s, map[string]any{"client_id": "mallory-2", "token": mallory, "workspace": "team-old"}), "does not exist or is not accessible")
	if code, body := httpDo(t, fileURL(s, "team-old", "legacy", "main.py"), mallory, false); code != http.StatusForbidden || strings.Contains(body, "old-secret") {
		t.Fatalf("a stranger read an orphan workspace's file: %d %s", code, body)
	}
	// Root hands it to alice; alice keeps it across a restart.
	rr := testserver.ConnectRaw(t, s, map[string]any{"client_id": "root-1", "token": testserver.RootToken})
	if _, err := rr.CallManager(ctx, "create_workspace", map[string]any{"id": "team-old", "owners": []any{"alice"}}); err != nil {
		t.Fatal(err)
	}
	restart(s, rm, rr)
	s2 := startOn(t, dir, server.Config{})
	if code, body := httpDo(t, fileURL(s2, "team-old", "legacy", "main.py"), loginToken(t, s2, "alice"), true); code != http.StatusOK || !strings.Contains(body, "old-secret") {
		t.Fatalf("the owner root named cannot read the file: %d %s", code, body)
	}
}

// A non-persistent workspace that holds apps is not forgotten when its last
// client leaves, nor at a restart: otherwise anyone could create it again.
func TestHostileNonPersistentWorkspaceWithApps(t *testing.T) {
	dir := t.TempDir()
	ctx := testserver.Ctx(t)
	s1 := startOn(t, dir, server.Config{})
	ra := testserver.ConnectRaw(t, s1, map[string]any{"client_id": "alice-1", "token": loginToken(t, s1, "alice")})
	for _, id := range []string{"team-tmp", "team-empty"} {
		if _, err := ra.CallManager(ctx, "create_workspace", map[string]any{"id": id, "persistent": false}); err != nil {
			t.Fatal(err)
		}
	}
	restart(s1, ra)
	writeApp(t, dir, "team-tmp", "app", "main.py", "x = 1\n")
	s2 := startOn(t, dir, server.Config{})
	alice := loginToken(t, s2, "alice")
	a := testserver.Connect(t, s2, rpc.Config{Token: alice, ClientID: "alice-2", Workspace: "team-tmp", NoReconnect: true})
	a.Close() // the last client leaves: team-tmp stays (it holds an app)
	rm := testserver.ConnectRaw(t, s2, map[string]any{"client_id": "mallory-1", "token": loginToken(t, s2, "mallory")})
	testserver.WaitFor(t, 10*time.Second, "alice's client to be gone", func() bool {
		v, err := testserver.ConnectRaw(t, s2, map[string]any{"client_id": "root-x", "token": rootJWT(t, s2), "workspace": "team-tmp"}).CallManager(ctx, "list_clients")
		return err == nil && !strings.Contains(fmt.Sprint(v), "alice-2")
	})
	if _, err := rm.CallManager(ctx, "create_workspace", map[string]any{"id": "team-tmp"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a stranger created a non-persistent workspace that holds apps: %v", err)
	}
	// An empty non-persistent workspace is dropped at the restart, as it
	// would have been when its last client left.
	if _, err := os.Stat(filepath.Join(dir, "workspaces", "team-empty.json")); !os.IsNotExist(err) {
		t.Fatalf("an idle non-persistent workspace kept its record: %v", err)
	}
}

// One user cannot fill the data dir with workspace records: the quota
// counts the tokens derived from its credential too.
func TestHostileWorkspaceQuota(t *testing.T) {
	dir := t.TempDir()
	ctx := testserver.Ctx(t)
	s := startOn(t, dir, server.Config{MaxWorkspacesPerUser: 2})
	ra := testserver.ConnectRaw(t, s, map[string]any{"client_id": "alice-1", "token": loginToken(t, s, "alice")})
	for _, id := range []string{"q-1", "q-2"} {
		if _, err := ra.CallManager(ctx, "create_workspace", map[string]any{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ra.CallManager(ctx, "create_workspace", map[string]any{"id": "q-3"}); err == nil || !strings.Contains(err.Error(), "already created 2 workspaces (the limit, --max-workspaces-per-user") {
		t.Fatalf("third workspace: %v", err)
	}
	// A token alice derives is still alice.
	child, err := ra.CallManager(ctx, "generate_token", map[string]any{"permission": "admin"})
	if err != nil {
		t.Fatal(err)
	}
	rc := testserver.ConnectRaw(t, s, map[string]any{"client_id": "alice-child", "token": child})
	if _, err := rc.CallManager(ctx, "create_workspace", map[string]any{"id": "q-4"}); err == nil || !strings.Contains(err.Error(), "the limit") {
		t.Fatalf("a derived token escaped the quota: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "workspaces"))
	if len(entries) != 2 {
		t.Fatalf("%d records on disk, want 2", len(entries))
	}
}
