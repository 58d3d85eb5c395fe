package embedded_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	appsctl "github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/process"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(process.SpawnerFunction))
}

// The servers of a restart share the JWT secret and the root token (as
// `hypha server --jwt-secret-file --root-token-file` would), so that the
// tokens of the user and of the standalone worker survive the restart.
const restartSecret = "restart-test-secret-0123456789abcdef"

// realPython is the python3 the process worker would run, resolved past
// wrappers such as a pyenv shim (the app user may not reach those when the
// tests run as root); it skips the test (fails it in CI) without python3.
func realPython(t *testing.T) string {
	t.Helper()
	_, err := exec.LookPath("python3")
	testserver.NeedOrSkip(t, err == nil, "python3")
	w := process.New(process.Options{})
	defer w.Shutdown(context.Background())
	p, err := w.Interpreter(testserver.Ctx(t), process.TypePython)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(p, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// startSystem starts the embedded system (server, controller, built-in
// process worker) on addr, retrying while a just-closed port is still busy.
func startSystem(t *testing.T, dataDir, addr, python, work string) *embedded.System {
	t.Helper()
	return startSystemLimits(t, dataDir, addr, python, work, appsctl.Limits{})
}

// startSystemLimits is startSystem with the apps controller's limits.
func startSystemLimits(t *testing.T, dataDir, addr, python, work string, limits appsctl.Limits) *embedded.System {
	t.Helper()
	o := embedded.Options{
		Server:  server.Config{DataDir: dataDir, JWTSecret: restartSecret, RootToken: testserver.RootToken, Logger: testserver.Logger(t)},
		Apps:    limits,
		Addr:    addr,
		Process: process.Options{Python: python, WorkDir: work, Logger: testserver.Logger(t)},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sys, err := embedded.Start(testserver.Ctx(t), o)
		if err == nil {
			return sys
		}
		if time.Now().After(deadline) {
			t.Fatalf("start the embedded system on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// aliceApps connects alice (her own workspace) and returns server-apps.
func aliceApps(t *testing.T, sys *embedded.System) (*rpc.Client, *rpc.RemoteService) {
	t.Helper()
	tok, err := sys.Server.Issuer().Generate(&auth.UserInfo{ID: "alice", Roles: []string{},
		Scope: auth.Scope{CurrentWorkspace: "ws-user-alice"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := testserver.Connect(t, sys.Server, rpc.Config{Token: tok, ClientID: "alice-client", NoReconnect: true})
	svc, err := c.GetService(testserver.Ctx(t), "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	return c, svc
}

func callT(t *testing.T, svc *rpc.RemoteService, fn string, args ...any) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := svc.Call(ctx, fn, args...)
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	return v
}

func install(t *testing.T, apps *rpc.RemoteService, id, source string, daemon bool) {
	t.Helper()
	m := map[string]any{"type": "python-eval", "name": id, "entry_point": "main.py"}
	if daemon {
		m["daemon"] = true
	}
	callT(t, apps, "install", rpc.Kwargs{"app_id": id, "overwrite": true, "timeout": 30.0, "manifest": m,
		"files": []any{map[string]any{"path": "main.py", "content": source}}})
}

func logText(t *testing.T, apps *rpc.RemoteService, sid string) string {
	t.Helper()
	m, _ := callT(t, apps, "get_logs", sid).(map[string]any)
	items, _ := m["items"].([]any)
	var b strings.Builder
	for _, it := range items {
		if e, ok := it.(map[string]any); ok {
			fmt.Fprintln(&b, e["content"])
		}
	}
	return b.String()
}

var tickRe = regexp.MustCompile(`tick (\d+)`)

// lastTick is the highest "tick N" in the session's logs (-1: none).
func lastTick(t *testing.T, apps *rpc.RemoteService, sid string) int {
	t.Helper()
	n := -1
	for _, m := range tickRe.FindAllStringSubmatch(logText(t, apps, sid), -1) {
		if v, _ := strconv.Atoi(m[1]); v > n {
			n = v
		}
	}
	return n
}

func sessionInfo(t *testing.T, apps *rpc.RemoteService, sid string) map[string]any {
	t.Helper()
	m, _ := callT(t, apps, "get_session_info", sid).(map[string]any)
	return m
}

func running(t *testing.T, apps *rpc.RemoteService) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range callT(t, apps, "list_running").([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

// TestRestartSessions restarts the real embedded server on the same data
// dir and port (issue 7, state that survives restarts):
//
//   - a python session on a standalone worker (its own rpc client with a
//     fixed client id, as `hypha worker process --client-id` runs) keeps
//     running while the server is away, is re-adopted when the worker
//     reconnects, is listed as running again and its logs go on;
//   - a session of the built-in worker died with the server: it shows
//     stopped because the server restarted, and its last logs are readable;
//   - a daemon app is started again.
func TestRestartSessions(t *testing.T) {
	python := realPython(t)
	dataDir, work := t.TempDir(), testserver.SharedTempDir(t)
	sys1 := startSystem(t, dataDir, "127.0.0.1:0", python, work)
	addr := sys1.Server.Addr()

	// The standalone worker: a reconnecting client of its own.
	ctx := testserver.Ctx(t)
	root := auth.RootUser()
	root.Scope.CurrentWorkspace, root.CurrentWorkspace = "public", "public"
	rootTok, err := sys1.Server.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := rpc.Connect(ctx, rpc.Config{ServerURL: sys1.Server.URL(), Token: rootTok,
		Workspace: "public", ClientID: "standalone-worker", Logger: testserver.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := embedded.HostProcessWorker(ctx, wc, process.New(process.Options{Python: python, WorkDir: work, Logger: testserver.Logger(t)}),
		hyphaworker.Options{ServiceID: "standalone"})
	if err != nil {
		wc.Close()
		t.Fatal(err)
	}
	standaloneDone := false
	closeStandalone := func() {
		if standaloneDone {
			return
		}
		standaloneDone = true
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = reg.Close(cctx)
		wc.Close()
	}
	t.Cleanup(closeStandalone)
	standaloneID := reg.ServiceID
	if standaloneID != "public/standalone-worker:standalone" {
		t.Fatalf("standalone worker id = %s", standaloneID)
	}

	alice, apps := aliceApps(t, sys1)
	builtinID := ""
	for _, w := range callT(t, apps, "list_workers").([]any) {
		if id := fmt.Sprint(w.(map[string]any)["id"]); strings.HasPrefix(id, "public/builtin-process-worker:") {
			builtinID = id
		}
	}
	if builtinID == "" {
		t.Fatal("no built-in process worker listed")
	}

	install(t, apps, "ticker", "import time\ni = 0\nwhile True:\n    print('tick', i, flush=True)\n    i += 1\n    time.sleep(0.05)\n", false)
	install(t, apps, "builtin", "import time\nprint('hello from the built-in worker', flush=True)\ntime.sleep(3600)\n", false)
	install(t, apps, "daemon", "import time\nprint('daemon up', flush=True)\ntime.sleep(3600)\n", true)

	tick := callT(t, apps, "start", "ticker", rpc.Kwargs{"worker_id": standaloneID}).(map[string]any)
	sidT := tick["id"].(string)
	sidB := callT(t, apps, "start", "builtin", rpc.Kwargs{"worker_id": builtinID}).(map[string]any)["id"].(string)
	sidD := callT(t, apps, "start", "daemon", rpc.Kwargs{"worker_id": builtinID}).(map[string]any)["id"].(string)
	testserver.WaitFor(t, 30*time.Second, "the ticker's output", func() bool { return lastTick(t, apps, sidT) >= 3 })
	testserver.WaitFor(t, 30*time.Second, "the built-in app's output", func() bool {
		return strings.Contains(logText(t, apps, sidB), "hello from the built-in worker")
	})
	before := lastTick(t, apps, sidT)

	// Restart: the controller records the sessions, the built-in worker
	// stops its own, the server goes; the standalone worker reconnects.
	alice.Close()
	if err := sys1.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	sys2 := startSystem(t, dataDir, addr, python, work)
	defer sys2.Close()
	defer closeStandalone() // before the server closes
	_, apps = aliceApps(t, sys2)

	// The standalone worker's session is re-adopted: running again, and
	// its output goes on.
	testserver.WaitFor(t, 90*time.Second, sidT+" re-adopted as running", func() bool {
		return sessionInfo(t, apps, sidT)["status"] == "running"
	})
	if !slices.ContainsFunc(running(t, apps), func(r map[string]any) bool { return r["id"] == sidT }) {
		t.Fatalf("list_running does not list the re-adopted %s", sidT)
	}
	testserver.WaitFor(t, 30*time.Second, "the ticker's output to go on", func() bool {
		return lastTick(t, apps, sidT) > before+5
	})
	// The app's revision survived too: start returns the re-adopted
	// instance instead of a second one.
	if again := callT(t, apps, "start", "ticker").(map[string]any); again["id"] != sidT {
		t.Fatalf("start after re-adoption returned %v, want the re-adopted %s", again["id"], sidT)
	}

	// The built-in worker's session died with the server.
	b := sessionInfo(t, apps, sidB)
	if b["status"] != "stopped" || !strings.Contains(fmt.Sprint(b["reason"]), "the server restarted") {
		t.Fatalf("built-in session after the restart = %v", b)
	}
	if !strings.Contains(logText(t, apps, sidB), "hello from the built-in worker") {
		t.Fatalf("the built-in session's last logs are gone: %q", logText(t, apps, sidB))
	}

	// The daemon app runs again, in a new session.
	var sidD2 string
	testserver.WaitFor(t, 90*time.Second, "the daemon app to run again", func() bool {
		for _, r := range running(t, apps) {
			if r["app_id"] == "daemon" && r["id"] != sidD {
				sidD2 = r["id"].(string)
				return true
			}
		}
		return false
	})
	testserver.WaitFor(t, 30*time.Second, "the daemon's output", func() bool {
		return strings.Contains(logText(t, apps, sidD2), "daemon up")
	})
	if d := sessionInfo(t, apps, sidD); d["status"] != "stopped" {
		t.Fatalf("the daemon's old session = %v", d)
	}
}
