package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// The attacks of issue 6 on workers and on the apps controller, against the
// real embedded server, the real process worker and real python3 apps.

// sleeperApp writes its marker (the GREETING variable, or "ran") and then
// sleeps, printing the SECRET it was given.
func sleeperApp(marker string) string {
	return fmt.Sprintf(`import os, time
with open(%q, "w") as f:
    f.write(os.environ.get("GREETING", "ran"))
print("secret", os.environ.get("SECRET"), flush=True)
time.sleep(600)
`, marker)
}

// hostileSystem is a server with apps, the built-in process worker
// registered in public as the embedded server does, alice (owner of
// ws-user-alice), a read-only member of alice's workspace, and bob.
type hostileSystem struct {
	s                  *server.Server
	reg                *Registered
	dir                string // markers
	alice, reader, bob *rpc.Client
}

func newHostileSystem(t *testing.T) *hostileSystem {
	t.Helper()
	needPython(t)
	// The apps write their markers as the app user: a folder anyone may
	// write to (sticky, like /tmp).
	markers := testserver.SharedTempDir(t)
	if err := os.Chmod(markers, 0o1777); err != nil {
		t.Fatal(err)
	}
	hs := &hostileSystem{s: testserver.Start(t, server.Config{DataDir: t.TempDir()}), dir: markers}
	wc := publicRoot(t, hs.s, "builtin-process-worker")
	reg, err := Register(ctxT(t), wc, Options{WorkDir: testserver.SharedTempDir(t)}, hyphaworker.Options{Visibility: "public", UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	hs.reg = reg
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := reg.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	hs.alice = hs.user(t, "alice")
	hs.bob = hs.user(t, "bob")
	readTok, err := hs.alice.GenerateToken(ctxT(t), rpc.TokenConfig{Permission: "read"})
	if err != nil {
		t.Fatal(err)
	}
	hs.reader = testserver.Connect(t, hs.s, rpc.Config{Token: readTok, ClientID: "alice-reader", Workspace: "ws-user-alice"})
	return hs
}

func (hs *hostileSystem) user(t *testing.T, id string) *rpc.Client {
	t.Helper()
	tok, err := hs.s.Issuer().Generate(&auth.UserInfo{ID: id, Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-" + id}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testserver.Connect(t, hs.s, rpc.Config{Token: tok, ClientID: id + "-client"})
}

func service(t *testing.T, c *rpc.Client, id string) *rpc.RemoteService {
	t.Helper()
	svc, err := c.GetService(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func (hs *hostileSystem) marker(name string) string { return filepath.Join(hs.dir, name) }

// install stores a sleeper app (without the verification run) in the
// caller's workspace.
func (hs *hostileSystem) install(t *testing.T, c *rpc.Client, appID string, env map[string]any, extra ...map[string]any) {
	t.Helper()
	manifest := map[string]any{"type": TypePython, "name": appID, "entry_point": "main.py"}
	if env != nil {
		manifest["env"] = env
	}
	for _, e := range extra {
		for k, v := range e {
			manifest[k] = v
		}
	}
	if _, err := service(t, c, "public/server-apps").Call(ctxT(t), "install", rpc.Kwargs{
		"app_id": appID, "manifest": manifest, "stage": true,
		"files": []any{map[string]any{"path": "main.py", "content": sleeperApp(hs.marker(appID))}},
	}); err != nil {
		t.Fatalf("install %s: %v", appID, err)
	}
}

// start starts an app's staged version (install stored it staged, so that
// no trial start wrote its marker) detached and waits for its marker.
func (hs *hostileSystem) start(t *testing.T, c *rpc.Client, appID string, extra rpc.Kwargs) string {
	t.Helper()
	kw := rpc.Kwargs{"wait_for_service": false, "timeout": 20.0, "stage": true}
	for k, v := range extra {
		kw[k] = v
	}
	v, err := service(t, c, "public/server-apps").Call(ctxT(t), "start", appID, kw)
	if err != nil {
		t.Fatalf("start %s: %v", appID, err)
	}
	testserver.WaitFor(t, 20*time.Second, "the marker of "+appID, func() bool {
		_, err := os.Stat(hs.marker(appID))
		return err == nil
	})
	return v.(map[string]any)["id"].(string)
}

// mustRun fails unless session sid's process is alive and the controller
// lists it as running.
func (hs *hostileSystem) mustRun(t *testing.T, sid string) {
	t.Helper()
	pid := procOf(t, hs.reg.Worker, sid).pid
	if !alive(pid) {
		t.Fatalf("the process of %s (pid %d) is gone", sid, pid)
	}
	info, err := service(t, hs.alice, "public/server-apps").Call(ctxT(t), "get_session_info", sid)
	if err != nil || info.(map[string]any)["status"] != "running" {
		t.Fatalf("session %s: %v, %v", sid, info, err)
	}
}

func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error containing %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: err = %v, want it to contain %q", what, err, p)
		}
	}
}

// TestHostileAnonymousStartOnBuiltinWorker: the built-in worker registered
// in public with visibility public. An anonymous client (websocket and
// HTTP) and a logged-in user of another workspace call start with a config
// pointing at the attacker's file server: refused, the attacker's server is
// never asked for the script, no session and no marker.
func TestHostileAnonymousStartOnBuiltinWorker(t *testing.T) {
	hs := newHostileSystem(t)
	ctx := ctxT(t)
	marker := hs.marker("pwned")
	evil := newAppServer(t, map[string]string{"main.py": sleeperApp(marker)})
	anon := testserver.Connect(t, hs.s, rpc.Config{ClientID: "anon"})
	for name, c := range map[string]*rpc.Client{"anonymous": anon, "bob": hs.bob, "alice": hs.alice, "read-only member": hs.reader} {
		svc := service(t, c, "public/process-worker")
		for _, ws := range []string{c.Info().Workspace, "ws-user-alice", "public"} {
			cfg := wireConfig(evil.base(), ws, "evil", TypePython, "main.py")
			_, err := svc.Call(ctx, "start", cfg, rpc.Kwargs{"context": map[string]any{"ws": "public", "user": map[string]any{"id": "root"}}})
			wantErr(t, name+" websocket start in "+ws, err, "start: permission denied", "only the server's apps controller or root")
		}
	}
	bobTok, err := hs.s.Issuer().Generate(&auth.UserInfo{ID: "bob", Roles: []string{}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"anonymous": "", "bob": bobTok} {
		body, _ := json.Marshal(map[string]any{"config": wireConfig(evil.base(), "public", "evil-http", TypePython, "main.py")})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			testserver.ServiceURL(hs.s, "public", "builtin-process-worker:process-worker/start", nil), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(msg), "permission denied") {
			t.Fatalf("%s HTTP start: %d %s", name, resp.StatusCode, msg)
		}
	}
	if n := evil.hits.Load(); n != 0 {
		t.Fatalf("the attacker's file server was asked %d times", n)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the attacker's script ran: %v", err)
	}
	if n := hs.reg.Worker.Sessions.Len(); n != 0 {
		t.Fatalf("%d sessions on the worker", n)
	}
}

// TestHostileReadOnlyAndForeignCallers: a read-only member of alice's
// workspace and bob (another workspace) try every function of the
// controller and of the worker on alice's running session: everything but
// reading (for the member) is refused and the session keeps running.
func TestHostileReadOnlyAndForeignCallers(t *testing.T) {
	hs := newHostileSystem(t)
	ctx := ctxT(t)
	hs.install(t, hs.alice, "sleeper", map[string]any{"SECRET": "alice-secret"})
	hs.install(t, hs.alice, "idle", nil)
	sid := hs.start(t, hs.alice, "sleeper", nil)

	rApps := service(t, hs.reader, "public/server-apps")
	rw := "needs read_write permission on workspace ws-user-alice"
	_, err := rApps.Call(ctx, "start", "idle", rpc.Kwargs{"wait_for_service": false})
	wantErr(t, "reader start", err, "Permission denied", rw)
	_, err = rApps.Call(ctx, "stop", sid)
	wantErr(t, "reader stop", err, "Permission denied", rw)
	_, err = rApps.Call(ctx, "uninstall", "sleeper")
	wantErr(t, "reader uninstall", err, "Permission denied", rw)
	_, err = rApps.Call(ctx, "commit_app", "idle")
	wantErr(t, "reader commit_app", err, "Permission denied", rw)
	_, err = rApps.Call(ctx, "install", rpc.Kwargs{"app_id": "x", "manifest": map[string]any{"type": TypePython, "entry_point": "main.py"},
		"files": []any{map[string]any{"path": "main.py", "content": "print(1)"}}, "stage": true})
	wantErr(t, "reader install", err, "Permission denied", rw)
	if _, err := rApps.Call(ctx, "get_logs", sid); err != nil {
		t.Fatalf("reader get_logs: %v", err)
	}
	// A follower holds the app back when it reads slowly: a reader may
	// long-poll but not hold.
	if _, err := rApps.Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 0, "wait": 0.1}); err != nil {
		t.Fatalf("reader get_logs wait: %v", err)
	}
	_, err = rApps.Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 0, "follower": "reader-1"})
	wantErr(t, "reader get_logs follower", err, "Permission denied", rw)
	if _, err := service(t, hs.alice, "public/server-apps").Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 0, "follower": "alice-1"}); err != nil {
		t.Fatalf("owner get_logs follower: %v", err)
	}
	// Bad follow arguments are refused with the worker's reason, not
	// answered from the controller's cache of the last logs.
	for field, kw := range map[string]rpc.Kwargs{
		"wait: want non-negative":          {"wait": -1.0},
		"follower: want string of at most": {"follower": strings.Repeat("f", 100000)},
		"follower: want printable":         {"follower": "bad id"},
	} {
		_, err := service(t, hs.alice, "public/server-apps").Call(ctx, "get_logs", sid, kw)
		wantErr(t, "owner get_logs with a bad follow argument", err, "get_logs", field)
	}
	if _, err := rApps.Call(ctx, "get_session_info", sid); err != nil {
		t.Fatalf("reader get_session_info: %v", err)
	}
	if list, err := rApps.Call(ctx, "list_running"); err != nil || len(list.([]any)) != 1 {
		t.Fatalf("reader list_running: %v, %v", list, err)
	}

	bApps := service(t, hs.bob, "public/server-apps")
	bAM := service(t, hs.bob, "public/artifact-manager")
	ro := "needs read permission on workspace ws-user-alice"
	for _, c := range []struct {
		svc  *rpc.RemoteService
		fn   string
		args []any
		want string
	}{
		{bApps, "stop", []any{sid}, rw},
		{bApps, "get_logs", []any{sid}, ro},
		{bApps, "get_session_info", []any{sid}, ro},
		{bApps, "get_app_info", []any{"ws-user-alice/sleeper"}, ro},
		{bApps, "read_file", []any{"ws-user-alice/sleeper", "main.py"}, ro},
		{bApps, "list_files", []any{"ws-user-alice/sleeper"}, ro},
		{bApps, "uninstall", []any{"ws-user-alice/sleeper"}, rw},
		{bApps, "commit_app", []any{"ws-user-alice/sleeper"}, rw},
		{bAM, "get_file", []any{"ws-user-alice/sleeper", "main.py"}, ro},
		{bAM, "list_files", []any{"ws-user-alice/sleeper"}, ro},
	} {
		_, err := c.svc.Call(ctx, c.fn, c.args...)
		wantErr(t, "bob "+c.fn, err, "Permission denied", c.want)
	}
	_, err = bApps.Call(ctx, "start", "ws-user-alice/sleeper", rpc.Kwargs{"wait_for_service": false})
	wantErr(t, "bob start of alice's app", err, "not in workspace ws-user-bob")
	if list, err := bApps.Call(ctx, "list_running"); err != nil || len(list.([]any)) != 0 {
		t.Fatalf("bob list_running: %v, %v", list, err)
	}

	// Straight to the worker: even alice may not drive the shared worker.
	for name, c := range map[string]*rpc.Client{"reader": hs.reader, "bob": hs.bob, "alice": hs.alice} {
		w := service(t, c, "public/process-worker")
		for _, call := range []struct {
			fn   string
			args []any
		}{
			{"stop", []any{sid}}, {"close_workspace", []any{"ws-user-alice"}}, {"close_workspace", nil},
			{"list_sessions", nil}, {"list_sessions", []any{"ws-user-alice"}}, {"get_logs", []any{sid}},
			{"get_session_info", []any{sid}}, {"shutdown", nil}, {"prepare_workspace", []any{"ws-user-alice"}},
		} {
			_, err := w.Call(ctx, call.fn, call.args...)
			wantErr(t, name+" worker "+call.fn, err, call.fn+": permission denied")
		}
	}
	hs.mustRun(t, sid)
}

// TestHostileSelectionModeCallsWorker: worker_selection_mode may only make
// the controller call a listed load function; select:first_success:shutdown
// and friends are refused before any worker is called, and the shared
// worker keeps serving.
func TestHostileSelectionModeCallsWorker(t *testing.T) {
	hs := newHostileSystem(t)
	ctx := ctxT(t)
	hs.install(t, hs.alice, "sleeper", nil)
	hs.install(t, hs.alice, "second", nil)
	sid := hs.start(t, hs.alice, "sleeper", nil)
	aApps := service(t, hs.alice, "public/server-apps")
	for _, mode := range []string{"select:first_success:shutdown", "select:min:stop", "select:max:close_workspace",
		"select:first_success:start", "select:first_success:get_logs", "select:first_success:list_sessions"} {
		_, err := aApps.Call(ctx, "start", "second", rpc.Kwargs{"worker_selection_mode": mode, "wait_for_service": false, "stage": true})
		wantErr(t, "start with "+mode, err, "Permission denied", "select: may only call get_load")
		_, err = aApps.Call(ctx, "install", rpc.Kwargs{"app_id": "third", "worker_selection_mode": mode, "stage": true,
			"manifest": map[string]any{"type": TypePython, "entry_point": "main.py"},
			"files":    []any{map[string]any{"path": "main.py", "content": "print(1)"}}})
		wantErr(t, "install with "+mode, err, "Permission denied", "select: may only call get_load")
	}
	hs.mustRun(t, sid)
	// The worker still serves: a start with an allowed select mode works
	// (no worker answers get_load, so one is picked at random).
	sid2 := hs.start(t, hs.alice, "second", rpc.Kwargs{"worker_selection_mode": "select:min:get_load"})
	hs.mustRun(t, sid2)
}

// TestHostileAdditionalKwargsRewriteTrust: additional_kwargs (on start, on
// install, in the manifest's startup_config) may not set any key the
// controller sets; the attack that ran alice's start as bob's app with
// bob's files (and so bob's manifest env secret) is refused, no session is
// started; env may still be added.
func TestHostileAdditionalKwargsRewriteTrust(t *testing.T) {
	hs := newHostileSystem(t)
	ctx := ctxT(t)
	hs.install(t, hs.bob, "bob-app", map[string]any{"SECRET": "bob-secret"})
	hs.install(t, hs.alice, "mine", nil)
	aApps := service(t, hs.alice, "public/server-apps")
	bobFiles := hs.s.URL() + "/ws-user-bob/artifacts/bob-app/files"
	attacks := map[string]map[string]any{
		"bob's identity": {"workspace": "ws-user-bob", "app_id": "bob-app", "artifact_id": "ws-user-bob/bob-app",
			"id": "ws-user-bob/_rapp_x__rlb", "client_id": "_rapp_x__rlb", "app_files_base_url": bobFiles,
			"manifest": map[string]any{"type": TypePython, "entry_point": "main.py", "env": map[string]any{"SECRET": "x"}}},
	}
	values := map[string]any{"timeout": 1.0, "disable_ssl": true, "progress_callback": nil, "manifest": map[string]any{},
		"context": map[string]any{"ws": "ws-user-bob"}, "user": map[string]any{"id": "root"}}
	for _, k := range apps.ControllerConfigKeys {
		v, ok := values[k]
		if !ok {
			v = "forged-" + k
		}
		attacks["key "+k] = map[string]any{k: v}
	}
	for name, ak := range attacks {
		_, err := aApps.Call(ctx, "start", "mine", rpc.Kwargs{"additional_kwargs": ak, "wait_for_service": false, "stage": true})
		wantErr(t, "start with additional_kwargs "+name, err, "Permission denied", "additional_kwargs may not set")
	}
	_, err := aApps.Call(ctx, "install", rpc.Kwargs{"app_id": "forged", "additional_kwargs": map[string]any{"token": "x"}, "stage": true,
		"manifest": map[string]any{"type": TypePython, "entry_point": "main.py"},
		"files":    []any{map[string]any{"path": "main.py", "content": "print(1)"}}})
	wantErr(t, "install with additional_kwargs.token", err, "Permission denied", `may not set "token"`)
	_, err = aApps.Call(ctx, "install", rpc.Kwargs{"app_id": "forged2", "stage": true,
		"manifest": map[string]any{"type": TypePython, "entry_point": "main.py",
			"startup_config": map[string]any{"additional_kwargs": map[string]any{"app_files_base_url": bobFiles}}},
		"files": []any{map[string]any{"path": "main.py", "content": "print(1)"}}})
	wantErr(t, "install with startup_config.additional_kwargs", err, "Permission denied", `may not set "app_files_base_url"`)
	for _, id := range []string{"forged", "forged2"} {
		if _, err := aApps.Call(ctx, "get_app_info", id); err == nil {
			t.Fatalf("%s was installed", id)
		}
	}
	if n := hs.reg.Worker.Sessions.Len(); n != 0 {
		t.Fatalf("%d sessions started by the attacks", n)
	}
	if _, err := os.Stat(hs.marker("bob-app")); !os.IsNotExist(err) {
		t.Fatalf("bob's app ran: %v", err)
	}

	// env is still allowed, and it cannot override the HYPHA_* variables.
	sid := hs.start(t, hs.alice, "mine", rpc.Kwargs{"additional_kwargs": map[string]any{"env": map[string]any{"GREETING": "hello-env"}}})
	if b, err := os.ReadFile(hs.marker("mine")); err != nil || string(b) != "hello-env" {
		t.Fatalf("marker = %q, %v", b, err)
	}
	logs, err := aApps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "stdout"})
	if err != nil || strings.Contains(fmt.Sprint(logs), "bob-secret") {
		t.Fatalf("logs = %v, %v", logs, err)
	}
}

// TestHostileMembersOfWorkerWorkspace: a process worker registered in
// alice's workspace (the controller prefers it for alice's apps). Its
// read-only member can list and read logs on the worker but not stop,
// start or close the workspace; the session keeps running; alice (admin)
// may close the workspace.
func TestHostileMembersOfWorkerWorkspace(t *testing.T) {
	hs := newHostileSystem(t)
	ctx := ctxT(t)
	awc := testserver.Connect(t, hs.s, rpc.Config{Token: func() string {
		tok, _ := hs.s.Issuer().Generate(&auth.UserInfo{ID: "alice", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-alice"}}, time.Hour)
		return tok
	}(), ClientID: "alice-worker"})
	own, err := Register(ctx, awc, Options{WorkDir: testserver.SharedTempDir(t)}, hyphaworker.Options{UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := own.Close(cctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	hs.install(t, hs.alice, "sleeper", nil)
	sid := hs.start(t, hs.alice, "sleeper", nil)
	if _, err := own.Worker.Sessions.Lookup(sid); err != nil {
		t.Fatalf("the session did not run on alice's worker: %v", err)
	}
	w := service(t, hs.reader, own.ServiceID)
	if list, err := w.Call(ctx, "list_sessions"); err != nil || len(list.([]any)) != 1 {
		t.Fatalf("member list_sessions: %v, %v", list, err)
	}
	if _, err := w.Call(ctx, "get_logs", sid); err != nil {
		t.Fatalf("member get_logs: %v", err)
	}
	_, err = w.Call(ctx, "stop", sid)
	wantErr(t, "member stop", err, "stop: permission denied", "needs read_write permission on workspace ws-user-alice")
	_, err = w.Call(ctx, "close_workspace")
	wantErr(t, "member close_workspace", err, "close_workspace: permission denied", "needs admin permission")
	_, err = w.Call(ctx, "start", wireConfig("http://127.0.0.1:9/files", "ws-user-alice", "evil", TypePython, "main.py"))
	wantErr(t, "member start", err, "start: permission denied")
	if !alive(procOf(t, own.Worker, sid).pid) {
		t.Fatal("the session's process is gone")
	}
	// alice is admin of her workspace: she may close it on her worker.
	if _, err := service(t, hs.alice, own.ServiceID).Call(ctx, "close_workspace"); err != nil {
		t.Fatalf("alice close_workspace: %v", err)
	}
	if n := own.Worker.Sessions.Len(); n != 0 {
		t.Fatalf("%d sessions after close_workspace", n)
	}
}

// TestHostileSingletonAliasAcrossWorkspaces: bob's app with the same alias
// as alice's running singleton is another app: bob's start runs his own
// session and never receives alice's session record.
func TestHostileSingletonAliasAcrossWorkspaces(t *testing.T) {
	hs := newHostileSystem(t)
	ctx := ctxT(t)
	// Each app writes its own marker: the alias is the same, the files differ.
	for _, u := range []struct {
		c  *rpc.Client
		ws string
	}{{hs.alice, "ws-user-alice"}, {hs.bob, "ws-user-bob"}} {
		if _, err := service(t, u.c, "public/server-apps").Call(ctx, "install", rpc.Kwargs{
			"app_id": "dup", "stage": true,
			"manifest": map[string]any{"type": TypePython, "name": "dup", "entry_point": "main.py", "singleton": true},
			"files":    []any{map[string]any{"path": "main.py", "content": sleeperApp(hs.marker("dup-" + u.ws))}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	start := func(c *rpc.Client) map[string]any {
		v, err := service(t, c, "public/server-apps").Call(ctx, "start", "dup", rpc.Kwargs{"wait_for_service": false, "stage": true})
		if err != nil {
			t.Fatal(err)
		}
		return v.(map[string]any)
	}
	a := start(hs.alice)
	b := start(hs.bob)
	if a["workspace"] != "ws-user-alice" || b["workspace"] != "ws-user-bob" || a["id"] == b["id"] {
		t.Fatalf("alice's session %v, bob's session %v", a["id"], b["id"])
	}
	testserver.WaitFor(t, 20*time.Second, "bob's own app", func() bool {
		_, err := os.Stat(hs.marker("dup-ws-user-bob"))
		return err == nil
	})
	// alice's singleton still returns her one instance.
	if again := start(hs.alice); again["id"] != a["id"] {
		t.Fatalf("alice's second start = %v, want %v", again["id"], a["id"])
	}
}
