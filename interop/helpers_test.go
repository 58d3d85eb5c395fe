package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
)

// isCI reports whether the tests run in CI (CI=true, as set by GitHub
// Actions and most CI systems): there a missing prerequisite is a failure,
// not a reason to skip.
func isCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// ---------------------------------------------------------------------------
// Peer subprocesses speaking the READY/RESULT/ERROR line protocol of
// interop/js/scenario.mjs and interop/testdata/py_peer.py.

// proc is a running peer subprocess.
type proc struct {
	t      testing.TB
	label  string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stdin  io.WriteCloser // nil unless started with a stdin pipe
	stderr *testserver.Buffer
	other  *testserver.Buffer // stdout lines that are not protocol lines
	lines  chan string        // READY / RESULT / ERROR lines
	exited chan struct{}      // closed when the process has exited
	err    error              // Wait's error, valid after exited
}

// startProc starts argv with a hard timeout (the process group is killed
// when it elapses or the test ends). With withStdin the process gets a pipe
// on stdin (serve scenarios stop when it closes), else /dev/null.
func startProc(t testing.TB, label string, timeout time.Duration, withStdin bool, dir string, argv ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// the whole group: run-py.sh and npm may have children
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	p := &proc{t: t, label: label, cmd: cmd, cancel: cancel, stderr: &testserver.Buffer{}, other: &testserver.Buffer{},
		lines: make(chan string, 16), exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("%s: %v", label, err)
	}
	if withStdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			cancel()
			t.Fatalf("%s: %v", label, err)
		}
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: start %q: %v", label, argv, err)
	}
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "READY ") || strings.HasPrefix(line, "RESULT ") || strings.HasPrefix(line, "ERROR ") {
				p.lines <- line
			} else {
				fmt.Fprintln(p.other, line)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-scanDone
		p.err = cmd.Wait()
		close(p.lines)
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.stdin != nil {
			p.stdin.Close()
		}
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			cancel()
			<-p.exited
		}
		cancel()
	})
	return p
}

// diag is the subprocess's stderr (and stray stdout), for failure messages.
func (p *proc) diag() string {
	const max = 12000
	s := p.stderr.String()
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	o := p.other.String()
	if len(o) > 4000 {
		o = "…" + o[len(o)-4000:]
	}
	out := fmt.Sprintf("\n----- %s stderr -----\n%s", p.label, s)
	if strings.TrimSpace(o) != "" {
		out += fmt.Sprintf("\n----- %s other stdout -----\n%s", p.label, o)
	}
	return out + "\n----- end -----"
}

func (p *proc) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s: %s%s", p.label, fmt.Sprintf(format, args...), p.diag())
}

// next returns the next protocol line, or "" when the process exited
// without one.
func (p *proc) next() string {
	line, ok := <-p.lines
	if !ok {
		return ""
	}
	return line
}

func decodeLine(line, prefix string) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, prefix)), &m); err != nil {
		return nil, fmt.Errorf("bad %q line: %v", strings.TrimSpace(prefix), err)
	}
	return m, nil
}

// waitReady waits for the READY line of a serve scenario.
func (p *proc) waitReady() map[string]any {
	p.t.Helper()
	line := p.next()
	switch {
	case strings.HasPrefix(line, "READY "):
		m, err := decodeLine(line, "READY ")
		if err != nil {
			p.fatalf("%v", err)
		}
		return m
	case line == "":
		<-p.exited
		p.fatalf("exited without READY (%v)", p.err)
	default:
		p.fatalf("expected READY, got %s", line)
	}
	return nil
}

// finish closes stdin (if any) and returns the final RESULT, or the ERROR
// message. It fails the test if neither comes.
func (p *proc) finish() (result map[string]any, errMsg string) {
	p.t.Helper()
	if p.stdin != nil {
		p.stdin.Close()
	}
	var last string
	for line := p.next(); line != ""; line = p.next() {
		last = line
	}
	<-p.exited
	switch {
	case strings.HasPrefix(last, "RESULT "):
		m, err := decodeLine(last, "RESULT ")
		if err != nil {
			p.fatalf("%v", err)
		}
		if p.err != nil {
			p.fatalf("RESULT printed but the process failed: %v", p.err)
		}
		return m, ""
	case strings.HasPrefix(last, "ERROR "):
		return nil, strings.TrimPrefix(last, "ERROR ")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) || p.err != nil {
		p.fatalf("no RESULT/ERROR line; process: %v (killed after its hard timeout?)", p.err)
	}
	p.fatalf("no RESULT/ERROR line")
	return nil, ""
}

// mustResult is finish that fails on ERROR.
func (p *proc) mustResult() map[string]any {
	p.t.Helper()
	r, e := p.finish()
	if e != "" {
		p.fatalf("scenario failed: ERROR %s", e)
	}
	return r
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// JSON result helpers (results decode with encoding/json: numbers are float64).

// at walks a decoded JSON value by keys and indexes ("results", 0, "x").
func at(v any, path ...any) any {
	for _, k := range path {
		switch key := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[key]
		case int:
			l, _ := v.([]any)
			if key < 0 || key >= len(l) {
				return nil
			}
			v = l[key]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := at(v, path...).(string)
	return s
}

// expect compares a value at path with want (JSON-equal).
func expect(t testing.TB, what string, got, want any) {
	t.Helper()
	if mustJSON(got) != mustJSON(want) {
		t.Errorf("%s = %s, want %s", what, mustJSON(got), mustJSON(want))
	}
}

func expectContains(t testing.TB, what, got, sub string) {
	t.Helper()
	if !strings.Contains(got, sub) {
		t.Errorf("%s = %q, want it to contain %q", what, got, sub)
	}
}

// ---------------------------------------------------------------------------

// pattern is the payload of the big-payload checks: byte i is i % 256
// (py_peer.py's {"$pattern": N}).
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testdata(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// goConnect connects this module's Go client to url and closes it when the test ends.
func goConnect(t *testing.T, url string, cfg rpc.Config) *rpc.Client {
	t.Helper()
	cfg.ServerURL = url
	if cfg.Logger == nil {
		cfg.Logger = testserver.Logger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rpc.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkJoined asserts what the JS and Python join scenarios share: client A
// minted a token, B joined A's workspace with it as a new user, listed and
// called A's probe service. It returns A's workspace.
func checkJoined(t *testing.T, r map[string]any, asRoot bool) string {
	t.Helper()
	aws := str(r, "a", "workspace")
	if asRoot {
		expect(t, "A workspace", aws, "ws-user-root")
	}
	expect(t, "B workspace", str(r, "b", "workspace"), aws)
	if str(r, "b", "user") == str(r, "a", "user") {
		t.Errorf("B user = A user = %q; want a new user id", str(r, "b", "user"))
	}
	expect(t, "token_is_jwt", at(r, "token_is_jwt"), true)
	expect(t, "called", at(r, "called"), "hello B")
	expect(t, "probe_id", str(r, "probe_id"), aws+"/"+str(r, "a", "client_id")+":join-probe")
	expectContains(t, "listed", mustJSON(at(r, "listed")), `"`+str(r, "probe_id")+`"`)
	return aws
}
