package apps_test

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

const aliceWS = "ws-user-alice"

// setup starts a server with a protected test worker in alice's workspace
// and returns alice's server-apps service.
func setup(t *testing.T) (*server.Server, *testWorker, *rpc.Client, *rpc.RemoteService, string) {
	t.Helper()
	dir := t.TempDir()
	s := startServer(t, dir)
	w := newTestWorker(t, s, rpc.Config{Token: userToken(t, s, "alice")}, "protected")
	alice := connectUser(t, s, "alice", "alice-client")
	return s, w, alice, appsService(t, alice), dir
}

func TestLifecycle(t *testing.T) {
	s, w, _, apps, dir := setup(t)
	ctx := testserver.Ctx(t)

	var mu sync.Mutex
	var progress []string
	cb := func(msg map[string]any) {
		mu.Lock()
		progress = append(progress, msg["type"].(string)+": "+msg["message"].(string))
		mu.Unlock()
	}
	m := asMap(t, call(t, apps, "install", with(testApp(""), "app_id", "my-app", "progress_callback", cb)))
	if m["id"] != "my-app" || m["compiled"] != true || m["type"] != "test-app" {
		t.Fatalf("install returned %v", m)
	}
	if svcs := ids(asList(t, m["services"])); !slices.Equal(svcs, []string{aliceWS + "/*:default"}) {
		t.Fatalf("manifest services = %v", svcs)
	}
	mu.Lock()
	got := strings.Join(progress, "\n")
	mu.Unlock()
	for _, want := range []string{"info: Parsing app manifest...", "info: Compiling app using worker", "info: test worker says hello",
		"success: Service 'default' registered successfully", "success: Application tested successfully!", "success: Installation complete!"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress lacks %q:\n%s", want, got)
		}
	}
	if st := w.stops(); len(st) != 1 {
		t.Fatalf("verification should start and stop once, stops = %v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "apps", aliceWS, "my-app", "files", "main.txt")); err != nil {
		t.Fatalf("app file not stored: %v", err)
	}
	if l := ids(asList(t, call(t, apps, "list_apps"))); !slices.Equal(l, []string{"my-app"}) {
		t.Fatalf("list_apps = %v", l)
	}

	info := asMap(t, call(t, apps, "start", "my-app"))
	sid, _ := info["id"].(string)
	cid, _ := info["client_id"].(string)
	if !strings.HasPrefix(cid, "_rapp_") || !strings.HasSuffix(cid, "__rlb") || sid != aliceWS+"/"+cid {
		t.Fatalf("session id %q, client id %q", sid, cid)
	}
	for k, want := range map[string]any{"app_id": "my-app", "workspace": aliceWS, "status": "running",
		"worker_id": w.id, "app_type": "test-app", "session_id": sid, "service_id": sid + ":default@my-app", "name": "My App"} {
		if info[k] != want {
			t.Errorf("session[%s] = %v, want %v", k, info[k], want)
		}
	}

	// The worker got the start config of worker-contract §1.3.
	cfg, kctx := w.lastConfig()
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	wantKeys := []string{"app_files_base_url", "app_id", "artifact_id", "client_id", "disable_ssl", "entry_point", "id",
		"manifest", "progress_callback", "server_url", "timeout", "token", "workspace"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("config keys = %v, want %v", keys, wantKeys)
	}
	base := s.URL()
	for k, want := range map[string]any{"id": sid, "app_id": "my-app", "workspace": aliceWS, "client_id": cid,
		"server_url": base, "app_files_base_url": base + "/" + aliceWS + "/artifacts/my-app/files",
		"entry_point": "main.txt", "artifact_id": aliceWS + "/my-app", "timeout": 60.0, "disable_ssl": false} {
		if cfg[k] != want {
			t.Errorf("config[%s] = %#v, want %#v", k, cfg[k], want)
		}
	}
	if _, ok := cfg["progress_callback"].(*rpc.RemoteFunc); !ok {
		t.Errorf("progress_callback is %T", cfg["progress_callback"])
	}
	man := asMap(t, cfg["manifest"])
	// (the rpc decoder drops the "_rtype": "pydantic-model" marker the server sends)
	if man["format_version"] != "0.2.1" || man["daemon"] != false ||
		man["type"] != "test-app" || man["id"] != "my-app" {
		t.Errorf("manifest = %v", man)
	}
	// The worker declares require_context: it gets the context its own rpc
	// stamps (the controller's client in alice's workspace), no explicit
	// one, so that the seed's JavaScript signatures receive the config
	// (workercall.go; before, the explicit context went as a keyword).
	w.mu.Lock()
	stamped := w.stamped[len(w.stamped)-1]
	w.mu.Unlock()
	if kctx != nil || stamped == nil || stamped.WS != aliceWS || stamped.User.ID != "root" {
		t.Errorf("explicit context = %v, stamped = %+v", kctx, stamped)
	}

	// Another client of the workspace uses the app's service.
	other := connectUser(t, s, "alice", "alice-other")
	app, err := other.GetService(ctx, info["service_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := app.Call(ctx, "add", 2, 3); err != nil || v != int64(5) {
		t.Fatalf("add = %v, %v", v, err)
	}

	logs := asMap(t, call(t, apps, "get_logs", sid))
	text := ""
	for _, it := range asList(t, logs["items"]) {
		text += asMap(t, it)["content"].(string) + "\n"
	}
	if !strings.Contains(text, "file main.txt: hello from main") || !strings.Contains(text, "app running") {
		t.Fatalf("logs = %s", text)
	}
	if l := asMap(t, call(t, apps, "get_logs", sid, rpc.Kwargs{"type": "stdout"})); l["total"] != int64(1) {
		t.Fatalf("stdout logs = %v", l)
	}
	if _, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"limit": -1}); err == nil || !strings.Contains(err.Error(), "limit must be a non-negative integer") {
		t.Fatalf("get_logs with limit -1: %v, want a clear refusal", err)
	}
	if l := ids(asList(t, call(t, apps, "list_running"))); !slices.Equal(l, []string{sid}) {
		t.Fatalf("list_running = %v", l)
	}
	if si := asMap(t, call(t, apps, "get_session_info", sid)); si["id"] != sid {
		t.Fatalf("get_session_info = %v", si)
	}
	// A second start returns the running instance (one per workspace).
	if again := asMap(t, call(t, apps, "start", "my-app")); again["id"] != sid {
		t.Fatalf("second start made %v, want the running %s", again["id"], sid)
	}

	call(t, apps, "stop", sid)
	if l := asList(t, call(t, apps, "list_running")); len(l) != 0 {
		t.Fatalf("list_running after stop = %v", l)
	}
	if st := w.stops(); st[len(st)-1] != sid {
		t.Fatalf("worker stops = %v", st)
	}
	callErr(t, apps, "stop", "Server app instance not found", sid)
	call(t, apps, "stop", sid, rpc.Kwargs{"raise_exception": false})

	call(t, apps, "uninstall", "my-app")
	if l := asList(t, call(t, apps, "list_apps")); len(l) != 0 {
		t.Fatalf("list_apps after uninstall = %v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, "apps", aliceWS, "my-app")); !os.IsNotExist(err) {
		t.Fatalf("app directory still there: %v", err)
	}
}

func TestDetachedStart(t *testing.T) {
	_, w, _, apps, _ := setup(t)
	call(t, apps, "install", with(testApp("hang"), "app_id", "detached", "stage", true))
	start := time.Now()
	// stage: the staged version runs (the install skipped the trial start).
	info := asMap(t, call(t, apps, "start", "detached", rpc.Kwargs{"wait_for_service": false, "stage": true}))
	if time.Since(start) > 5*time.Second {
		t.Fatalf("detached start waited %s", time.Since(start))
	}
	sid := info["id"].(string)
	if _, has := info["service_id"]; has {
		t.Errorf("detached session has a service_id: %v", info)
	}
	if l := ids(asList(t, call(t, apps, "list_running"))); !slices.Equal(l, []string{sid}) {
		t.Fatalf("list_running = %v", l)
	}
	call(t, apps, "stop", sid)
	if !slices.Contains(w.stops(), sid) {
		t.Fatalf("worker did not stop %s", sid)
	}
}

func TestWaitForClientOnly(t *testing.T) {
	_, _, _, apps, _ := setup(t)
	// "bare" apps connect but register no service: waiting for the client works…
	call(t, apps, "install", with(testApp("bare"), "app_id", "bare", "wait_for_service", ""))
	info := asMap(t, call(t, apps, "start", "bare", rpc.Kwargs{"wait_for_service": ""}))
	if info["status"] != "running" {
		t.Fatalf("session = %v", info)
	}
	call(t, apps, "stop", info["id"])
	// …waiting for a service times out.
	callErr(t, apps, "start", "Application startup timed out", "bare", rpc.Kwargs{"wait_for_service": "default", "timeout": 1})
}

func TestStartTimeoutReportsLogs(t *testing.T) {
	_, w, _, apps, _ := setup(t)
	call(t, apps, "install", with(testApp("hang"), "app_id", "stuck", "stage", true))
	err := callErr(t, apps, "start", "Failed to start app 'stuck'", "stuck", rpc.Kwargs{"timeout": 0.5, "stage": true})
	for _, want := range []string{"Application startup timed out", "stuck: never connecting"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if l := asList(t, call(t, apps, "list_running")); len(l) != 0 {
		t.Fatalf("list_running after failed start = %v", l)
	}
	cfg, _ := w.lastConfig()
	if !slices.Contains(w.stops(), cfg["id"].(string)) {
		t.Fatalf("the failed session was not stopped: %v", w.stops())
	}

	// A failing worker start is reported the same way.
	call(t, apps, "install", with(testApp("fail"), "app_id", "boom", "stage", true))
	err = callErr(t, apps, "start", "Failed to start app 'boom'", "boom", rpc.Kwargs{"stage": true})
	if !strings.Contains(err.Error(), "boom from worker") {
		t.Fatalf("error lacks the worker's error: %v", err)
	}

	// Installing without stage verifies the app: a hanging app is refused
	// and nothing stays installed.
	callErr(t, apps, "install", "Failed to install app 'never'", with(testApp("hang"), "app_id", "never", "timeout", 0.5))
	for _, id := range ids(asList(t, call(t, apps, "list_apps"))) {
		if id == "never" {
			t.Fatal("app 'never' stayed installed")
		}
	}
}

func TestInstallValidation(t *testing.T) {
	_, _, _, apps, _ := setup(t)
	files := []any{map[string]any{"path": "main.txt", "content": "x"}}
	for _, tc := range []struct {
		name string
		kw   rpc.Kwargs
		want string
	}{
		{"unknown type", rpc.Kwargs{"manifest": map[string]any{"type": "nope", "entry_point": "main.txt"}, "files": files}, "no worker for type nope"},
		{"no type", rpc.Kwargs{"manifest": map[string]any{"entry_point": "main.txt"}, "files": files}, "Application type should not be application"},
		{"application type", rpc.Kwargs{"manifest": map[string]any{"type": "application", "entry_point": "main.txt"}, "files": files}, "Application type should not be application"},
		{"bad field", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt", "daemon": "yes"}, "files": files}, "field daemon must be a bool"},
		{"services", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt", "services": []any{}}, "files": files}, "Services and service_ids fields are not allowed"},
		{"missing entry", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.py"}, "files": files}, `the entry point "main.py" is not among the app's files`},
		{"dotdot", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt"}, "files": append(files, map[string]any{"path": "../evil.txt", "content": "x"})}, "invalid file path"},
		{"inner dotdot", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt"}, "files": append(files, map[string]any{"name": "a/../../evil.txt", "content": "x"})}, "invalid file path"},
		{"absolute", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt"}, "files": append(files, map[string]any{"path": "/etc/evil", "content": "x"})}, "invalid file path"},
		{"entry dotdot", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "../x"}, "source": "print(1)"}, "invalid file path"},
		{"bad app id", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt"}, "files": files, "app_id": "a/b"}, "is not a valid string"},
		{"bad base64", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt"}, "files": append(files, map[string]any{"path": "b.bin", "content": "!!", "format": "base64"})}, "Failed to decode base64"},
		{"unknown kwarg", rpc.Kwargs{"manifest": map[string]any{"type": "test-app"}, "bogus": 1}, `unexpected keyword argument "bogus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			callErr(t, apps, "install", tc.want, with(tc.kw, "stage", true))
		})
	}
	if l := asList(t, call(t, apps, "list_apps")); len(l) != 0 {
		t.Fatalf("failed installs left apps: %v", l)
	}
	// An existing app is only replaced with overwrite.
	call(t, apps, "install", with(testApp(""), "app_id", "dup", "stage", true))
	callErr(t, apps, "install", "already exists", with(testApp(""), "app_id", "dup", "stage", true))
	call(t, apps, "install", with(testApp(""), "app_id", "dup", "stage", true, "overwrite", true))
}

func TestInstallSourceAndFormats(t *testing.T) {
	s, _, _, apps, _ := setup(t)
	ctx := testserver.Ctx(t)
	m := asMap(t, call(t, apps, "install", rpc.Kwargs{
		"source":   "print('hi')",
		"manifest": map[string]any{"type": "test-app", "entry_point": "main.py"},
		"files": []any{
			map[string]any{"path": "data/config.json", "content": map[string]any{"a": int64(1)}, "format": "json"},
			map[string]any{"name": "img.bin", "content": "data:application/octet-stream;base64,AAEC", "format": "base64"},
		},
		"app_id": "src",
	}))
	if h, _ := m["source_hash"].(string); !strings.HasPrefix(h, "Qm") {
		t.Fatalf("source_hash = %v", m["source_hash"])
	}
	tok := userToken(t, s, "alice")
	base := s.URL() + "/" + aliceWS + "/artifacts/src/files/"
	if body, err := httpGet(ctx, base+"main.py", tok); err != nil || body != "print('hi')" {
		t.Fatalf("main.py = %q, %v", body, err)
	}
	if body, err := httpGet(ctx, base+"data/config.json", tok); err != nil || !strings.Contains(body, `"a": 1`) {
		t.Fatalf("config.json = %q, %v", body, err)
	}
	if body, err := httpGet(ctx, base+"img.bin", tok); err != nil || body != "\x00\x01\x02" {
		t.Fatalf("img.bin = %q, %v", body, err)
	}
	if v := call(t, apps, "read_file", "src", "data/config.json", "json"); asMap(t, v)["a"] != int64(1) {
		t.Fatalf("read_file json = %v", v)
	}
}

func TestProgressCallbackFailureIsHarmless(t *testing.T) {
	_, _, _, apps, _ := setup(t)
	cb := func(map[string]any) error { return errors.New("callback broke") }
	call(t, apps, "install", with(testApp(""), "app_id", "cb", "progress_callback", cb))
	info := asMap(t, call(t, apps, "start", "cb", rpc.Kwargs{"progress_callback": cb}))
	call(t, apps, "stop", info["id"])
}

// TestWorkerDisconnectFailsSessions: a worker that goes takes its sessions
// down. They used to be dropped ("not found" afterwards); now they fail
// with the reason, and their last logs stay readable from the controller.
func TestWorkerDisconnectFailsSessions(t *testing.T) {
	_, w, _, apps, _ := setup(t)
	call(t, apps, "install", with(testApp(""), "app_id", "app"))
	info := asMap(t, call(t, apps, "start", "app"))
	if l := asList(t, call(t, apps, "list_running")); len(l) != 1 {
		t.Fatalf("list_running = %v", l)
	}
	nstops := len(w.stops())
	w.client.Close()
	testserver.WaitFor(t, 5*time.Second, "the session to go", func() bool {
		return len(asList(t, call(t, apps, "list_running"))) == 0
	})
	if len(w.stops()) != nstops {
		t.Fatalf("stop was called on a dead worker")
	}
	rec := asMap(t, call(t, apps, "get_session_info", info["id"]))
	if rec["status"] != "failed" || !strings.Contains(fmt.Sprint(rec["error"]), "worker "+aliceWS+"/test-worker-client disconnected") {
		t.Fatalf("record after the worker left = %v", rec)
	}
	logs := asMap(t, call(t, apps, "get_logs", info["id"]))
	if logs["cached"] != true || !strings.Contains(fmt.Sprint(logs["items"]), "app running") {
		t.Fatalf("logs after the worker left = %v", logs)
	}
	// The worker may come back with the session still running: stop
	// (which used to forget the record, leaving such a process unadopted)
	// is pending until then, without calling anyone now.
	if r := asMap(t, call(t, apps, "stop", info["id"])); r["stop_pending"] != true {
		t.Fatalf("stop while the worker is away = %v", r)
	}
	if len(w.stops()) != nstops {
		t.Fatalf("stop was called on a dead worker")
	}
	rec = asMap(t, call(t, apps, "get_session_info", info["id"]))
	if rec["stop_pending"] != true || !strings.Contains(fmt.Sprint(rec["reason"]), "stop requested while its worker was away") {
		t.Fatalf("record after a stop while the worker is away = %v", rec)
	}
}

func TestAppDisconnectStopsSession(t *testing.T) {
	_, w, alice, apps, _ := setup(t)
	ctx := testserver.Ctx(t)
	call(t, apps, "install", with(testApp(""), "app_id", "app"))
	info := asMap(t, call(t, apps, "start", "app"))
	sid := info["id"].(string)
	ws, err := alice.GetService(ctx, w.id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Call(ctx, "kill", sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 5*time.Second, "the session to be stopped", func() bool {
		return len(asList(t, call(t, apps, "list_running"))) == 0 && slices.Contains(w.stops(), sid)
	})

	// worker_managed sessions survive their client's disconnection.
	kw := testApp("")
	kw["manifest"].(map[string]any)["worker_managed"] = true
	call(t, apps, "install", with(kw, "app_id", "managed"))
	info = asMap(t, call(t, apps, "start", "managed"))
	sid = info["id"].(string)
	if _, err := ws.Call(ctx, "kill", sid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if l := ids(asList(t, call(t, apps, "list_running"))); !slices.Equal(l, []string{sid}) {
		t.Fatalf("worker_managed session gone: %v", l)
	}
	call(t, apps, "stop", sid)
}

func TestWorkspaceIsolation(t *testing.T) {
	s, _, _, apps, _ := setup(t)
	ctx := testserver.Ctx(t)
	call(t, apps, "install", with(testApp(""), "app_id", "secret-app"))
	info := asMap(t, call(t, apps, "start", "secret-app"))
	sid := info["id"].(string)

	bob := connectUser(t, s, "bob", "bob-client")
	bapps := appsService(t, bob)
	if l := asList(t, call(t, bapps, "list_apps")); len(l) != 0 {
		t.Fatalf("bob sees apps: %v", l)
	}
	if l := asList(t, call(t, bapps, "list_running")); len(l) != 0 {
		t.Fatalf("bob sees sessions: %v", l)
	}
	for _, fn := range []string{"get_logs", "stop", "get_session_info"} {
		callErr(t, bapps, fn, "Permission denied", sid)
	}
	callErr(t, bapps, "get_app_info", "Permission denied", aliceWS+"/secret-app")
	callErr(t, bapps, "uninstall", "Permission denied", aliceWS+"/secret-app")
	callErr(t, bapps, "start", "App not found", "secret-app")
	if l := asList(t, call(t, bapps, "list_workers")); len(l) != 0 {
		t.Fatalf("bob sees alice's protected worker: %v", l)
	}
	am, err := bob.GetService(ctx, "public/artifact-manager")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := am.Call(ctx, "get_file", aliceWS+"/secret-app", "main.txt"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("bob's get_file: %v", err)
	}
	code, _, err := httpDo(ctx, s.URL()+"/"+aliceWS+"/artifacts/secret-app/files/main.txt", userToken(t, s, "bob"))
	if err != nil || code != 403 {
		t.Fatalf("bob's HTTP read: %d %v", code, err)
	}
	// Bob cannot use alice's worker for his own app either.
	callErr(t, bapps, "install", "no worker for type", with(testApp(""), "app_id", "bobs", "stage", true))
	// Alice's session is untouched; root may act anywhere.
	root := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "root-client", NoReconnect: true})
	rapps := appsService(t, root)
	if si := asMap(t, call(t, rapps, "get_session_info", sid)); si["id"] != sid {
		t.Fatalf("root get_session_info = %v", si)
	}
	call(t, rapps, "stop", sid)
	if l := asList(t, call(t, apps, "list_running")); len(l) != 0 {
		t.Fatalf("root's stop did not stop: %v", l)
	}
}

func TestPublicWorkerAndListWorkers(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	pw := newTestWorker(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public", ClientID: "public-worker"}, "public")
	bob := connectUser(t, s, "bob", "bob-client")
	bapps := appsService(t, bob)
	l := asList(t, call(t, bapps, "list_workers"))
	if len(l) != 1 || asMap(t, l[0])["id"] != pw.id || asMap(t, l[0])["visibility"] != "public" {
		t.Fatalf("list_workers = %v", l)
	}
	if got := asList(t, call(t, bapps, "list_workers", "other-type")); len(got) != 0 {
		t.Fatalf("list_workers(other-type) = %v", got)
	}
	call(t, bapps, "install", with(testApp(""), "app_id", "pub"))
	info := asMap(t, call(t, bapps, "start", "pub"))
	if info["worker_id"] != pw.id {
		t.Fatalf("worker_id = %v, want %v", info["worker_id"], pw.id)
	}
	call(t, bapps, "stop", info["id"])

	// A worker in bob's own workspace takes precedence over public ones.
	own := newTestWorker(t, s, rpc.Config{Token: userToken(t, s, "bob"), ClientID: "bob-worker"}, "protected")
	info = asMap(t, call(t, bapps, "start", "pub"))
	if info["worker_id"] != own.id {
		t.Fatalf("worker_id = %v, want bob's own %v", info["worker_id"], own.id)
	}
	call(t, bapps, "stop", info["id"])
	// An explicit worker id wins.
	info = asMap(t, call(t, bapps, "start", "pub", rpc.Kwargs{"worker_id": pw.id}))
	if info["worker_id"] != pw.id {
		t.Fatalf("explicit worker_id = %v", info["worker_id"])
	}
	call(t, bapps, "stop", info["id"])
	callErr(t, bapps, "start", "Worker ID must be in format", "pub", rpc.Kwargs{"worker_id": "nope"})
	if l := asList(t, call(t, bapps, "list_workers")); len(l) != 2 {
		t.Fatalf("list_workers = %v", l)
	}
}

func TestRestartPersistence(t *testing.T) {
	dir := t.TempDir()
	s1 := testserver.Start(t, server.Config{DataDir: dir, JWTSecret: "persist"})
	w := newTestWorker(t, s1, rpc.Config{Token: userToken(t, s1, "alice")}, "protected")
	alice := connectUser(t, s1, "alice", "alice-client")
	apps := appsService(t, alice)
	call(t, apps, "install", with(testApp(""), "app_id", "keep"))
	call(t, apps, "install", with(testApp(""), "app_id", "staged", "stage", true))
	before := asList(t, call(t, apps, "list_apps"))
	alice.Close()
	w.closeApps()
	w.client.Close()
	s1.Close()
	// Leftovers of an interrupted write are cleaned up on load.
	if err := os.MkdirAll(filepath.Join(dir, "apps", aliceWS, ".tmp-half-abc", "files"), 0o755); err != nil {
		t.Fatal(err)
	}

	s2 := testserver.Start(t, server.Config{DataDir: dir, JWTSecret: "persist"})
	alice2 := connectUser(t, s2, "alice", "alice-client")
	after := asList(t, call(t, appsService(t, alice2), "list_apps"))
	if !slices.Equal(ids(after), []string{"keep", "staged"}) || len(before) != len(after) {
		t.Fatalf("apps after restart = %v, before %v", ids(after), ids(before))
	}
	for i := range after {
		a, b := asMap(t, after[i]), asMap(t, before[i])
		if a["name"] != b["name"] || a["type"] != b["type"] || fmt.Sprint(a["services"]) != fmt.Sprint(b["services"]) {
			t.Errorf("app %v changed across restart: %v vs %v", a["id"], a, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "apps", aliceWS, ".tmp-half-abc")); !os.IsNotExist(err) {
		t.Fatalf("temporary directory not cleaned: %v", err)
	}
	body, err := httpGet(testserver.Ctx(t), s2.URL()+"/"+aliceWS+"/artifacts/keep/files/main.txt", userToken(t, s2, "alice"))
	if err != nil || body != "hello from main" {
		t.Fatalf("file after restart = %q, %v", body, err)
	}
}

func TestFilesHTTPAndArtifactManager(t *testing.T) {
	s, w, alice, apps, _ := setup(t)
	ctx := testserver.Ctx(t)
	call(t, apps, "install", rpc.Kwargs{
		"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt"},
		"files": []any{
			map[string]any{"path": "main.txt", "content": "hello from main"},
			map[string]any{"path": "sub/dir/x.js", "content": "let x = 1"},
		},
		"app_id": "files",
	})
	base := s.URL() + "/" + aliceWS + "/artifacts/files/files/"
	tok := userToken(t, s, "alice")

	check := func(rawURL, token string, want int) string {
		t.Helper()
		code, body, err := httpDo(ctx, rawURL, token)
		if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("GET %s: %d %s, want %d", rawURL, code, body, want)
		}
		return body
	}
	check(base+"main.txt", "", 401)
	check(base+"main.txt", "not-a-token", 401)
	check(base+"main.txt", userToken(t, s, "mallory"), 403)
	if b := check(base+"main.txt", tok, 200); b != "hello from main" {
		t.Fatalf("main.txt = %q", b)
	}
	check(base+"nope.txt", tok, 404)
	check(s.URL()+"/"+aliceWS+"/artifacts/missing/files/main.txt", tok, 404)
	check(base+"..%2F..%2F..%2Fmanifest.json", tok, 400)
	check(base+"sub%2F..%2F..%2Fmanifest.json", tok, 400)
	if code, body, _ := httpDo(ctx, base+"../manifest.json", tok); code == 200 {
		t.Fatalf("traversal served: %s", body)
	}
	if b := check(base+"sub", tok, 200); !strings.Contains(b, `"name":"dir"`) || !strings.Contains(b, `"type":"directory"`) {
		t.Fatalf("directory listing = %s", b)
	}

	// The app's own session token reads its files (the test worker reads
	// the entry file with it during start, see its logs).
	info := asMap(t, call(t, apps, "start", "files"))
	cfg, _ := w.lastConfig()
	if b := check(base+"sub/dir/x.js", cfg["token"].(string), 200); b != "let x = 1" {
		t.Fatalf("x.js with the app token = %q", b)
	}
	call(t, apps, "stop", info["id"])

	am, err := alice.GetService(ctx, "public/artifact-manager")
	if err != nil {
		t.Fatal(err)
	}
	u, err := am.Call(ctx, "get_file", "files", rpc.Kwargs{"file_path": "sub/dir/x.js"})
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(u.(string))
	if err != nil || !strings.HasPrefix(u.(string), base+"sub/dir/x.js?token=") {
		t.Fatalf("get_file url = %v", u)
	}
	if b := check(pu.String(), "", 200); b != "let x = 1" {
		t.Fatalf("get_file URL body = %q", b)
	}
	if _, err := am.Call(ctx, "get_file", aliceWS+"/files", "nope.txt"); err == nil || !strings.Contains(err.Error(), "File not found") {
		t.Fatalf("get_file missing: %v", err)
	}
	l, err := am.Call(ctx, "list_files", aliceWS+"/files")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range asList(t, l) {
		m := asMap(t, e)
		names = append(names, m["name"].(string)+":"+m["type"].(string))
	}
	if !slices.Equal(names, []string{"main.txt:file", "sub:directory"}) {
		t.Fatalf("list_files = %v", names)
	}
	l, err = am.Call(ctx, "list_files", "files", rpc.Kwargs{"dir_path": "sub/dir"})
	if err != nil || len(asList(t, l)) != 1 || asMap(t, asList(t, l)[0])["size"] != int64(9) {
		t.Fatalf("list_files(sub/dir) = %v, %v", l, err)
	}
	if _, err := am.Call(ctx, "list_files", "files", rpc.Kwargs{"dir_path": "../.."}); err == nil {
		t.Fatal("list_files with .. succeeded")
	}
}

// Closing the server does not stop the sessions (a worker that outlives
// the server keeps them, to be re-adopted); it records them in the data
// dir. After a restart whose worker does not come back, a session shows
// stopped because the server restarted, with its last logs. (Before issue
// 7 the server stopped every session at close.)
func TestRestartKeepsSessionRecords(t *testing.T) {
	dir := t.TempDir()
	s1 := testserver.Start(t, server.Config{DataDir: dir, JWTSecret: "persist"})
	w := newTestWorker(t, s1, rpc.Config{Token: userToken(t, s1, "alice")}, "protected")
	alice := connectUser(t, s1, "alice", "alice-client")
	apps := appsService(t, alice)
	call(t, apps, "install", with(testApp(""), "app_id", "app"))
	info := asMap(t, call(t, apps, "start", "app"))
	sid := info["id"].(string)
	cfg, _ := w.lastConfig()
	alice.Close()
	s1.Close()
	if slices.Contains(w.stops(), sid) {
		t.Fatalf("server close stopped the session %s; it must survive for re-adoption", sid)
	}
	rec := filepath.Join(dir, "sessions", aliceWS, strings.TrimPrefix(sid, aliceWS+"/")+".json")
	st, err := os.Stat(rec)
	if err != nil {
		t.Fatalf("no session record: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("session record mode %v, want 0600", st.Mode().Perm())
	}
	if dst, err := os.Stat(filepath.Dir(rec)); err != nil || dst.Mode().Perm() != 0o700 {
		t.Fatalf("session folder: %v %v", dst, err)
	}
	b, _ := os.ReadFile(rec)
	if tok, _ := cfg["token"].(string); tok == "" || strings.Contains(string(b), tok) {
		t.Fatalf("the session record holds the app's token (or the test has none): %s", b)
	}
	w.closeApps()
	w.client.Close() // the worker does not come back

	s2 := testserver.Start(t, server.Config{DataDir: dir, JWTSecret: "persist"})
	apps2 := appsService(t, connectUser(t, s2, "alice", "alice-client"))
	got := asMap(t, call(t, apps2, "get_session_info", sid))
	if got["status"] != "stopped" || !strings.Contains(fmt.Sprint(got["reason"]), "the server restarted") || got["ended_at"] == nil {
		t.Fatalf("session after restart = %v", got)
	}
	if got["app_id"] != "app" || got["worker_id"] != info["worker_id"] {
		t.Fatalf("record changed across the restart: %v vs %v", got, info)
	}
	if slices.Contains(ids(asList(t, call(t, apps2, "list_running"))), sid) {
		t.Fatalf("list_running lists %s after the restart", sid)
	}
	logs := asMap(t, call(t, apps2, "get_logs", sid))
	if logs["cached"] != true || !strings.Contains(fmt.Sprint(logs["items"]), "app running") {
		t.Fatalf("logs after restart = %v", logs)
	}
	// The session may still run at its worker if that worker comes back:
	// stop (which used to forget the record, leaving such a process
	// unadopted) is pending, and the pending stop is recorded on disk and
	// survives another restart.
	if r := asMap(t, call(t, apps2, "stop", sid)); r["stop_pending"] != true {
		t.Fatalf("stop of a session awaiting its worker = %v", r)
	}
	testserver.WaitFor(t, 10*time.Second, "the pending stop on disk", func() bool {
		b, _ := os.ReadFile(rec)
		return strings.Contains(string(b), `"stop_on_return":true`)
	})
	s2.Close()
	s3 := testserver.Start(t, server.Config{DataDir: dir, JWTSecret: "persist"})
	apps3 := appsService(t, connectUser(t, s3, "alice", "alice-client"))
	got = asMap(t, call(t, apps3, "get_session_info", sid))
	if got["stop_pending"] != true || !strings.Contains(fmt.Sprint(got["reason"]), "stop requested while its worker was away") {
		t.Fatalf("session after a second restart = %v", got)
	}
}

// TestAPISchemaListsParameters: the controller's functions declare their
// parameters, so that a client (or an HTTP user) sees them in the schema.
func TestAPISchemaListsParameters(t *testing.T) {
	_, _, _, apps, _ := setup(t)
	for fn, want := range map[string]string{"start": "app_id", "get_logs": "follower", "edit_file": "file_content", "stop": "raise_exception"} {
		f := apps.Func(fn)
		if f == nil {
			t.Fatalf("server-apps has no %s", fn)
		}
		if s := fmt.Sprint(f.Schema()); !strings.Contains(s, want) {
			t.Errorf("%s's schema lacks %q: %s", fn, want, s)
		}
	}
}
