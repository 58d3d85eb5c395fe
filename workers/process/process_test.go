package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

const testToken = "app-token-123"

// appServer serves app files under /files/ like the server's artifact
// endpoint, refusing requests without the app token.
type appServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string]string
	hits  atomic.Int64
	block chan struct{} // when non-nil, requests wait for it (or the client)
}

func newAppServer(t *testing.T, files map[string]string) *appServer {
	t.Helper()
	as := &appServer{files: files}
	as.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "missing or bad token", http.StatusUnauthorized)
			return
		}
		as.mu.Lock()
		block := as.block
		name := strings.TrimPrefix(r.URL.Path, "/files/")
		content, ok := as.files[name]
		listing := listingOf(as.files, name)
		as.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if strings.HasSuffix(r.URL.Path, "/") {
			// A folder: its listing, as the artifact endpoint gives it.
			if listing == nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(listing)
			return
		}
		if !ok || r.URL.Query().Get("use_proxy") != "true" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, content)
	}))
	t.Cleanup(as.Close)
	return as
}

func (as *appServer) base() string { return as.URL + "/files" }

// listingOf is the artifact endpoint's listing of folder dir ("" or
// ending in "/") of files: its direct children, nil when it has none.
func listingOf(files map[string]string, dir string) []map[string]any {
	if dir != "" && !strings.HasSuffix(dir, "/") {
		return nil
	}
	var out []map[string]any
	seen := map[string]bool{}
	for p, content := range files {
		rest, ok := strings.CutPrefix(p, dir)
		if !ok {
			continue
		}
		name, _, isDir := strings.Cut(rest, "/")
		if seen[name] {
			continue
		}
		seen[name] = true
		if isDir {
			out = append(out, map[string]any{"name": name, "type": "directory", "size": 0})
		} else {
			out = append(out, map[string]any{"name": name, "type": "file", "size": len(content)})
		}
	}
	if dir == "" && out == nil {
		out = []map[string]any{}
	}
	return out
}

// newWorker returns a worker whose working directories live in a test
// directory; it is shut down when the test ends.
func newWorker(t *testing.T, opts Options) *Worker {
	t.Helper()
	if opts.WorkDir == "" {
		opts.WorkDir = testserver.SharedTempDir(t)
	}
	w := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return w
}

// config builds a start config the way the server does.
func config(t *testing.T, base, cid, appType, entry string, manifest map[string]any) worker.Config {
	t.Helper()
	man := map[string]any{"_rtype": "pydantic-model", "type": appType, "entry_point": entry, "name": cid}
	for k, v := range manifest {
		man[k] = v
	}
	cfg, err := worker.ConfigFromMap(map[string]any{
		"id": "ws-a/" + cid, "app_id": "app-" + cid, "workspace": "ws-a", "client_id": cid,
		"server_url": "http://127.0.0.1:9", "app_files_base_url": base, "token": testToken,
		"entry_point": entry, "artifact_id": "ws-a/app-" + cid, "manifest": man, "timeout": 10.0,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func needPython(t *testing.T) {
	_, err := exec.LookPath("python3")
	testserver.NeedOrSkip(t, err == nil, "python3")
}

// realPython is the python3 the worker would pick (one the app user can
// run when the tests run as root), without a wrapper such as a pyenv shim.
func realPython(t *testing.T) string {
	t.Helper()
	w := newWorker(t, Options{})
	su, err := w.setup(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := su.interp[TypePython]
	if ch.err != nil {
		t.Fatal(ch.err)
	}
	real, err := exec.Command(ch.path, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(real))
}

// waitStatus polls until the session has status want.
func waitStatus(t *testing.T, w *Worker, id string, want worker.Status) worker.SessionInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := w.GetSessionInfo(context.Background(), id)
		if err != nil {
			t.Fatalf("get_session_info: %v", err)
		}
		if info.Status == want {
			return info
		}
		if time.Now().After(deadline) {
			page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{})
			t.Fatalf("status %s, want %s; logs: %v", info.Status, want, page.ToMap()["items"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog polls until a log entry of typ matches re and returns the match.
func waitLog(t *testing.T, w *Worker, id string, typ worker.LogType, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := w.GetLogs(context.Background(), id, worker.LogQuery{Type: typ})
		if err != nil {
			t.Fatalf("get_logs: %v", err)
		}
		for _, e := range page.Items {
			if m := rx.FindStringSubmatch(e.Content); m != nil {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s log matching %q in %v", typ, re, page.Items)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contents(page worker.LogPage, typ worker.LogType) []string {
	var out []string
	for _, e := range page.Items {
		if e.Type == typ {
			out = append(out, e.Content)
		}
	}
	return out
}

func procOf(t *testing.T, w *Worker, id string) *proc {
	t.Helper()
	s, err := w.Sessions.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := worker.HandleOf[*proc](s)
	if !ok {
		t.Fatal("session has no proc handle")
	}
	return h
}

func TestPythonEvalCompletes(t *testing.T) {
	needPython(t)
	t.Setenv("PROCESS_TEST_SECRET", "leak")
	t.Setenv("HYPHA_TOKEN", "the-worker-own-token")
	as := newAppServer(t, map[string]string{
		"main.py": `import os, sys
print("hello from python")
print("ws=" + os.environ["HYPHA_WORKSPACE"], "cid=" + os.environ["HYPHA_CLIENT_ID"], "app=" + os.environ["HYPHA_APP_ID"])
print("token=" + os.environ["HYPHA_TOKEN"], "url=" + os.environ["HYPHA_SERVER_URL"])
print("secret=" + os.environ.get("PROCESS_TEST_SECRET", "absent"))
print("custom=" + os.environ.get("MY_VAR", "") + "," + os.environ.get("FROM_KWARGS", ""))
print("keys=" + ",".join(sorted(os.environ)))
print("cwd-has-lib=" + str(os.path.isdir("lib")))
from lib import util
print(util.X)
print("oops", file=sys.stderr)
`,
		"lib/__init__.py": "",
		"lib/util.py":     "X = 'util loaded'\n",
	})
	// A wrapper such as a pyenv shim adds variables of its own: run the
	// real interpreter.
	w := newWorker(t, Options{Python: realPython(t)})
	cfg := config(t, as.base(), "py1", TypePython, "main.py", map[string]any{
		"env":   map[string]any{"MY_VAR": "v1", "BAD": int64(5), "HYPHA_TOKEN": "overridden?"},
		"files": []any{map[string]any{"path": "lib/util.py"}, map[string]any{"name": "lib/__init__.py"}, "main.py"},
	})
	cfg.Extra = map[string]any{"env": map[string]any{"FROM_KWARGS": "k1"}}
	id, err := w.Start(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if id != "ws-a/py1" {
		t.Fatalf("id = %q", id)
	}
	info := waitStatus(t, w, id, worker.StatusCompleted)
	if info.AppType != TypePython || info.Error != "" || info.ExitCode == nil || *info.ExitCode != 0 {
		t.Fatalf("info = %+v", info)
	}
	page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{})
	stdout := contents(page, worker.LogStdout)
	want := []string{
		"hello from python",
		"ws=ws-a cid=py1 app=app-py1",
		"token=" + testToken + " url=http://127.0.0.1:9",
		"secret=absent",
		"custom=v1,k1",
	}
	if len(stdout) < len(want)+3 || !slices.Equal(stdout[:len(want)], want) {
		t.Fatalf("stdout = %q", stdout)
	}
	keys := strings.Split(strings.TrimPrefix(stdout[len(want)], "keys="), ",")
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "PYTHONUNBUFFERED": true, "MY_VAR": true,
		"FROM_KWARGS": true, "HYPHA_SERVER_URL": true, "HYPHA_WORKSPACE": true, "HYPHA_CLIENT_ID": true,
		"HYPHA_TOKEN": true, "HYPHA_APP_ID": true, "LC_CTYPE": true /* set by Python itself (PEP 538) */}
	for _, k := range keys {
		if !allowed[k] {
			t.Errorf("unexpected variable %s in the app's environment (%v)", k, keys)
		}
	}
	if stdout[len(want)+1] != "cwd-has-lib=True" || stdout[len(want)+2] != "util loaded" {
		t.Fatalf("stdout = %q", stdout)
	}
	if diff := contents(page, worker.LogStderr); !slices.Equal(diff, []string{"oops"}) {
		t.Fatalf("stderr = %q", diff)
	}
	infos := strings.Join(contents(page, worker.LogInfo), "\n")
	for _, s := range []string{"fetched 3 file(s)", "main.py (pid ", "process exited with code 0", "env manifest.env.BAD ignored"} {
		if !strings.Contains(infos, s) {
			t.Errorf("info logs lack %q:\n%s", s, infos)
		}
	}
	// The working directory is gone once the process ended.
	m := regexp.MustCompile(`working directory (\S+)`).FindStringSubmatch(infos)
	if m == nil {
		t.Fatalf("no working directory in logs:\n%s", infos)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("working directory %s still exists: %v", m[1], err)
	}
	if err := w.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if w.Sessions.Len() != 0 {
		t.Fatal("session kept after stop")
	}
}

func TestFailingScript(t *testing.T) {
	needPython(t)
	as := newAppServer(t, map[string]string{
		"fail.py":   "import sys\nprint('about to fail')\nsys.exit(3)\n",
		"syntax.py": "def broken(:\n",
	})
	w := newWorker(t, Options{})
	id, err := w.Start(ctxT(t), config(t, as.base(), "f1", TypePython, "fail.py", nil))
	if err != nil {
		t.Fatal(err)
	}
	info := waitStatus(t, w, id, worker.StatusFailed)
	if info.Error != "process exited with code 3" {
		t.Fatalf("error = %q", info.Error)
	}
	// The code itself reaches callers (hypha run exits with it).
	if code, ok := info.ToMap()["exit_code"].(int); !ok || code != 3 {
		t.Fatalf("exit_code = %v", info.ToMap()["exit_code"])
	}
	page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{})
	if got := contents(page, worker.LogError); !slices.Equal(got, []string{"process exited with code 3"}) {
		t.Fatalf("error logs = %q", got)
	}
	if got := contents(page, worker.LogStdout); !slices.Equal(got, []string{"about to fail"}) {
		t.Fatalf("stdout = %q", got)
	}
	// The seed's per-type lists carry the error for the server's message.
	if errs := page.ToMap()["error"].([]any); len(errs) != 1 {
		t.Fatalf("ToMap error list = %v", errs)
	}

	id2, err := w.Start(ctxT(t), config(t, as.base(), "f2", TypePython, "syntax.py", nil))
	if err != nil {
		t.Fatal(err)
	}
	info = waitStatus(t, w, id2, worker.StatusFailed)
	if info.Error != "process exited with code 1" {
		t.Fatalf("error = %q", info.Error)
	}
	page, _ = w.GetLogs(context.Background(), id2, worker.LogQuery{Type: worker.LogStderr})
	if !strings.Contains(strings.Join(contents(page, worker.LogStderr), "\n"), "SyntaxError") {
		t.Fatalf("stderr = %v", page.Items)
	}
}

func TestNodeEval(t *testing.T) {
	_, err := exec.LookPath("node")
	testserver.NeedOrSkip(t, err == nil, "node")
	modDir := testserver.SharedTempDir(t)
	if err := os.MkdirAll(modDir+"/greet", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(modDir+"/greet/index.js", []byte("module.exports = (n) => 'hi ' + n;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	as := newAppServer(t, map[string]string{
		"index.js": `const greet = require("greet");
console.log("hello from node", process.env.HYPHA_CLIENT_ID);
console.log(greet(process.env.HYPHA_WORKSPACE));
console.error("to stderr");
`,
	})
	w := newWorker(t, Options{NodePath: modDir})
	id, err := w.Start(ctxT(t), config(t, as.base(), "n1", TypeNode, "index.js", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, id, worker.StatusCompleted)
	page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{})
	if got := contents(page, worker.LogStdout); !slices.Equal(got, []string{"hello from node n1", "hi ws-a"}) {
		t.Fatalf("stdout = %q", got)
	}
	if got := contents(page, worker.LogStderr); !slices.Equal(got, []string{"to stderr"}) {
		t.Fatalf("stderr = %q", got)
	}
}

// hostChildPy defines host_child() for a Python app: the pid of its only
// child as the test sees it. An app in a PID namespace of its own (see
// MaybeSupervise) sees other numbers; /proc is the test's.
const hostChildPy = `import os as _os
def host_child():
    kids = []
    for t in _os.listdir("/proc/self/task"):
        kids += open("/proc/self/task/%s/children" % t).read().split()
    assert len(kids) == 1, kids
    return int(kids[0])
`

func TestStopKillsProcessGroup(t *testing.T) {
	needPython(t)
	as := newAppServer(t, map[string]string{
		"main.py": hostChildPy + `import subprocess, time
p = subprocess.Popen(["sleep", "60"])
print("child", host_child(), flush=True)
time.sleep(60)
`,
		"stubborn.py": hostChildPy + `import signal, subprocess, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
p = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60"])
print("child", host_child(), flush=True)
time.sleep(60)
`,
	})
	w := newWorker(t, Options{StopGrace: 300 * time.Millisecond})
	for _, tc := range []struct {
		entry    string
		minTaken time.Duration
	}{
		{"main.py", 0},
		{"stubborn.py", 300 * time.Millisecond},
	} {
		t.Run(tc.entry, func(t *testing.T) {
			cid := strings.TrimSuffix(tc.entry, ".py")
			id, err := w.Start(ctxT(t), config(t, as.base(), cid, TypePython, tc.entry, nil))
			if err != nil {
				t.Fatal(err)
			}
			if st := w.Sessions.List("")[0].Status; st != worker.StatusRunning {
				t.Fatalf("status after start = %s", st)
			}
			child, _ := strconv.Atoi(waitLog(t, w, id, worker.LogStdout, `^child (\d+)$`)[1])
			h := procOf(t, w, id)
			leader := h.pid
			if st, ok := readStat(child); !ok || st.pgrp != leader {
				t.Fatalf("child %d is not in group %d: %+v", child, leader, st)
			}
			begin := time.Now()
			if err := w.Stop(ctxT(t), id); err != nil {
				t.Fatal(err)
			}
			taken := time.Since(begin)
			if taken < tc.minTaken || taken > 5*time.Second {
				t.Fatalf("stop took %s", taken)
			}
			waitGone(t, []int{leader, child}, []int{leader})
			if _, err := os.Stat(h.workdir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("working directory left: %v", err)
			}
			if _, err := w.GetSessionInfo(context.Background(), id); !errors.Is(err, worker.ErrSessionNotFound) {
				t.Fatalf("session after stop: %v", err)
			}
			if err := w.Stop(ctxT(t), id); err != nil {
				t.Fatalf("second stop: %v", err)
			}
		})
	}
	if err := w.Stop(ctxT(t), "ws-a/unknown"); err != nil {
		t.Fatalf("stop unknown: %v", err)
	}
	noChildren(t)
}

func TestLeftoverChildrenKilledWhenLeaderExits(t *testing.T) {
	as := newAppServer(t, map[string]string{"main.sh": "sleep 60 &\nfor f in /proc/self/task/*/children; do read -r kids < $f; done\necho bg $kids\n"})
	w := newWorker(t, Options{Python: "sh"})
	id, err := w.Start(ctxT(t), config(t, as.base(), "bg", TypePython, "main.sh", nil))
	if err != nil {
		t.Fatal(err)
	}
	bg, _ := strconv.Atoi(waitLog(t, w, id, worker.LogStdout, `^bg (\d+)$`)[1])
	waitStatus(t, w, id, worker.StatusCompleted)
	waitGone(t, []int{bg}, nil)
}

func TestStartTimeout(t *testing.T) {
	as := newAppServer(t, map[string]string{"main.sh": "echo hi\n"})
	as.block = make(chan struct{})
	dir := testserver.SharedTempDir(t)
	w := newWorker(t, Options{Python: "sh", WorkDir: dir})
	cfg := config(t, as.base(), "slow", TypePython, "main.sh", nil)
	cfg.Timeout = 300 * time.Millisecond
	var mu sync.Mutex
	var progress []worker.Progress
	cfg.ProgressFunc = func(ctx context.Context, p worker.Progress) error {
		mu.Lock()
		progress = append(progress, p)
		mu.Unlock()
		return nil
	}
	begin := time.Now()
	_, err := w.Start(ctxT(t), cfg)
	if err == nil || !strings.Contains(err.Error(), "startup timed out after 300ms") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("start took %s", d)
	}
	if w.Sessions.Len() != 0 {
		t.Fatal("timed-out session kept")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("working directories left: %v", ents)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) == 0 || progress[len(progress)-1].Type != worker.ProgressError {
		t.Fatalf("progress = %v", progress)
	}
}

func TestStopDuringStart(t *testing.T) {
	as := newAppServer(t, map[string]string{"main.sh": "echo hi\n"})
	as.block = make(chan struct{})
	dir := testserver.SharedTempDir(t)
	w := newWorker(t, Options{Python: "sh", WorkDir: dir})
	errc := make(chan error, 1)
	go func() {
		_, err := w.Start(context.Background(), config(t, as.base(), "s1", TypePython, "main.sh", nil))
		errc <- err
	}()
	for as.hits.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.Stop(ctxT(t), "ws-a/s1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "session stopped during start") {
			t.Fatalf("start: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("start did not give up after stop")
	}
	if w.Sessions.Len() != 0 {
		t.Fatal("session kept")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("working directories left: %v", ents)
	}
	noChildren(t)
}

func TestUnsafePaths(t *testing.T) {
	as := newAppServer(t, map[string]string{"main.py": "print(1)\n"})
	dir := testserver.SharedTempDir(t)
	w := newWorker(t, Options{WorkDir: dir})
	for _, tc := range []struct {
		entry string
		files any
	}{
		{entry: "../evil.py"},
		{entry: "/etc/passwd"},
		{entry: "a/../../evil.py"},
		{entry: "a/../main.py"},
		{entry: `a\..\evil.py`},
		{entry: "a//b.py"},
		{entry: "main.py", files: []any{"../outside.py"}},
		{entry: "main.py", files: []any{map[string]any{"path": "/abs.py"}}},
		{entry: "main.py", files: []any{map[string]any{"name": "x/../../y"}}},
		{entry: "main.py", files: []any{42}},
		{entry: "main.py", files: "main.py"},
	} {
		man := map[string]any{}
		if tc.files != nil {
			man["files"] = tc.files
		}
		_, err := w.Start(ctxT(t), config(t, as.base(), "p", TypePython, tc.entry, man))
		if !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("entry %q files %v: err = %v, want ErrInvalidConfig", tc.entry, tc.files, err)
		}
	}
	if n := as.hits.Load(); n != 0 {
		t.Fatalf("%d requests made for unsafe paths", n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("working directories made: %v", ents)
	}
	if w.Sessions.Len() != 0 {
		t.Fatal("sessions kept")
	}
}

func TestFetchErrors(t *testing.T) {
	as := newAppServer(t, map[string]string{"main.py": "print(1)\n"})
	w := newWorker(t, Options{})
	cfg := config(t, as.base(), "tok", TypePython, "main.py", nil)
	cfg.Token = "wrong"
	if _, err := w.Start(ctxT(t), cfg); err == nil || !strings.Contains(err.Error(), "fetch main.py: HTTP 401 Unauthorized: missing or bad token") {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := w.Start(ctxT(t), config(t, as.base(), "nf", TypePython, "missing.py", nil)); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("missing file: %v", err)
	}
	cfg = config(t, "", "nobase", TypePython, "main.py", nil)
	if _, err := w.Start(ctxT(t), cfg); !errors.Is(err, worker.ErrInvalidConfig) {
		t.Fatalf("no base url: %v", err)
	}
	cfg = config(t, as.base(), "type", "conda-jupyter-kernel", "main.py", nil)
	if _, err := w.Start(ctxT(t), cfg); err == nil || !strings.Contains(err.Error(), `app type "conda-jupyter-kernel" is not supported`) {
		t.Fatalf("bad type: %v", err)
	}
	w2 := newWorker(t, Options{Python: "no-such-python-binary"})
	if _, err := w2.Start(ctxT(t), config(t, as.base(), "np", TypePython, "main.py", nil)); !errors.Is(err, worker.ErrWorkerNotAvailable) {
		t.Fatalf("missing interpreter: %v", err)
	}
	big := newAppServer(t, map[string]string{"main.py": strings.Repeat("#", 2000)})
	w3 := newWorker(t, Options{MaxFileBytes: 1000})
	if _, err := w3.Start(ctxT(t), config(t, big.base(), "big", TypePython, "main.py", nil)); err == nil || !strings.Contains(err.Error(), "larger than the limit of 1000 bytes") {
		t.Fatalf("big file: %v", err)
	}
	if w.Sessions.Len()+w2.Sessions.Len()+w3.Sessions.Len() != 0 {
		t.Fatal("failed sessions kept")
	}
}

func TestMaxSessions(t *testing.T) {
	as := newAppServer(t, map[string]string{"sleep.sh": "exec sleep 30\n", "quick.sh": "exit 0\n"})
	w := newWorker(t, Options{Python: "sh", MaxSessions: 2})
	ctx := ctxT(t)
	for _, cid := range []string{"m1", "m2"} {
		if _, err := w.Start(ctx, config(t, as.base(), cid, TypePython, "sleep.sh", nil)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := w.Start(ctx, config(t, as.base(), "m3", TypePython, "sleep.sh", nil))
	if !errors.Is(err, worker.ErrWorkerNotAvailable) || !strings.Contains(err.Error(), "session limit reached (2)") {
		t.Fatalf("third session: %v", err)
	}
	if err := w.Stop(ctx, "ws-a/m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Start(ctx, config(t, as.base(), "q1", TypePython, "quick.sh", nil)); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, "ws-a/q1", worker.StatusCompleted)
	// Full again, but q1 only holds logs: it makes room.
	if _, err := w.Start(ctx, config(t, as.base(), "m4", TypePython, "sleep.sh", nil)); err != nil {
		t.Fatalf("start with a finished session to evict: %v", err)
	}
	var ids []string
	for _, s := range w.Sessions.List("") {
		ids = append(ids, s.SessionID)
	}
	if !slices.Equal(ids, []string{"ws-a/m2", "ws-a/m4"}) {
		t.Fatalf("sessions = %v", ids)
	}
}

func TestFinishedSessionsExpire(t *testing.T) {
	as := newAppServer(t, map[string]string{"quick.sh": "echo done\n"})
	w := newWorker(t, Options{Python: "sh", KeepFinished: 200 * time.Millisecond})
	id, err := w.Start(ctxT(t), config(t, as.base(), "e1", TypePython, "quick.sh", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, id, worker.StatusCompleted)
	deadline := time.Now().Add(5 * time.Second)
	for w.Sessions.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("finished session never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A line longer than MaxLineBytes is split into partial entries, cut at
// character boundaries, and an info entry says so: nothing is dropped.
func TestLongLinesSplit(t *testing.T) {
	// 5000 a's; 1500 two-byte characters (3000 bytes) with the cap at an odd
	// number of bytes; a short line; an unterminated last line.
	as := newAppServer(t, map[string]string{"main.sh": "head -c 5000 /dev/zero | tr '\\0' a; echo; " +
		"i=0; while [ $i -lt 1500 ]; do printf '\\303\\251'; i=$((i+1)); done; echo; echo next; printf 'no newline'\n"})
	w := newWorker(t, Options{Python: "sh", MaxLineBytes: 1023})
	id, err := w.Start(ctxT(t), config(t, as.base(), "l1", TypePython, "main.sh", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, id, worker.StatusCompleted)
	page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{Type: worker.LogStdout})
	var lines []string
	var cur strings.Builder
	for _, e := range page.Items {
		if !utf8.ValidString(e.Content) || len(e.Content) > 1023 {
			t.Errorf("piece of %d bytes, valid UTF-8 %v", len(e.Content), utf8.ValidString(e.Content))
		}
		cur.WriteString(e.Content)
		if !e.Partial {
			lines = append(lines, cur.String())
			cur.Reset()
		}
	}
	want := []string{strings.Repeat("a", 5000), strings.Repeat("é", 1500), "next", "no newline"}
	if d := cmp.Diff(want, lines); d != "" {
		t.Fatalf("lines rebuilt from the pieces (-want +got):\n%.400s", d)
	}
	if len(page.Items) != 5+3+2 {
		t.Errorf("%d stdout entries, want 10 (5 + 3 pieces, 2 lines)", len(page.Items))
	}
	info, _ := w.GetLogs(context.Background(), id, worker.LogQuery{Type: worker.LogInfo})
	all := strings.Join(contents(info, worker.LogInfo), "\n")
	for _, msg := range []string{"a stdout line of 5000 bytes was longer than the line cap (1023 bytes): it is split into 5 entries",
		"a stdout line of 3000 bytes was longer than the line cap (1023 bytes): it is split into 3 entries"} {
		if !strings.Contains(all, msg) {
			t.Errorf("info lacks %q:\n%s", msg, all)
		}
	}
}

func TestShutdownStopsEverything(t *testing.T) {
	as := newAppServer(t, map[string]string{"main.sh": "sleep 60 &\nsleep 60\n"})
	w := New(Options{Python: "sh", WorkDir: testserver.SharedTempDir(t)})
	var groups []int
	for i := range 3 {
		id, err := w.Start(ctxT(t), config(t, as.base(), fmt.Sprint("sd", i), TypePython, "main.sh", nil))
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, procOf(t, w, id).pid)
	}
	if err := w.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitGone(t, groups, groups)
	noChildren(t)
	if w.Sessions.Len() != 0 {
		t.Fatal("sessions left")
	}
	if _, err := w.Start(ctxT(t), config(t, as.base(), "late", TypePython, "main.sh", nil)); !errors.Is(err, worker.ErrWorkerNotAvailable) {
		t.Fatalf("start after shutdown: %v", err)
	}
	if err := w.Shutdown(ctxT(t)); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}

// TestChildDiesWithWorker kills a worker process with SIGKILL (no chance to
// stop anything) and checks that its app process dies too (Pdeathsig).
func TestChildDiesWithWorker(t *testing.T) {
	if _, ok := readStat(os.Getpid()); !ok {
		t.Skip("no /proc")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "PROCESS_WORKER_TEST_DIR="+testserver.SharedTempDir(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "PID ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if !alive(pid) {
		t.Fatalf("app process %d not running", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, []int{pid}, nil)
}

// A follower that reads slower than the app writes gets every line: with a
// retention of 50 lines the worker stops reading the app's pipe while the
// follower is behind, from the very first line (before the follower's
// first call), and memory stays within the retention.
func TestFollowerBackPressure(t *testing.T) {
	const n = 5000
	as := newAppServer(t, map[string]string{"main.sh": fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo $i; i=$((i+1)); done\n", n)})
	w := newWorker(t, Options{Python: "sh", Logs: worker.LogLimits{MaxEntries: 50}})
	id, err := w.Start(ctxT(t), config(t, as.base(), "bp", TypePython, "main.sh", nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	maxKept := 0
	for off := int64(0); ; {
		page, err := w.GetLogs(ctxT(t), id, worker.LogQuery{Offset: int(off), Limit: 7, Wait: 5 * time.Second, Follower: "slow"})
		if err != nil {
			t.Fatal(err)
		}
		if page.Missed != 0 {
			t.Fatalf("the follower missed %d lines at offset %d", page.Missed, off)
		}
		for _, e := range page.Items {
			if e.Type == worker.LogStdout {
				got = append(got, e.Content)
			}
		}
		off = page.NextOffset
		s, _ := w.Sessions.Lookup(id)
		maxKept = max(maxKept, s.Logs().Stats().Entries)
		if len(page.Items) == 0 && page.Status == string(worker.StatusCompleted) {
			break
		}
	}
	if len(got) != n {
		t.Fatalf("%d lines, want %d", len(got), n)
	}
	for i, c := range got {
		if c != strconv.Itoa(i) {
			t.Fatalf("line %d is %q", i, c)
		}
	}
	if maxKept > 50+10 {
		t.Fatalf("the store kept %d entries, retention 50", maxKept)
	}
}
