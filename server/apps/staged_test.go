package apps_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// appWith is a test-app whose entry file holds content.
func appWith(content string, kv ...any) rpc.Kwargs {
	k := testApp("")
	k["files"] = []any{map[string]any{"path": "main.txt", "content": content}}
	return with(k, kv...)
}

// entryRead is what the test worker read from the session's
// app_files_base_url (it logs "file main.txt: <content>").
func entryRead(t *testing.T, apps *rpc.RemoteService, sid string) string {
	t.Helper()
	logs := fmt.Sprint(call(t, apps, "get_logs", sid))
	i := strings.Index(logs, "file main.txt: ")
	if i < 0 {
		t.Fatalf("session %s read no entry file: %s", sid, logs)
	}
	rest := logs[i+len("file main.txt: "):]
	if j := strings.Index(rest, " type:"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// TestStagedVersion: a staged install leaves the committed version running
// and started; start(stage=True) runs the staged files; staged edits change
// the staged version only; commit_app makes it current.
func TestStagedVersion(t *testing.T) {
	_, _, alice, apps, dir := setup(t)
	call(t, apps, "install", appWith("version one", "app_id", "st"))
	m := asMap(t, call(t, apps, "install", appWith("version two", "app_id", "st", "stage", true, "overwrite", true)))
	if m["id"] != "st" {
		t.Fatalf("staged install returned %v", m)
	}

	committed := asMap(t, call(t, apps, "start", "st"))
	if got := entryRead(t, apps, committed["id"].(string)); got != "version one" {
		t.Fatalf("start runs %q, want the committed version", got)
	}
	staged := asMap(t, call(t, apps, "start", "st", rpc.Kwargs{"stage": true}))
	if staged["id"] == committed["id"] || staged["stage"] != true {
		t.Fatalf("start(stage=True) returned %v (committed session %v)", staged, committed["id"])
	}
	if got := entryRead(t, apps, staged["id"].(string)); got != "version two" {
		t.Fatalf("start(stage=True) runs %q, want the staged version", got)
	}
	if again := asMap(t, call(t, apps, "start", "st")); again["id"] != committed["id"] {
		t.Fatalf("start returned %v, want the running committed instance %v", again["id"], committed["id"])
	}
	if l := asList(t, call(t, apps, "list_apps")); len(l) != 1 || asMap(t, l[0])["staged"] != nil {
		t.Fatalf("list_apps = %v", l)
	}
	if info := asMap(t, call(t, apps, "get_app_info", "st", rpc.Kwargs{"stage": true})); info["staged"] != true {
		t.Fatalf("get_app_info(stage=True) = %v", info)
	}

	// Staged edits.
	call(t, apps, "edit_file", "st", "main.txt", "version three", rpc.Kwargs{"stage": true})
	call(t, apps, "edit_app", "st", rpc.Kwargs{"manifest": map[string]any{"description": "staged edit"}, "stage": true})
	if v := call(t, apps, "read_file", "st", "main.txt"); v != "version one" {
		t.Fatalf("committed main.txt = %v after a staged edit", v)
	}
	if v := call(t, apps, "read_file", "st", "main.txt", rpc.Kwargs{"stage": true}); v != "version three" {
		t.Fatalf("staged main.txt = %v", v)
	}
	if d := asMap(t, call(t, apps, "get_app_info", "st"))["manifest"].(map[string]any)["description"]; d == "staged edit" {
		t.Fatalf("committed description = %v after a staged edit_app", d)
	}

	// Commit: verified, made current; the staged version is gone.
	m = asMap(t, call(t, apps, "commit_app", "st"))
	if m["description"] != "staged edit" {
		t.Fatalf("commit_app returned %v", m)
	}
	if v := call(t, apps, "read_file", "st", "main.txt"); v != "version three" {
		t.Fatalf("committed main.txt = %v after commit", v)
	}
	callErr(t, apps, "get_app_info", "no staged version", "st", rpc.Kwargs{"stage": true})
	if _, err := os.Stat(filepath.Join(dir, "apps", aliceWS, ".stage-st")); !os.IsNotExist(err) {
		t.Fatalf("staged directory after commit: %v", err)
	}
	after := asMap(t, call(t, apps, "start", "st"))
	if after["id"] == committed["id"] {
		t.Fatal("start after commit returned the instance of the previous version")
	}
	if got := entryRead(t, apps, after["id"].(string)); got != "version three" {
		t.Fatalf("start after commit runs %q", got)
	}
	callErr(t, apps, "commit_app", "has no staged version", "st")

	// A failed commit discards the staged version; the committed one stays.
	call(t, apps, "install", with(appWith("broken"), "app_id", "st", "stage", true, "overwrite", true,
		"manifest", map[string]any{"type": "test-app", "entry_point": "main.txt", "test_mode": "fail"}))
	callErr(t, apps, "commit_app", "Failed to install app 'st'", "st", rpc.Kwargs{"timeout": 5})
	callErr(t, apps, "read_file", "no staged version", "st", "main.txt", rpc.Kwargs{"stage": true})
	if v := call(t, apps, "read_file", "st", "main.txt"); v != "version three" {
		t.Fatalf("committed main.txt = %v after a failed commit", v)
	}

	// discard and uninstall (as upstream: the staged version only).
	art, err := alice.GetService(testserver.Ctx(t), "public/artifact-manager")
	if err != nil {
		t.Fatal(err)
	}
	call(t, apps, "edit_file", "st", "extra.txt", "x", rpc.Kwargs{"stage": true})
	if d := asMap(t, call(t, art, "discard", "st")); d["status"] != "discarded" {
		t.Fatalf("discard returned %v", d)
	}
	callErr(t, art, "discard", "No staged changes to discard", "st")
	callErr(t, apps, "read_file", "File not found", "st", "extra.txt")
	call(t, apps, "edit_file", "st", "extra.txt", "x", rpc.Kwargs{"stage": true})
	call(t, apps, "uninstall", "st")
	if l := ids(asList(t, call(t, apps, "list_apps"))); len(l) != 1 || l[0] != "st" {
		t.Fatalf("list_apps after uninstalling the staged version = %v", l)
	}
	callErr(t, apps, "read_file", "File not found", "st", "extra.txt")
	call(t, apps, "uninstall", "st")
	if l := asList(t, call(t, apps, "list_apps")); len(l) != 0 {
		t.Fatalf("list_apps after uninstall = %v", l)
	}

	// An app with only a staged version: listed as staged, not started
	// without stage=True, committed by commit_app.
	call(t, apps, "install", appWith("new", "app_id", "fresh", "stage", true))
	if l := asList(t, call(t, apps, "list_apps")); len(l) != 1 || asMap(t, l[0])["staged"] != true {
		t.Fatalf("list_apps = %v", l)
	}
	callErr(t, apps, "start", "has only a staged version", "fresh")
	call(t, apps, "commit_app", "fresh")
	if l := asList(t, call(t, apps, "list_apps")); len(l) != 1 || asMap(t, l[0])["staged"] != nil {
		t.Fatalf("list_apps after commit = %v", l)
	}
}

// TestStagedCommitCrash: a crash in the middle of a commit (the committed
// version moved aside, the staged one not yet renamed into place) or of a
// staged replacement leaves the previous versions, never a mix.
func TestStagedCommitCrash(t *testing.T) {
	dir := t.TempDir()
	s1 := testserver.Start(t, server.Config{DataDir: dir, JWTSecret: "crash"})
	w := newTestWorker(t, s1, rpc.Config{Token: userToken(t, s1, "alice")}, "protected")
	alice := connectUser(t, s1, "alice", "alice-client")
	apps := appsService(t, alice)
	call(t, apps, "install", appWith("version one", "app_id", "st"))
	call(t, apps, "install", appWith("version two", "app_id", "st", "stage", true, "overwrite", true))
	call(t, apps, "install", appWith("only staged", "app_id", "other", "stage", true))
	alice.Close()
	w.closeApps()
	w.client.Close()
	s1.Close()

	wsDir := filepath.Join(dir, "apps", aliceWS)
	// commit of st, interrupted after its first rename;
	if err := os.Rename(filepath.Join(wsDir, "st"), filepath.Join(wsDir, ".old-st-abc")); err != nil {
		t.Fatal(err)
	}
	// replacement of other's staged version, interrupted likewise.
	if err := os.Rename(filepath.Join(wsDir, ".stage-other"), filepath.Join(wsDir, ".unstage-other-def")); err != nil {
		t.Fatal(err)
	}

	s2 := testserver.Start(t, server.Config{DataDir: dir, JWTSecret: "crash"})
	apps2 := appsService(t, connectUser(t, s2, "alice", "alice-client"))
	for _, c := range []struct {
		id    string
		stage bool
		want  string
	}{{"st", false, "version one"}, {"st", true, "version two"}, {"other", true, "only staged"}} {
		if v := call(t, apps2, "read_file", c.id, "main.txt", rpc.Kwargs{"stage": c.stage}); v != c.want {
			t.Errorf("after the crash, %s (stage=%v) main.txt = %v, want %q", c.id, c.stage, v, c.want)
		}
	}
	entries, _ := os.ReadDir(wsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".old-") || strings.HasPrefix(e.Name(), ".unstage-") {
			t.Errorf("leftover %s after recovery", e.Name())
		}
	}
}

// TestHostileStagedVersions: another workspace's user cannot commit,
// discard, edit or run alice's staged version; a session's token reads only
// the files of the version it runs (the staged route serves the staged
// sessions only, the committed route refuses them); stage paths do not
// traverse out of the app.
func TestHostileStagedVersions(t *testing.T) {
	s, w, alice, apps, dir := setup(t)
	ctx := testserver.Ctx(t)
	call(t, apps, "install", appWith("committed secret", "app_id", "st"))
	call(t, apps, "install", appWith("staged draft", "app_id", "st", "stage", true, "overwrite", true))

	bob := connectUser(t, s, "bob", "bob-client")
	bApps := appsService(t, bob)
	bArt, err := bob.GetService(ctx, "public/artifact-manager")
	if err != nil {
		t.Fatal(err)
	}
	rw := "needs read_write permission on workspace " + aliceWS
	for _, c := range []struct {
		svc  *rpc.RemoteService
		fn   string
		args []any
		want string
	}{
		{bApps, "commit_app", []any{aliceWS + "/st"}, rw},
		{bArt, "discard", []any{aliceWS + "/st"}, rw},
		{bApps, "uninstall", []any{aliceWS + "/st"}, rw},
		{bApps, "edit_file", []any{aliceWS + "/st", "main.txt", "bob was here", rpc.Kwargs{"stage": true}}, rw},
		{bApps, "edit_app", []any{aliceWS + "/st", rpc.Kwargs{"manifest": map[string]any{"description": "bob"}, "stage": true}}, rw},
		{bApps, "read_file", []any{aliceWS + "/st", "main.txt", rpc.Kwargs{"stage": true}}, "needs read permission"},
	} {
		err := callErr(t, c.svc, c.fn, "Permission denied", c.args...)
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("bob %s: %v, want it to name %q", c.fn, err, c.want)
		}
	}
	callErr(t, bApps, "start", "not in workspace ws-user-bob", aliceWS+"/st", rpc.Kwargs{"stage": true})
	if v := call(t, apps, "read_file", "st", "main.txt", rpc.Kwargs{"stage": true}); v != "staged draft" {
		t.Fatalf("staged main.txt = %v after bob's attempts", v)
	}
	if v := call(t, apps, "read_file", "st", "main.txt"); v != "committed secret" {
		t.Fatalf("committed main.txt = %v after bob's attempts", v)
	}

	// One session of each version; the worker kept their tokens.
	committed := asMap(t, call(t, apps, "start", "st"))
	cCfg, _ := w.lastConfig()
	staged := asMap(t, call(t, apps, "start", "st", rpc.Kwargs{"stage": true}))
	sCfg, _ := w.lastConfig()
	if cCfg["id"] != committed["id"] || sCfg["id"] != staged["id"] {
		t.Fatalf("configs %v / %v for sessions %v / %v", cCfg["id"], sCfg["id"], committed["id"], staged["id"])
	}
	base := s.URL() + "/" + aliceWS + "/artifacts/st"
	if sCfg["app_files_base_url"] != base+"/stage/files" || cCfg["app_files_base_url"] != base+"/files" {
		t.Fatalf("app_files_base_url: staged %v, committed %v", sCfg["app_files_base_url"], cCfg["app_files_base_url"])
	}
	sTok, cTok := sCfg["token"].(string), cCfg["token"].(string)
	for _, c := range []struct {
		what, url, token string
		code             int
		want             string
	}{
		{"the staged session reads committed files", base + "/files/main.txt", sTok, 403, "runs the staged version"},
		{"the staged session lists committed files", base + "/files", sTok, 403, "runs the staged version"},
		{"the committed session reads staged files", base + "/stage/files/main.txt", cTok, 403, "served only to its staged sessions"},
		{"alice's own token reads staged files", base + "/stage/files/main.txt", userToken(t, s, "alice"), 403, "served only to its staged sessions"},
		{"bob reads staged files", base + "/stage/files/main.txt", userToken(t, s, "bob"), 403, "read permission"},
		{"anonymous reads staged files", base + "/stage/files/main.txt", "", 401, "read permission"},
		{"traversal from the stage route", base + "/stage/files/..%2F..%2Fst%2Ffiles%2Fmain.txt", sTok, 400, "invalid file path"},
		{"encoded dot segments", base + "/stage/files/%2e%2e/%2e%2e/st/files/main.txt", sTok, 0, ""},
		{"the staged session reads its files", base + "/stage/files/main.txt", sTok, 200, "staged draft"},
		{"the committed session reads its files", base + "/files/main.txt", cTok, 200, "committed secret"},
	} {
		code, body, err := httpDo(ctx, c.url, c.token)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		switch {
		case c.code == 0: // any refusal, as long as nothing is served
			if code == 200 || strings.Contains(body, "secret") || strings.Contains(body, "draft") {
				t.Errorf("%s: %d %s", c.what, code, body)
			}
		case code != c.code || !strings.Contains(body, c.want):
			t.Errorf("%s: %d %s, want %d with %q", c.what, code, body, c.code, c.want)
		}
	}

	// Once its session ended, the staged token reads nothing.
	call(t, apps, "stop", staged["id"])
	if code, body, _ := httpDo(ctx, base+"/stage/files/main.txt", sTok); code != 403 {
		t.Errorf("a stopped staged session's token: %d %s", code, body)
	}

	// Stage paths are checked like any other.
	callErr(t, apps, "edit_file", "invalid file path", "st", "../escape.txt", "x", rpc.Kwargs{"stage": true})
	callErr(t, apps, "remove_file", "invalid file path", "st", "../st/files/main.txt", rpc.Kwargs{"stage": true})
	callErr(t, apps, "read_file", "invalid file path", "st", "../st/files/main.txt", rpc.Kwargs{"stage": true})
	callErr(t, apps, "install", "is not a valid string", appWith("x", "app_id", "../.stage-st", "stage", true))
	callErr(t, apps, "install", "is not a valid string", appWith("x", "app_id", ".stage-st", "stage", true))
	art, err := alice.GetService(ctx, "public/artifact-manager")
	if err != nil {
		t.Fatal(err)
	}
	callErr(t, art, "discard", "is not a valid string", aliceWS+"/.stage-st")
	callErr(t, art, "get_file", "served only to its staged sessions", "st", "main.txt", rpc.Kwargs{"stage": true})
	if _, err := os.Stat(filepath.Join(dir, "apps", aliceWS, "escape.txt")); !os.IsNotExist(err) {
		t.Fatalf("a traversal wrote outside the app: %v", err)
	}
	if v := call(t, apps, "read_file", "st", "main.txt", rpc.Kwargs{"stage": true}); v != "staged draft" {
		t.Fatalf("staged main.txt = %v after the attempts", v)
	}
}
