package conda

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/worker"
)

const mainPy = `import os
print("hello from", os.environ["HYPHA_APP_ID"], os.environ["HYPHA_WORKSPACE"], os.environ["HYPHA_CLIENT_ID"])
print("token set:", bool(os.environ.get("HYPHA_TOKEN")), "server:", os.environ["HYPHA_SERVER_URL"])
counter = 41
`

// A 1x1 PNG, displayed through IPython's display machinery.
var pngB64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

func startApp(t *testing.T, w *Worker, fs *fileServer, ws, name string, man worker.Manifest) string {
	t.Helper()
	id, err := w.Start(ctxT(t, 120*time.Second), config(fs, ws, name, man))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return id
}

func execute(t *testing.T, w *Worker, id, code string, cfg map[string]any) map[string]any {
	t.Helper()
	v, err := w.Execute(ctxT(t, 60*time.Second), worker.ExecuteRequest{SessionID: id, Script: code, Config: cfg})
	if err != nil {
		t.Fatalf("execute %q: %v", code, err)
	}
	return v.(map[string]any)
}

// TestStartExecute: an app starts on an environment built by the (fake)
// manager, its entry point runs in the kernel with the HYPHA_* variables,
// its output is in the logs, and execute returns every output type in
// upstream's shape, with state kept between executes.
func TestStartExecute(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": mainPy})
	var mu sync.Mutex
	var progress []string
	cfg := config(fs, "ws1", "c1", nil)
	cfg.ProgressFunc = func(_ context.Context, p worker.Progress) error {
		mu.Lock()
		progress = append(progress, p.Message)
		mu.Unlock()
		return nil
	}
	id, err := w.Start(ctxT(t, 120*time.Second), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	info, err := w.GetSessionInfo(context.Background(), id)
	if err != nil || info.Status != worker.StatusRunning {
		t.Fatalf("session: %+v, %v", info, err)
	}
	out := logsOf(t, w, id, worker.LogStdout)
	if len(out) < 2 || out[0] != "hello from app-c1 ws1 c1" || out[1] != "token set: True server: http://127.0.0.1:1" {
		t.Fatalf("stdout logs: %q", out)
	}
	// The solver's output went to the progress log and the callback.
	if p := logsOf(t, w, id, LogProgress); !contains(p, "Solving environment: done") {
		t.Errorf("progress logs lack the solver's lines: %q", p)
	}
	mu.Lock()
	if !contains(progress, "Solving environment: done") {
		t.Errorf("progress callback lacks the solver's lines: %q", progress)
	}
	mu.Unlock()
	for _, typ := range []worker.LogType{worker.LogStdout, worker.LogStderr, worker.LogInfo, worker.LogError, LogProgress} {
		for _, l := range logsOf(t, w, id, typ) {
			if strings.Contains(l, "tok") && strings.Contains(l, "Bearer") {
				t.Errorf("a %s log line shows the token: %q", typ, l)
			}
		}
	}

	// State persists; every output type in upstream's shape.
	r := execute(t, w, id, "counter += 1\nprint('counter is', counter)\ncounter", nil)
	if r["status"] != "ok" {
		t.Fatalf("execute: %v", r)
	}
	outs := r["outputs"].([]any)
	if len(outs) != 2 {
		t.Fatalf("outputs: %v", outs)
	}
	st := outs[0].(map[string]any)
	if st["type"] != "stream" || st["name"] != "stdout" || st["text"] != "counter is 42\n" {
		t.Errorf("stream output: %v", st)
	}
	er := outs[1].(map[string]any)
	if er["type"] != "execute_result" || er["data"].(map[string]any)["text/plain"] != "42" || er["execution_count"] == nil {
		t.Errorf("execute_result: %v", er)
	}
	if _, ok := r["error"]; ok {
		t.Errorf("ok result has an error key: %v", r)
	}

	r = execute(t, w, id, fmt.Sprintf(`import base64
from IPython.display import display, Image
display(Image(data=base64.b64decode(%q)))
import sys; print("to stderr", file=sys.stderr)`, pngB64), nil)
	outs = r["outputs"].([]any)
	var sawPNG, sawErr bool
	for _, o := range outs {
		m := o.(map[string]any)
		switch m["type"] {
		case "display_data":
			data := m["data"].(map[string]any)
			if data["image/png"] == pngB64 || strings.TrimSpace(fmt.Sprint(data["image/png"])) == pngB64 {
				sawPNG = true
			}
			if _, ok := m["metadata"]; !ok {
				t.Errorf("display_data without metadata: %v", m)
			}
		case "stream":
			sawErr = m["name"] == "stderr" && m["text"] == "to stderr\n"
		}
	}
	if !sawPNG || !sawErr {
		t.Errorf("display of a PNG and stderr: %v", outs)
	}
	if _, err := base64.StdEncoding.DecodeString(pngB64); err != nil {
		t.Fatal(err)
	}

	r = execute(t, w, id, "raise ValueError('boom')", nil)
	e, _ := r["error"].(map[string]any)
	if r["status"] != "error" || e["ename"] != "ValueError" || e["evalue"] != "boom" || len(e["traceback"].([]any)) == 0 {
		t.Fatalf("exception: %v", r)
	}
	if errs := logsOf(t, w, id, worker.LogError); !contains(errs, "ValueError: boom") {
		t.Errorf("error logs: %q", errs)
	}

	// output_callback sees the outputs as they happen.
	var got []map[string]any
	v, err := w.Execute(ctxT(t, 30*time.Second), worker.ExecuteRequest{SessionID: id, Script: "print('a'); print('b')", Extra: map[string]any{
		"output_callback": func(_ context.Context, m map[string]any) error { got = append(got, m); return nil },
	}})
	if err != nil || v.(map[string]any)["status"] != "ok" {
		t.Fatalf("execute with output_callback: %v %v", v, err)
	}
	if len(got) == 0 || got[0]["type"] != "stream" || got[0]["msg_type"] != "stream" {
		t.Errorf("output_callback got %v", got)
	}

	// stop: the kernel and every process of the session are gone, the
	// working directory too.
	wd := workDirOf(t, w, id)
	pid := kernelPID(t, w, id)
	if err := w.Stop(ctxT(t, 30*time.Second), id); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("kernel pid %d alive after stop", pid)
	}
	if exists(wd) {
		t.Errorf("working directory %s left after stop", wd)
	}
	if _, err := w.GetSessionInfo(context.Background(), id); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Errorf("stopped session still listed: %v", err)
	}
}

// TestCachedStart: a second session of the same spec reuses the
// environment (one build).
func TestCachedStart(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "builds")
	t.Setenv("FAKE_CONDA_LOG", logf)
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": "x = 1\n"})
	man := func() worker.Manifest { return worker.Manifest{"dependencies": []any{"python=3", "numpy-fake-name"}} }
	a := startApp(t, w, fs, "ws1", "a", man())
	b := startApp(t, w, fs, "ws1", "b", man())
	data, _ := os.ReadFile(logf)
	if n := strings.Count(string(data), "create "); n != 1 {
		t.Errorf("the environment was built %d times, want once", n)
	}
	for _, id := range []string{a, b} {
		if r := execute(t, w, id, "x + 1", nil); r["status"] != "ok" {
			t.Errorf("%s: %v", id, r)
		}
	}
}

// TestExecuteTimeout: a timeout interrupts the kernel, returns a
// TimeoutError result, and the kernel keeps its state.
func TestExecuteTimeout(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": "state = 'kept'\n"})
	id := startApp(t, w, fs, "ws1", "c1", nil)
	r := execute(t, w, id, "import time\nprint('before', flush=True)\ntime.sleep(120)", map[string]any{"timeout": 1.5})
	e, _ := r["error"].(map[string]any)
	if r["status"] != "error" || e["ename"] != "TimeoutError" || !strings.Contains(fmt.Sprint(e["evalue"]), "timed out after 1.5s") {
		t.Fatalf("timeout result: %v", r)
	}
	r = execute(t, w, id, "state", nil)
	if r["status"] != "ok" || r["outputs"].([]any)[0].(map[string]any)["data"].(map[string]any)["text/plain"] != "'kept'" {
		t.Fatalf("after the interrupt: %v", r)
	}
}

// TestKernelCrash: a kernel that dies fails the session; execute then
// says so.
func TestKernelCrash(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": "pass\n"})
	id := startApp(t, w, fs, "ws1", "c1", nil)
	wd := workDirOf(t, w, id)
	_, err := w.Execute(ctxT(t, 60*time.Second), worker.ExecuteRequest{SessionID: id, Script: "import os; os._exit(7)"})
	if err == nil || !errors.Is(err, ErrKernelDead) {
		t.Fatalf("execute that kills the kernel: %v", err)
	}
	waitFor(t, "the session to fail", func() bool {
		info, err := w.GetSessionInfo(context.Background(), id)
		return err == nil && info.Status == worker.StatusFailed
	})
	_, err = w.Execute(ctxT(t, 10*time.Second), worker.ExecuteRequest{SessionID: id, Script: "1"})
	if !errors.Is(err, ErrKernelDead) {
		t.Fatalf("execute on a dead kernel: %v", err)
	}
	waitFor(t, "the working directory to go", func() bool { return !exists(wd) })
}

// TestEntryPointFails: an entry point that raises fails the start with the
// traceback in the error and the log, and nothing is left.
func TestEntryPointFails(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": "def f():\n    raise RuntimeError('bad app')\nf()\n"})
	_, err := w.Start(ctxT(t, 120*time.Second), config(fs, "ws1", "c1", nil))
	if err == nil || !errors.Is(err, ErrEntryPoint) || !strings.Contains(err.Error(), "RuntimeError: bad app") ||
		!strings.Contains(err.Error(), "in f") || strings.Contains(err.Error(), "\x1b[") {
		t.Fatalf("start error: %v", err)
	}
	if l := w.Sessions.Len(); l != 0 {
		t.Errorf("%d sessions left", l)
	}
	waitFor(t, "no working directory", func() bool {
		ents, _ := os.ReadDir(w.Options().WorkDir)
		return len(ents) == 0
	})
}

// TestFilesToStage: files, folders and renames are staged next to the
// entry point.
func TestFilesToStage(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{
		"main.py":             "import helper\nprint(helper.X)\n",
		"helper.py":           "X = 'helper ok'\n",
		"data/a.txt":          "A",
		"data/sub/b.txt":      "B",
		"raw.csv":             "1,2\n",
		"models/m1.bin":       "M",
		"models/deep/m2.bin":  "N",
		"not-staged/secret.x": "S",
	})
	id := startApp(t, w, fs, "ws1", "c1", worker.Manifest{"files_to_stage": []any{
		"helper.py", "data/", "raw.csv:inputs/table.csv", "models/:weights/",
	}})
	if out := logsOf(t, w, id, worker.LogStdout); !contains(out, "helper ok") {
		t.Fatalf("stdout: %q", out)
	}
	r := execute(t, w, id, `import os
sorted(os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk('.') for f in fs if not d.startswith(('./.ipython', './__pycache__')) and not f.startswith('kernel-'))`, nil)
	got := r["outputs"].([]any)[0].(map[string]any)["data"].(map[string]any)["text/plain"]
	want := "['data/a.txt',\n 'data/sub/b.txt',\n 'helper.py',\n 'inputs/table.csv',\n 'main.py',\n 'weights/deep/m2.bin',\n 'weights/m1.bin']"
	if got != want {
		t.Errorf("staged files:\n%v\nwant\n%v", got, want)
	}
}

func contains(list []string, sub string) bool {
	for _, l := range list {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func handleOf(t testing.TB, w *Worker, id string) *kernelSession {
	t.Helper()
	s, err := w.Sessions.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := worker.HandleOf[*kernelSession](s)
	return h
}

func workDirOf(t testing.TB, w *Worker, id string) string {
	h := handleOf(t, w, id)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ls.Dir()
}

func kernelPID(t testing.TB, w *Worker, id string) int {
	h := handleOf(t, w, id)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ls.PID()
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}
