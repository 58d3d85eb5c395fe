package apps_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/server/auth"
)

// TestEditApp: edit_file, remove_file and edit_app change an installed app;
// a disabled app does not start; validate_app_manifest has upstream's shape.
func TestEditApp(t *testing.T) {
	_, _, _, svc, dir := setup(t)
	call(t, svc, "install", with(testApp(""), "app_id", "ed"))

	call(t, svc, "edit_file", "ed", "extra/notes.txt", "some notes")
	if got := call(t, svc, "read_file", "ed", "extra/notes.txt"); got != "some notes" {
		t.Fatalf("read_file after edit_file = %v", got)
	}
	call(t, svc, "edit_file", rpc.Kwargs{"app_id": "ed", "file_path": "main.txt", "file_content": "new main"})
	if got := call(t, svc, "read_file", "ed", "main.txt"); got != "new main" {
		t.Fatalf("main.txt = %v", got)
	}
	call(t, svc, "remove_file", "ed", "extra/notes.txt")
	if _, err := os.Stat(filepath.Join(dir, "apps", aliceWS, "ed", "files", "extra", "notes.txt")); !os.IsNotExist(err) {
		t.Fatalf("removed file still there: %v", err)
	}
	callErr(t, svc, "remove_file", "File not found", "ed", "extra/notes.txt")
	callErr(t, svc, "remove_file", "entry point", "ed", "main.txt")

	call(t, svc, "edit_app", "ed", rpc.Kwargs{"manifest": map[string]any{"description": "edited"},
		"startup_config": map[string]any{"timeout": 30}})
	info := asMap(t, call(t, svc, "get_app_info", "ed"))
	man := asMap(t, info["manifest"])
	if man["description"] != "edited" || asMap(t, man["startup_config"])["timeout"] != int64(30) {
		t.Fatalf("manifest after edit_app = %v", man)
	}
	callErr(t, svc, "edit_app", "cannot be edited", "ed", rpc.Kwargs{"manifest": map[string]any{"services": []any{}}})
	callErr(t, svc, "edit_app", "not among the app's files", "ed", rpc.Kwargs{"manifest": map[string]any{"entry_point": "nope.txt"}})

	sess := asMap(t, call(t, svc, "start", "ed"))
	call(t, svc, "edit_app", "ed", rpc.Kwargs{"disabled": true})
	if l := asList(t, call(t, svc, "list_running")); len(l) != 0 {
		t.Fatalf("disabling left sessions running: %v (was %v)", ids(l), sess["id"])
	}
	callErr(t, svc, "start", "is disabled", "ed")
	call(t, svc, "edit_app", "ed", rpc.Kwargs{"disabled": false})
	call(t, svc, "start", "ed")

	res := asMap(t, call(t, svc, "validate_app_manifest", map[string]any{"name": "x", "version": "0.1.0", "type": "test-app", "entry_point": "main.py"}))
	if res["valid"] != true || len(asList(t, res["errors"])) != 0 || len(asList(t, res["suggestions"])) != 2 {
		t.Fatalf("validate_app_manifest(valid) = %v", res)
	}
	res = asMap(t, call(t, svc, "validate_app_manifest", map[string]any{"name": 3, "type": "mcp-server"}))
	errs := strings.Join(func() []string {
		var s []string
		for _, e := range asList(t, res["errors"]) {
			s = append(s, e.(string))
		}
		return s
	}(), "\n")
	for _, want := range []string{"Missing required field: version", "Field 'name' must be a string", "require 'mcpServers'"} {
		if !strings.Contains(errs, want) {
			t.Errorf("validate_app_manifest errors lack %q: %s", want, errs)
		}
	}
	if res["valid"] != false {
		t.Fatalf("invalid manifest reported valid: %v", res)
	}
	res = asMap(t, call(t, svc, "validate_app_manifest", map[string]any{"name": "x", "version": "1", "type": "no-such-type"}))
	if !strings.Contains(strings.Join(toStrings(asList(t, res["warnings"])), "\n"), "no worker for it") {
		t.Fatalf("unknown type not warned about: %v", res)
	}
}

func toStrings(l []any) []string {
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestHostileEditApp: the edit functions refuse an anonymous client, a
// read-only token of the app's workspace and a user of another workspace,
// paths that leave the app, and files over the install limits; nothing is
// written.
func TestHostileEditApp(t *testing.T) {
	dir := t.TempDir()
	s := testserver.Start(t, server.Config{DataDir: dir, Apps: apps.ForServer(apps.Limits{MaxFiles: 3, MaxTotalBytes: 1000})})
	newTestWorker(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public"}, "public")
	alice := appsService(t, connectUser(t, s, "alice", "alice-client"))
	call(t, alice, "install", with(testApp(""), "app_id", "target"))
	filesDir := filepath.Join(dir, "apps", aliceWS, "target", "files")

	anon := appsService(t, testserver.Connect(t, s, rpc.Config{NoReconnect: true}))
	bob := appsService(t, connectUser(t, s, "bob", "bob-client"))
	roTok, err := s.Issuer().Generate(&auth.UserInfo{ID: "reader", Roles: []string{}, Scope: auth.Scope{
		CurrentWorkspace: aliceWS, Workspaces: map[string]auth.Permission{aliceWS: auth.Read}}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	reader := appsService(t, testserver.Connect(t, s, rpc.Config{Token: roTok, Workspace: aliceWS, NoReconnect: true}))
	app := aliceWS + "/target"
	for name, svc := range map[string]*rpc.RemoteService{"anonymous": anon, "bob": bob, "read-only": reader} {
		t.Run(name, func(t *testing.T) {
			callErr(t, svc, "edit_file", "Permission denied", app, "evil.txt", "x")
			callErr(t, svc, "remove_file", "Permission denied", app, "main.txt")
			callErr(t, svc, "edit_app", "Permission denied", app, rpc.Kwargs{"disabled": true})
			callErr(t, svc, "edit_worker", "Permission denied", "public/worker-client:server-app-worker", rpc.Kwargs{"disabled": true})
		})
	}
	for _, p := range []string{"../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "a\\..\\evil.txt", "./x", "a//b", "..", "x\x00y"} {
		callErr(t, alice, "edit_file", "invalid file path", "target", p, "x")
		callErr(t, alice, "remove_file", "", "target", p)
	}
	callErr(t, alice, "edit_file", "both a file and a directory", "target", "main.txt/x", "x")
	callErr(t, alice, "edit_file", "over the limit of 1000 bytes", "target", "big.bin", strings.Repeat("x", 2000))
	call(t, alice, "edit_file", "target", "two.txt", "2")
	call(t, alice, "edit_file", "target", "d/three.txt", "3")
	callErr(t, alice, "edit_file", "over the limit of 3 files", "target", "four.txt", "4")

	// Nothing was written but main.txt and two.txt; nothing next to the app.
	var found []string
	_ = filepath.Walk(filepath.Join(dir, "apps"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			found = append(found, rel)
		}
		return nil
	})
	slices.Sort(found)
	want := []string{filepath.Join("apps", aliceWS, "target", "files", "d", "three.txt"), filepath.Join("apps", aliceWS, "target", "files", "main.txt"), filepath.Join("apps", aliceWS, "target", "files", "two.txt"),
		filepath.Join("apps", aliceWS, "target", "manifest.json"), filepath.Join("apps", aliceWS, "target", "revision")}
	if !slices.Equal(found, want) {
		t.Fatalf("files after the refused edits = %v, want %v", found, want)
	}
	if b, _ := os.ReadFile(filepath.Join(filesDir, "main.txt")); string(b) != "hello from main" {
		t.Fatalf("main.txt changed: %q", b)
	}
	if m := asMap(t, asMap(t, call(t, alice, "get_app_info", "target"))["manifest"]); m["disabled"] != nil {
		t.Fatalf("the refused edit_app changed the manifest: %v", m)
	}
}

// TestEditWorker: a disabled worker is listed as such and not picked;
// enabled again it runs apps. A public worker is root's to disable.
func TestEditWorker(t *testing.T) {
	s := startServer(t, t.TempDir())
	pub := newTestWorker(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public"}, "public")
	svc := appsService(t, connectUser(t, s, "alice", "alice-client"))
	call(t, svc, "install", with(testApp(""), "app_id", "wk"))
	wid := pub.id
	callErr(t, svc, "edit_worker", "Permission denied", wid, rpc.Kwargs{"disabled": true})

	root := appsService(t, testserver.Connect(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public", NoReconnect: true}))
	call(t, root, "edit_worker", wid, rpc.Kwargs{"disabled": true})
	for _, e := range asList(t, call(t, svc, "list_workers")) {
		if m := asMap(t, e); m["id"] == wid && m["disabled"] != true {
			t.Fatalf("disabled worker listed as %v", m)
		}
	}
	callErr(t, svc, "start", "No server app worker found", "wk")
	callErr(t, svc, "start", "is disabled", "wk", rpc.Kwargs{"worker_id": wid})
	call(t, root, "edit_worker", wid, rpc.Kwargs{"disabled": false})
	call(t, svc, "start", "wk")
	_ = root
}

// TestStopAfterInactive: an app nobody calls is stopped after its
// stop_after_inactive.
func TestStopAfterInactive(t *testing.T) {
	_, _, _, svc, _ := setup(t)
	call(t, svc, "install", with(testApp(""), "app_id", "idle"))
	sess := asMap(t, call(t, svc, "start", "idle", rpc.Kwargs{"stop_after_inactive": 1}))
	deadline := time.Now().Add(30 * time.Second)
	for len(asList(t, call(t, svc, "list_running"))) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("session %v still running long after stop_after_inactive", sess["id"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A daemon may not have one.
	callErr(t, svc, "install", "Daemon apps should not have stop_after_inactive", with(testApp(""), "app_id", "d",
		"manifest", map[string]any{"type": "test-app", "entry_point": "main.txt", "daemon": true, "startup_config": map[string]any{"stop_after_inactive": 5}}))
}

// TestLazyStart: get_service("default@app") starts an installed app that
// declares the service; list_services(include_app_services=True) lists it
// while it is not running. Another workspace's user starts nothing.
func TestLazyStart(t *testing.T) {
	s, _, aliceCli, svc, _ := setup(t)
	ctx := testserver.Ctx(t)
	call(t, svc, "install", with(testApp(""), "app_id", "lazy"))
	if l := asList(t, call(t, svc, "list_running")); len(l) != 0 {
		t.Fatalf("running after install: %v", ids(l))
	}
	mgr := aliceCli.Manager()
	v, err := mgr.Call(ctx, "list_services", rpc.Kwargs{"query": map[string]any{"workspace": aliceWS}, "include_app_services": true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(asList(t, v)); !slices.Contains(got, aliceWS+"/*:default@lazy") {
		t.Fatalf("list_services(include_app_services) = %v", got)
	}

	bob := connectUser(t, s, "bob", "bob-client")
	if _, err := bob.GetService(ctx, aliceWS+"/default@lazy"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("bob's lazy start: %v", err)
	}
	if l := asList(t, call(t, svc, "list_running")); len(l) != 0 {
		t.Fatalf("bob's refused get_service started %v", ids(l))
	}

	add, err := aliceCli.GetService(ctx, "default@lazy")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := add.Call(ctx, "add", 1, 2); err != nil || r != int64(3) {
		t.Fatalf("add = %v, %v", r, err)
	}
	if l := asList(t, call(t, svc, "list_running")); len(l) != 1 {
		t.Fatalf("running after the lazy start: %v", ids(l))
	}
}

// TestHostileEditAppHTTP: the edit functions over HTTP refuse an anonymous
// request and another workspace's user; nothing is written.
func TestHostileEditAppHTTP(t *testing.T) {
	s, _, _, svc, dir := setup(t)
	ctx := testserver.Ctx(t)
	call(t, svc, "install", with(testApp(""), "app_id", "web"))
	base := s.URL() + "/public/services/server-apps/edit_file?app_id=" + aliceWS + "/web&file_path=evil.txt&file_content=x"
	for name, tok := range map[string]string{"anonymous": "", "bob": userToken(t, s, "bob")} {
		code, body, err := httpDo(ctx, base, tok)
		if err != nil {
			t.Fatal(err)
		}
		if code < 400 || !strings.Contains(body, "Permission denied") {
			t.Errorf("%s: HTTP edit_file answered %d %s", name, code, body)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "apps", aliceWS, "web", "files", "evil.txt")); !os.IsNotExist(err) {
		t.Fatalf("a refused HTTP edit wrote the file: %v", err)
	}
	// alice herself may, over HTTP too.
	code, body, err := httpDo(ctx, base, userToken(t, s, "alice"))
	if err != nil || code != 200 {
		t.Fatalf("alice's HTTP edit_file: %d %s %v", code, body, err)
	}
	if got := call(t, svc, "read_file", "web", "evil.txt"); got != "x" {
		t.Fatalf("file after alice's HTTP edit = %v", got)
	}
	// A wrong argument is the caller's error (400), named, not a 500.
	code, body, err = httpDo(ctx, s.URL()+"/public/services/server-apps/edit_file?app_id="+aliceWS+"/web&file_path=b.txt&content=x", userToken(t, s, "alice"))
	if err != nil || code != 400 || !strings.Contains(body, `unexpected keyword argument \"content\"`) {
		t.Fatalf("HTTP edit_file with an unknown argument: %d %s %v", code, body, err)
	}
}
