package jupyter

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// python is Debian's interpreter, which has python3-ipykernel (the python3
// on PATH may be another one without it).
const python = "/usr/bin/python3"

var (
	kernelCheck     sync.Once
	kernelAvailable error
)

// needKernel skips the test when ipykernel cannot be imported, except in
// CI, where .ci/run installs it and its absence is a failure.
func needKernel(t testing.TB) {
	t.Helper()
	kernelCheck.Do(func() {
		out, err := exec.Command(python, "-c", "import ipykernel, jupyter_client").CombinedOutput()
		if err != nil {
			kernelAvailable = fmt.Errorf("%s cannot import ipykernel and jupyter_client (install python3-ipykernel python3-jupyter-client): %v: %s", python, err, out)
		}
	})
	if kernelAvailable != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(kernelAvailable)
		}
		t.Skip(kernelAvailable)
	}
}

// recordingLauncher is ExecLauncher that remembers the pid it started.
type recordingLauncher struct {
	mu   sync.Mutex
	pids []int
}

func (r *recordingLauncher) launch(ctx context.Context, argv, env []string, dir string) (Process, error) {
	p, err := ExecLauncher(ctx, argv, env, dir)
	if err == nil {
		r.mu.Lock()
		r.pids = append(r.pids, p.(execProcess).PID())
		r.mu.Unlock()
	}
	return p, err
}

func (r *recordingLauncher) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pids[len(r.pids)-1]
}

func startKernel(t testing.TB, opts Options) (*Kernel, *recordingLauncher) {
	t.Helper()
	needKernel(t)
	rl := &recordingLauncher{}
	if opts.Python == "" {
		opts.Python = python
	}
	if opts.Launcher == nil {
		opts.Launcher = rl.launch
	}
	if opts.ConnDir == "" {
		opts.ConnDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return k, rl
}

func execute(t *testing.T, k *Kernel, code string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := k.Execute(ctx, code, nil)
	if err != nil {
		t.Fatalf("Execute(%q): %v", code, err)
	}
	return r
}

func TestStartWritesPrivateConnectionFile(t *testing.T) {
	k, _ := startKernel(t, Options{})
	fi, err := os.Stat(k.ConnectionFile())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("connection file mode %v, want 0600", fi.Mode().Perm())
	}
	if info := k.Info(); info.Language != "python" || !strings.HasPrefix(info.ProtocolVersion, "5.") {
		t.Errorf("kernel info %+v, want python and protocol 5.x", info)
	}
}

func TestExecuteStdoutStderrAndResult(t *testing.T) {
	k, _ := startKernel(t, Options{})
	r := execute(t, k, "print('hello')")
	want := map[string]any{"status": "ok", "outputs": []any{map[string]any{"type": "stream", "name": "stdout", "text": "hello\n"}}}
	if got := r.ToMap(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("print: got %v, want %v", got, want)
	}

	r = execute(t, k, "import sys; print('oops', file=sys.stderr)")
	if len(r.Outputs) != 1 || r.Outputs[0].Name != "stderr" || r.Outputs[0].Text != "oops\n" {
		t.Errorf("stderr: got %+v", r.ToMap())
	}

	r = execute(t, k, "6*7")
	if len(r.Outputs) != 1 {
		t.Fatalf("expression: got %+v", r.ToMap())
	}
	o := r.Outputs[0].ToMap()
	if o["type"] != "execute_result" || o["data"].(map[string]any)["text/plain"] != "42" || o["execution_count"] != r.ExecutionCount || r.ExecutionCount < 1 {
		t.Errorf("expression: got %v (execution count %d)", o, r.ExecutionCount)
	}
	if _, ok := o["metadata"].(map[string]any); !ok {
		t.Errorf("execute_result metadata %T, want a map", o["metadata"])
	}
	if _, ok := r.ToMap()["error"]; ok {
		t.Errorf("ok result carries an error key: %v", r.ToMap())
	}
}

// A 1x1 PNG.
const pngB64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

func TestExecuteDisplayPNGAndHTML(t *testing.T) {
	k, _ := startKernel(t, Options{})
	code := "import base64\nfrom IPython.display import display, Image, HTML\n" +
		"display(Image(data=base64.b64decode('" + pngB64 + "')))\n" +
		"display(HTML('<b>bold</b>'))\n"
	r := execute(t, k, code)
	if r.Status != "ok" || len(r.Outputs) != 2 {
		t.Fatalf("got %+v", r.ToMap())
	}
	img := r.Outputs[0].ToMap()
	if img["type"] != "display_data" {
		t.Fatalf("first output %v, want display_data", img)
	}
	png, _ := img["data"].(map[string]any)["image/png"].(string)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(png))
	if err != nil || !bytes.HasPrefix(raw, []byte("\x89PNG")) {
		t.Errorf("image/png is not a base64 PNG: %q (%v)", png, err)
	}
	html := r.Outputs[1].ToMap()
	if html["type"] != "display_data" || html["data"].(map[string]any)["text/html"] != "<b>bold</b>" {
		t.Errorf("second output %v, want the HTML", html)
	}
}

func TestExecuteException(t *testing.T) {
	k, _ := startKernel(t, Options{})
	r := execute(t, k, "print('before')\n1/0")
	m := r.ToMap()
	if m["status"] != "error" {
		t.Fatalf("status %v, want error", m["status"])
	}
	e := m["error"].(map[string]any)
	if e["ename"] != "ZeroDivisionError" || !strings.Contains(e["evalue"].(string), "division by zero") {
		t.Errorf("error %v", e)
	}
	if tb := e["traceback"].([]any); len(tb) == 0 {
		t.Errorf("empty traceback")
	}
	// Errors are not outputs (upstream keeps them in "error" only).
	if len(r.Outputs) != 1 || r.Outputs[0].Text != "before\n" {
		t.Errorf("outputs %v", m["outputs"])
	}
	// The kernel carries on.
	if r := execute(t, k, "1+1"); r.Status != "ok" {
		t.Errorf("after an exception: %v", r.ToMap())
	}
}

func TestExecuteStatePersistsAndOrder(t *testing.T) {
	k, _ := startKernel(t, Options{})
	execute(t, k, "x = 41")
	r := execute(t, k, "x + 1")
	if r.Outputs[0].Data["text/plain"] != "42" {
		t.Errorf("state lost: %v", r.ToMap())
	}

	// Interleaved stdout, stderr and display, flushed each time so that the
	// kernel publishes them as separate messages in program order.
	code := `import sys
from IPython.display import display
for i in range(3):
    print('out', i, flush=True)
    print('err', i, file=sys.stderr, flush=True)
    display({'text/plain': 'disp %d' % i}, raw=True)
'end'`
	var seen []string
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := k.Execute(ctx, code, func(o Output) { seen = append(seen, o.Type) })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range r.Outputs {
		switch o.Type {
		case "stream":
			got = append(got, o.Name+":"+strings.TrimSpace(o.Text))
		default:
			got = append(got, o.Type+":"+fmt.Sprint(o.Data["text/plain"]))
		}
	}
	want := []string{}
	for i := range 3 {
		want = append(want, fmt.Sprintf("stdout:out %d", i), fmt.Sprintf("stderr:err %d", i), fmt.Sprintf("display_data:disp %d", i))
	}
	want = append(want, "execute_result:'end'")
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("order:\n got %v\nwant %v", got, want)
	}
	if len(seen) != len(r.Outputs) {
		t.Errorf("onOutput saw %d outputs, result has %d", len(seen), len(r.Outputs))
	}
}

func TestExecuteTimeoutInterruptsAndKernelStaysUsable(t *testing.T) {
	for _, mode := range []string{InterruptMessage, InterruptSignal} {
		t.Run(mode, func(t *testing.T) {
			k, _ := startKernel(t, Options{InterruptMode: mode})
			execute(t, k, "y = 7")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			r, err := k.Execute(ctx, "import time\nprint('sleeping', flush=True)\ntime.sleep(600)", nil)
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "after 2s") {
				t.Fatalf("err %v, want ErrTimeout naming 2s", err)
			}
			m := r.ToMap()
			if m["status"] != "error" || m["error"].(map[string]any)["ename"] != "TimeoutError" {
				t.Errorf("result %v", m)
			}
			if len(r.Outputs) == 0 || r.Outputs[0].Text != "sleeping\n" {
				t.Errorf("outputs before the timeout lost: %v", m["outputs"])
			}
			if r := execute(t, k, "y * 6"); r.Status != "ok" || r.Outputs[0].Data["text/plain"] != "42" {
				t.Errorf("after the interrupt: %v", r.ToMap())
			}
		})
	}
}

func TestKernelCrashIsDead(t *testing.T) {
	k, _ := startKernel(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := k.Execute(ctx, "import os; os._exit(3)", nil)
	if !errors.Is(err, ErrKernelDead) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err %v, want ErrKernelDead with exit status 3", err)
	}
	<-k.Done()
	if !errors.Is(k.Err(), ErrKernelDead) {
		t.Errorf("Err() %v", k.Err())
	}
	if _, err := k.Execute(ctx, "1", nil); !errors.Is(err, ErrKernelDead) {
		t.Errorf("execute on a dead kernel: %v", err)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// descendants lists the pids whose parent chain reaches pid.
func descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 {
			pp, _ := strconv.Atoi(f[1])
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func TestShutdownLeavesNothing(t *testing.T) {
	needKernel(t)
	rl := &recordingLauncher{}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := Start(ctx, Options{Python: python, Launcher: rl.launch, ConnDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pid := rl.pid()
	// A child the kernel started and never waited for: Debian's ipykernel
	// then does not exit after shutdown_request (jupyter_client's own
	// shutdown waits and kills too), so this exercises the kill after the
	// grace.
	execute(t, k, "import subprocess; p = subprocess.Popen(['sleep', '1'])")
	if !processAlive(pid) {
		t.Fatal("kernel not running before shutdown")
	}
	if err := k.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("kernel pid %d still running after Shutdown", pid)
	}
	if d := descendants(os.Getpid()); len(d) > 0 {
		t.Logf("descendants after shutdown (the kernel's own children exit with it): %v", d)
	}
	if _, err := os.Stat(k.ConnectionFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("connection file left behind: %v", err)
	}
	if !errors.Is(k.Err(), ErrClosed) {
		t.Errorf("Err() after Shutdown: %v", k.Err())
	}
	if _, err := k.Execute(ctx, "1", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after Shutdown: %v", err)
	}
	if err := k.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestStartFailsCleanly(t *testing.T) {
	needKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	_, err := Start(ctx, Options{Python: python, Argv: []string{python, "-c", "import sys; sys.exit(5)"}, ConnDir: dir})
	if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "exit status 5") {
		t.Errorf("err %v, want ErrStart naming exit status 5", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("connection file left: %v", ents)
	}
	if _, err := Start(ctx, Options{InterruptMode: "bogus"}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("bad interrupt mode: %v", err)
	}
}
