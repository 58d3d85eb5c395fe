package process

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// appsE2E is a real server with the controller, a process worker registered
// in public as the embedded server does, and alice's server-apps service.
type appsE2E struct {
	t    *testing.T
	s    *server.Server
	reg  *Registered
	apps *rpc.RemoteService
}

func newAppsE2E(t *testing.T) *appsE2E {
	t.Helper()
	needPython(t)
	s := testserver.Start(t, server.Config{DataDir: t.TempDir()})
	e := &appsE2E{t: t, s: s}
	e.reg = e.worker("builtin-process-worker")
	tok, err := s.Issuer().Generate(&auth.UserInfo{ID: "alice", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-alice"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	user := testserver.Connect(t, s, rpc.Config{Token: tok, ClientID: "alice-client"})
	if e.apps, err = user.GetService(ctxT(t), "public/server-apps"); err != nil {
		t.Fatal(err)
	}
	return e
}

// worker registers a process worker on its own root client in public.
func (e *appsE2E) worker(clientID string) *Registered {
	t := e.t
	t.Helper()
	wc := publicRoot(t, e.s, clientID)
	reg, err := Register(ctxT(t), wc, Options{Python: realPython(t), WorkDir: testserver.SharedTempDir(t)}, hyphaworker.Options{UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = reg.Close(ctx) // the client may be closed already
	})
	return reg
}

func (e *appsE2E) call(fn string, args ...any) any {
	e.t.Helper()
	v, err := e.apps.Call(ctxT(e.t), fn, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", fn, err)
	}
	return v
}

func (e *appsE2E) install(id, source string, extra rpc.Kwargs) {
	e.t.Helper()
	kw := rpc.Kwargs{
		"app_id": id, "overwrite": true, "timeout": 20.0,
		"manifest": map[string]any{"type": TypePython, "name": id, "entry_point": "main.py"},
		"files":    []any{map[string]any{"path": "main.py", "content": source}},
	}
	for k, v := range extra {
		if k == "singleton" {
			kw["manifest"].(map[string]any)[k] = v
			continue
		}
		kw[k] = v
	}
	e.call("install", kw)
}

func (e *appsE2E) start(id string, kw rpc.Kwargs) map[string]any {
	e.t.Helper()
	if kw == nil {
		kw = rpc.Kwargs{}
	}
	kw["timeout"] = 20.0
	m, _ := e.call("start", id, kw).(map[string]any)
	if m == nil || m["id"] == nil {
		e.t.Fatalf("start %s returned %v", id, m)
	}
	return m
}

func (e *appsE2E) info(sid string) map[string]any {
	e.t.Helper()
	m, _ := e.call("get_session_info", sid).(map[string]any)
	return m
}

func (e *appsE2E) running() []string {
	e.t.Helper()
	var out []string
	for _, r := range e.call("list_running").([]any) {
		m := r.(map[string]any)
		out = append(out, fmt.Sprint(m["id"]))
	}
	return out
}

func (e *appsE2E) logs(sid string) string {
	e.t.Helper()
	return strings.Join(logContents(e.call("get_logs", sid)), "\n")
}

// waitStatusE2E waits (generously) until the controller reports want.
func (e *appsE2E) waitStatus(sid, want string) map[string]any {
	e.t.Helper()
	var last map[string]any
	testserver.WaitFor(e.t, 20*time.Second, sid+" to be "+want, func() bool {
		last = e.info(sid)
		return last["status"] == want
	})
	return last
}

// TestAppsSessionEnds: the controller tells the truth about sessions that
// ended by themselves or were killed outside it (issue 7).
func TestAppsSessionEnds(t *testing.T) {
	e := newAppsE2E(t)

	t.Run("finished app leaves list_running and start runs anew", func(t *testing.T) {
		e.install("once", "import sys\nprint('run', sys.argv[0], flush=True)\n", nil)
		s1 := fmt.Sprint(e.start("once", nil)["id"])
		rec := e.waitStatus(s1, "completed")
		if rec["ended_at"] == nil {
			t.Fatalf("completed record without ended_at: %v", rec)
		}
		if slices.Contains(e.running(), s1) {
			t.Fatalf("list_running still lists the completed %s", s1)
		}
		if !strings.Contains(e.logs(s1), "run main.py") {
			t.Fatalf("logs of %s: %q", s1, e.logs(s1))
		}
		// A new start is a new session running the app again.
		e.install("once", "print('second version', flush=True)\n", nil)
		s2 := fmt.Sprint(e.start("once", nil)["id"])
		if s2 == s1 {
			t.Fatalf("start returned the ended session %s", s1)
		}
		e.waitStatus(s2, "completed")
		if got := e.logs(s2); !strings.Contains(got, "second version") || strings.Contains(got, "run main.py") {
			t.Fatalf("logs of the new session: %q", got)
		}
	})

	t.Run("singleton returns only a live instance; a kill outside is noticed", func(t *testing.T) {
		e.install("single", "import time\nprint('up', flush=True)\ntime.sleep(600)\n", rpc.Kwargs{"singleton": true})
		s1 := fmt.Sprint(e.start("single", nil)["id"])
		if again := fmt.Sprint(e.start("single", nil)["id"]); again != s1 {
			t.Fatalf("singleton started a second instance %s beside the live %s", again, s1)
		}
		if !slices.Contains(e.running(), s1) {
			t.Fatalf("list_running lacks the live %s", s1)
		}
		pid := procOf(t, e.reg.Worker, s1).pid
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// No waiting on the controller: list_running asks the worker.
		testserver.WaitFor(t, 20*time.Second, "the worker to see the kill", func() bool {
			info, err := e.reg.Worker.GetSessionInfo(context.Background(), s1)
			return err == nil && info.Status == "failed"
		})
		if slices.Contains(e.running(), s1) {
			t.Fatalf("list_running still lists the killed %s", s1)
		}
		rec := e.info(s1)
		if rec["status"] != "failed" || !strings.Contains(fmt.Sprint(rec["error"]), "killed") {
			t.Fatalf("record of the killed session: %v", rec)
		}
		s2 := fmt.Sprint(e.start("single", nil)["id"])
		if s2 == s1 {
			t.Fatalf("singleton start returned the dead %s", s1)
		}
		e.call("stop", s2)
	})

	t.Run("an app with no service: install and start succeed", func(t *testing.T) {
		// Under the old rules the trial waited for a `default` service that
		// never comes and failed at the timeout.
		e.install("quiet", "import time\nprint('quiet', flush=True)\ntime.sleep(600)\n", nil)
		rec := e.start("quiet", nil)
		sid := fmt.Sprint(rec["id"])
		if rec["status"] != "running" {
			t.Fatalf("start = %v", rec)
		}
		e.call("stop", sid)
	})

	t.Run("an app that exits 0 during the trial is installed", func(t *testing.T) {
		// wait_for_service names a service the script never registers: it
		// completes first, which is a success.
		e.install("script", "print('done', flush=True)\n", rpc.Kwargs{"wait_for_service": "default"})
		rec := e.start("script", rpc.Kwargs{"wait_for_service": "default"})
		if rec["status"] != "completed" {
			t.Fatalf("start of a script that completes = %v", rec)
		}
		if !strings.Contains(e.logs(fmt.Sprint(rec["id"])), "done") {
			t.Fatalf("logs: %v", e.logs(fmt.Sprint(rec["id"])))
		}
	})

	t.Run("an app that fails is not ready", func(t *testing.T) {
		_, err := e.apps.Call(ctxT(t), "install", rpc.Kwargs{
			"app_id": "broken", "timeout": 20.0, "wait_for_service": "default",
			"manifest": map[string]any{"type": TypePython, "name": "broken", "entry_point": "main.py"},
			"files":    []any{map[string]any{"path": "main.py", "content": "import sys\nprint('bad', flush=True)\nsys.exit(3)\n"}},
		})
		if err == nil || !strings.Contains(err.Error(), "exited with code 3") {
			t.Fatalf("install of a failing app: %v", err)
		}
	})
}

// TestAppsStandaloneWorkerDies: a second process worker, registered by its
// own client, goes away; its session fails with the reason and its last
// logs stay readable.
func TestAppsStandaloneWorkerDies(t *testing.T) {
	e := newAppsE2E(t)
	wc := publicRoot(t, e.s, "standalone-worker")
	reg, err := Register(ctxT(t), wc, Options{Python: realPython(t), WorkDir: testserver.SharedTempDir(t)}, hyphaworker.Options{UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = reg.Close(ctx)
	})
	e.install("lonely", "import time\nprint('marker before death', flush=True)\ntime.sleep(600)\n",
		rpc.Kwargs{"worker_id": reg.ServiceID})
	sid := fmt.Sprint(e.start("lonely", rpc.Kwargs{"worker_id": reg.ServiceID})["id"])
	testserver.WaitFor(t, 20*time.Second, "the app's output", func() bool {
		return strings.Contains(e.logs(sid), "marker before death")
	})

	wc.Close() // the worker's connection dies
	rec := e.waitStatus(sid, "failed")
	if want := "worker public/standalone-worker disconnected"; !strings.Contains(fmt.Sprint(rec["error"]), want) {
		t.Fatalf("record = %v, want error %q", rec, want)
	}
	if slices.Contains(e.running(), sid) {
		t.Fatalf("list_running lists %s after its worker died", sid)
	}
	logs, _ := e.call("get_logs", sid).(map[string]any)
	if logs["cached"] != true || !strings.Contains(strings.Join(logContents(logs), "\n"), "marker before death") {
		t.Fatalf("logs after the worker died: %v", logs)
	}
	// The other worker still serves: a new start works.
	e.install("after", "print('still here', flush=True)\n", nil)
	e.waitStatus(fmt.Sprint(e.start("after", nil)["id"]), "completed")
}
