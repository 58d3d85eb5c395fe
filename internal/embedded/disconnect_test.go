package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	appsctl "github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/process"
)

// tappedWorker registers a standalone process worker on its own
// reconnecting rpc client (client id "tapped-worker", as `hypha worker
// process --client-id` runs) whose connection goes through tap, so that a
// test can cut and restore it without stopping the worker. The returned
// function closes the worker (deferred after the system's Close, so that
// it runs first: a worker whose server went would wait for it).
func tappedWorker(t *testing.T, sys *embedded.System, python, work string, tap *testserver.Tap) (string, func()) {
	t.Helper()
	ctx := testserver.Ctx(t)
	root := auth.RootUser()
	root.Scope.CurrentWorkspace, root.CurrentWorkspace = "public", "public"
	tok, err := sys.Server.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := rpc.Connect(ctx, rpc.Config{ServerURL: sys.Server.URL(), Token: tok, Workspace: "public",
		ClientID: "tapped-worker", Dialer: tap.Dial, Logger: testserver.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := embedded.HostProcessWorker(ctx, wc, process.New(process.Options{Python: python, WorkDir: work, Logger: testserver.Logger(t)}),
		hyphaworker.Options{ServiceID: "tapped"})
	if err != nil {
		wc.Close()
		t.Fatal(err)
	}
	var once sync.Once
	closeWorker := func() {
		once.Do(func() {
			tap.Allow()
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = reg.Close(cctx)
			wc.Close()
		})
	}
	t.Cleanup(closeWorker)
	return reg.ServiceID, closeWorker
}

// cutUntilMarked cuts the worker's connection and keeps it refused until
// the controller has marked the session as failed and awaiting its worker.
func cutUntilMarked(t *testing.T, apps *rpc.RemoteService, tap *testserver.Tap, sid string) map[string]any {
	t.Helper()
	tap.Refuse()
	tap.Kill()
	var rec map[string]any
	testserver.WaitFor(t, 60*time.Second, sid+" marked as awaiting its worker", func() bool {
		rec = sessionInfo(t, apps, sid)
		return rec["status"] == "failed" && rec["awaiting_worker"] == true
	})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "worker public/tapped-worker disconnected; re-adopted if it comes back") {
		t.Fatalf("record while the worker is away = %v", rec)
	}
	if slices.ContainsFunc(running(t, apps), func(r map[string]any) bool { return r["id"] == sid }) {
		t.Fatalf("list_running lists %s while its worker is away", sid)
	}
	return rec
}

// TestWorkerReconnectReadopts: a standalone worker loses its connection
// (the server stays up); its session is failed while the worker is away,
// and re-adopted as running, its output going on, when the worker's client
// reconnects and registers again.
func TestWorkerReconnectReadopts(t *testing.T) {
	python := realPython(t)
	sys := startSystem(t, t.TempDir(), "127.0.0.1:0", python, testserver.SharedTempDir(t))
	defer sys.Close()
	tap := testserver.NewTap(sys.Server.URL())
	wid, closeWorker := tappedWorker(t, sys, python, testserver.SharedTempDir(t), tap)
	defer closeWorker()
	_, apps := aliceApps(t, sys)

	install(t, apps, "ticker", "import time\ni = 0\nwhile True:\n    print('tick', i, flush=True)\n    i += 1\n    time.sleep(0.05)\n", false)
	sid := callT(t, apps, "start", "ticker", rpc.Kwargs{"worker_id": wid}).(map[string]any)["id"].(string)
	testserver.WaitFor(t, 30*time.Second, "the ticker's output", func() bool { return lastTick(t, apps, sid) >= 3 })

	cutUntilMarked(t, apps, tap, sid)
	before := lastTick(t, apps, sid) // from the controller's cached logs
	tap.Allow()

	testserver.WaitFor(t, 120*time.Second, sid+" re-adopted as running", func() bool {
		return sessionInfo(t, apps, sid)["status"] == "running"
	})
	if rec := sessionInfo(t, apps, sid); rec["awaiting_worker"] != nil || rec["reason"] != nil {
		t.Fatalf("re-adopted record = %v", rec)
	}
	if !slices.ContainsFunc(running(t, apps), func(r map[string]any) bool { return r["id"] == sid }) {
		t.Fatalf("list_running does not list the re-adopted %s", sid)
	}
	testserver.WaitFor(t, 30*time.Second, "the ticker's output to go on", func() bool {
		return lastTick(t, apps, sid) > before+5
	})
	// It is an ordinary session again: stop goes to the worker.
	if v := callT(t, apps, "stop", sid); v != nil {
		t.Fatalf("stop of the re-adopted session = %v", v)
	}
}

var pidRe = regexp.MustCompile(`pid (\d+)`)

// TestStopWhileWorkerAway: stop of a session whose worker's connection is
// cut succeeds and says the stop is pending; when the worker comes back the
// controller has it stop the session there (its python process is gone)
// instead of re-adopting it, and the record says stopped.
func TestStopWhileWorkerAway(t *testing.T) {
	python := realPython(t)
	sys := startSystem(t, t.TempDir(), "127.0.0.1:0", python, testserver.SharedTempDir(t))
	defer sys.Close()
	tap := testserver.NewTap(sys.Server.URL())
	wid, closeWorker := tappedWorker(t, sys, python, testserver.SharedTempDir(t), tap)
	defer closeWorker()
	_, apps := aliceApps(t, sys)

	// The pid as /proc numbers it (the app runs in a PID namespace of its own).
	install(t, apps, "sleeper", "import os, time\nprint('pid', os.readlink('/proc/self'), flush=True)\ntime.sleep(3600)\n", false)
	sid := callT(t, apps, "start", "sleeper", rpc.Kwargs{"worker_id": wid}).(map[string]any)["id"].(string)
	var pid string
	testserver.WaitFor(t, 30*time.Second, "the app's pid", func() bool {
		if m := pidRe.FindStringSubmatch(logText(t, apps, sid)); m != nil {
			pid = m[1]
			return true
		}
		return false
	})
	alive := func() bool {
		_, err := os.Stat("/proc/" + pid)
		return !errors.Is(err, os.ErrNotExist)
	}
	if !alive() {
		t.Fatalf("the app's process %s is not there", pid)
	}

	cutUntilMarked(t, apps, tap, sid)
	r, _ := callT(t, apps, "stop", sid).(map[string]any)
	if r["stop_pending"] != true || !strings.Contains(fmt.Sprint(r["detail"]), "stop requested while its worker was away") {
		t.Fatalf("stop while the worker is away = %v", r)
	}
	if rec := sessionInfo(t, apps, sid); rec["stop_pending"] != true {
		t.Fatalf("record after the pending stop = %v", rec)
	}
	if !alive() {
		t.Fatal("the app's process went while its worker was cut off (the worker keeps its sessions)")
	}
	tap.Allow()

	var rec map[string]any
	testserver.WaitFor(t, 120*time.Second, sid+" stopped at the returning worker", func() bool {
		rec = sessionInfo(t, apps, sid)
		return rec["status"] == "stopped"
	})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "stopped when its worker "+wid+" came back") || rec["awaiting_worker"] != nil {
		t.Fatalf("record after the worker came back = %v", rec)
	}
	testserver.WaitFor(t, 30*time.Second, "the app's process "+pid+" to be gone", func() bool { return !alive() })
	if slices.ContainsFunc(running(t, apps), func(r map[string]any) bool { return r["id"] == sid }) {
		t.Fatalf("list_running lists the stopped %s", sid)
	}
}

// TestWorkerReturnsAfterRecordExpired: a standalone worker comes back
// after its sessions' records expired (the ended-session TTL, 2 s here,
// 5 minutes by default). The controller kept them, unlisted, as lost:
//
//   - a plain app's session still running there is re-adopted: listed as
//     running again, its output going on;
//   - a session whose stop was asked while it was lost (by id) is stopped
//     there, its process gone, its record saying so;
//   - a singleton app started again meanwhile (on the built-in worker)
//     keeps its one instance: the returning session is stopped, not
//     re-adopted as a second one.
func TestWorkerReturnsAfterRecordExpired(t *testing.T) {
	python := realPython(t)
	sys := startSystemLimits(t, t.TempDir(), "127.0.0.1:0", python, testserver.SharedTempDir(t),
		appsctl.Limits{EndedSessionTTL: 2 * time.Second})
	defer sys.Close()
	tap := testserver.NewTap(sys.Server.URL())
	wid, closeWorker := tappedWorker(t, sys, python, testserver.SharedTempDir(t), tap)
	defer closeWorker()
	_, apps := aliceApps(t, sys)

	install(t, apps, "ticker", "import time\ni = 0\nwhile True:\n    print('tick', i, flush=True)\n    i += 1\n    time.sleep(0.05)\n", false)
	install(t, apps, "sleeper", "import os, time\nprint('pid', os.readlink('/proc/self'), flush=True)\ntime.sleep(3600)\n", false)
	callT(t, apps, "install", rpc.Kwargs{"app_id": "single", "overwrite": true, "timeout": 30.0,
		"manifest": map[string]any{"type": "python-eval", "name": "single", "entry_point": "main.py", "singleton": true},
		"files":    []any{map[string]any{"path": "main.py", "content": "import time\nprint('single up', flush=True)\ntime.sleep(3600)\n"}}})

	start := func(app string, kw rpc.Kwargs) string {
		return callT(t, apps, "start", app, kw).(map[string]any)["id"].(string)
	}
	sidT := start("ticker", rpc.Kwargs{"worker_id": wid})
	sidS := start("sleeper", rpc.Kwargs{"worker_id": wid})
	sidX := start("single", rpc.Kwargs{"worker_id": wid})
	testserver.WaitFor(t, 30*time.Second, "the ticker's output", func() bool { return lastTick(t, apps, sidT) >= 3 })
	var pid string
	testserver.WaitFor(t, 30*time.Second, "the sleeper's pid", func() bool {
		if m := pidRe.FindStringSubmatch(logText(t, apps, sidS)); m != nil {
			pid = m[1]
			return true
		}
		return false
	})
	alive := func() bool {
		_, err := os.Stat("/proc/" + pid)
		return !errors.Is(err, os.ErrNotExist)
	}

	cutUntilMarked(t, apps, tap, sidT)
	before := lastTick(t, apps, sidT) // from the controller's cached logs
	// The records expire: the sessions leave every list, as ended ones do.
	testserver.WaitFor(t, 60*time.Second, "the records to expire", func() bool {
		_, err := apps.Call(testserver.Ctx(t), "get_session_info", sidT)
		return err != nil && strings.Contains(err.Error(), "not found")
	})
	for _, sid := range []string{sidT, sidS, sidX} {
		if slices.ContainsFunc(running(t, apps), func(r map[string]any) bool { return r["id"] == sid }) {
			t.Fatalf("list_running lists the lost %s", sid)
		}
	}
	// A stop by id is still taken, and held for the worker's return.
	r, _ := callT(t, apps, "stop", sidS).(map[string]any)
	if r["stop_pending"] != true {
		t.Fatalf("stop of a lost session = %v", r)
	}
	// The singleton starts anew elsewhere (its old instance is not listed).
	sidX2 := start("single", nil)
	if sidX2 == sidX {
		t.Fatal("start returned the lost instance of the singleton")
	}
	if !alive() {
		t.Fatal("the sleeper's process went while its worker was cut off")
	}

	tap.Allow()
	testserver.WaitFor(t, 120*time.Second, sidT+" re-adopted as running", func() bool {
		m, err := apps.Call(testserver.Ctx(t), "get_session_info", sidT)
		rec, _ := m.(map[string]any)
		return err == nil && rec["status"] == "running"
	})
	if !slices.ContainsFunc(running(t, apps), func(r map[string]any) bool { return r["id"] == sidT }) {
		t.Fatalf("list_running does not list the re-adopted %s", sidT)
	}
	testserver.WaitFor(t, 30*time.Second, "the ticker's output to go on", func() bool {
		return lastTick(t, apps, sidT) > before+5
	})

	var rec map[string]any
	testserver.WaitFor(t, 60*time.Second, sidS+" stopped at the returning worker", func() bool {
		m, err := apps.Call(testserver.Ctx(t), "get_session_info", sidS)
		rec, _ = m.(map[string]any)
		return err == nil && rec["status"] == "stopped"
	})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "stopped when its worker "+wid+" came back (stop was requested while it was away)") {
		t.Fatalf("the lost session stopped on return = %v", rec)
	}
	testserver.WaitFor(t, 30*time.Second, "the sleeper's process "+pid+" to be gone", func() bool { return !alive() })

	testserver.WaitFor(t, 60*time.Second, sidX+" stopped at the returning worker", func() bool {
		m, err := apps.Call(testserver.Ctx(t), "get_session_info", sidX)
		rec, _ = m.(map[string]any)
		return err == nil && rec["status"] == "stopped"
	})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "another session of the app ("+sidX2+") runs") {
		t.Fatalf("the returning second instance of the singleton = %v", rec)
	}
	if x2 := sessionInfo(t, apps, sidX2); x2["status"] != "running" {
		t.Fatalf("the singleton's instance = %v", x2)
	}
}

// TestLostSessionSurvivesRestart: a session lost while its worker was
// away (its record expired) is persisted as such; after a server restart
// it is still unlisted, and re-adopted when the worker comes back.
func TestLostSessionSurvivesRestart(t *testing.T) {
	python := realPython(t)
	dataDir := t.TempDir()
	limits := appsctl.Limits{EndedSessionTTL: 2 * time.Second}
	sys1 := startSystemLimits(t, dataDir, "127.0.0.1:0", python, testserver.SharedTempDir(t), limits)
	addr := sys1.Server.Addr()
	tap := testserver.NewTap(sys1.Server.URL())
	wid, closeWorker := tappedWorker(t, sys1, python, testserver.SharedTempDir(t), tap)
	alice, apps := aliceApps(t, sys1)
	install(t, apps, "ticker", "import time\ni = 0\nwhile True:\n    print('tick', i, flush=True)\n    i += 1\n    time.sleep(0.05)\n", false)
	sid := callT(t, apps, "start", "ticker", rpc.Kwargs{"worker_id": wid}).(map[string]any)["id"].(string)
	testserver.WaitFor(t, 30*time.Second, "the ticker's output", func() bool { return lastTick(t, apps, sid) >= 3 })
	cutUntilMarked(t, apps, tap, sid)
	before := lastTick(t, apps, sid)
	testserver.WaitFor(t, 60*time.Second, "the record to expire", func() bool {
		_, err := apps.Call(testserver.Ctx(t), "get_session_info", sid)
		return err != nil && strings.Contains(err.Error(), "not found")
	})
	alice.Close()
	if err := sys1.Close(); err != nil {
		t.Logf("close: %v", err)
	}

	sys2 := startSystemLimits(t, dataDir, addr, python, testserver.SharedTempDir(t), limits)
	defer sys2.Close()
	defer closeWorker() // before the server closes
	_, apps = aliceApps(t, sys2)
	if _, err := apps.Call(testserver.Ctx(t), "get_session_info", sid); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("the lost session after the restart: %v, want not found (unlisted)", err)
	}
	tap.Allow()
	testserver.WaitFor(t, 120*time.Second, sid+" re-adopted as running", func() bool {
		m, err := apps.Call(testserver.Ctx(t), "get_session_info", sid)
		rec, _ := m.(map[string]any)
		return err == nil && rec["status"] == "running"
	})
	testserver.WaitFor(t, 30*time.Second, "the ticker's output to go on", func() bool {
		return lastTick(t, apps, sid) > before+5
	})
}
