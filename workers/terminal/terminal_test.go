package terminal

import (
	"context"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

func TestMain(m *testing.M) {
	MaybeSupervise()
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(SpawnerFunction))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newWorker(t *testing.T, opts Options) *Worker {
	t.Helper()
	if opts.WorkDir == "" {
		opts.WorkDir = testserver.SharedTempDir(t)
	}
	if opts.Logger == nil {
		opts.Logger = testserver.Logger(t)
	}
	w := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return w
}

func termConfig(ws, cid string, manifest map[string]any) worker.Config {
	m := worker.Manifest{"type": Type, "name": cid}
	for k, v := range manifest {
		m[k] = v
	}
	return worker.Config{
		ID: ws + "/" + cid, AppID: "app-" + cid, Workspace: ws, ClientID: cid,
		ServerURL: "http://127.0.0.1:9", Token: "secret-token", Manifest: m,
	}
}

// start starts a session and returns its id.
func start(t *testing.T, w *Worker, cid string, manifest map[string]any) string {
	t.Helper()
	id, err := w.Start(ctxT(t), termConfig("ws-1", cid, manifest))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return id
}

func exec1(t *testing.T, w *Worker, id, script string, cfg map[string]any) map[string]any {
	t.Helper()
	if cfg == nil {
		cfg = map[string]any{"timeout": 60}
	}
	v, err := w.Execute(ctxT(t), worker.ExecuteRequest{SessionID: id, Script: script, Config: cfg})
	if err != nil {
		t.Fatalf("execute %q: %v", script, err)
	}
	return v.(map[string]any)
}

func stdoutText(t *testing.T, res map[string]any) string {
	t.Helper()
	outs, _ := res["outputs"].([]any)
	if len(outs) == 0 {
		t.Fatalf("no outputs: %v", res)
	}
	m := outs[0].(map[string]any)
	if m["type"] != "stream" || m["name"] != "stdout" {
		t.Fatalf("output shape %v", m)
	}
	return m["text"].(string)
}

// waitScreen waits until the rendered screen contains want.
func waitScreen(t *testing.T, w *Worker, id, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := w.getScreenContent(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		s := res["content"].(string)
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("screen never showed %q; it is:\n%s", want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBashExecute: a bash session; execute returns exactly the command's
// output (no echo, no prompt, no ANSI), raw_output returns the raw bytes,
// the shell's state persists between executes, a failing command reports
// its status, and a timeout says so and leaves the terminal usable.
func TestBashExecute(t *testing.T) {
	w := newWorker(t, Options{})
	id := start(t, w, "bash", map[string]any{"startup_command": "/bin/bash --norc -i", "env": map[string]any{"GREETING": "hi"}})

	res := exec1(t, w, id, "echo \"$GREETING\" from \"$HYPHA_CLIENT_ID\"; printf '\\033[31mred\\033[0m\\n'", nil)
	if res["status"] != "ok" {
		t.Fatalf("status %v", res)
	}
	if got := stdoutText(t, res); got != "hi from bash\nred\n" {
		t.Fatalf("cleaned output %q", got)
	}
	raw := stdoutText(t, exec1(t, w, id, "printf '\\033[32mgreen\\033[0m\\n'", map[string]any{"raw_output": true, "timeout": 30}))
	if !strings.Contains(raw, "\x1b[32mgreen\x1b[0m\r\n") {
		t.Fatalf("raw output lacks the ANSI codes: %q", raw)
	}
	// State persists: cd and variables, multi-line scripts.
	exec1(t, w, id, "cd /tmp\nX=42", nil)
	if got := stdoutText(t, exec1(t, w, id, "pwd\necho $X", nil)); got != "/tmp\n42\n" {
		t.Fatalf("state: %q", got)
	}
	// A failing command.
	res = exec1(t, w, id, "ls /nonexistent-dir-xyz", nil)
	if res["status"] != "error" || res["exit_code"] != int64(2) || !strings.Contains(stdoutText(t, res), "No such file") {
		t.Fatalf("failing command: %v", res)
	}
	// A long script (more than one typed line) and output without a
	// final newline.
	long := "printf %s " + strings.Repeat("x", 10000)
	if got := stdoutText(t, exec1(t, w, id, long, nil)); got != strings.Repeat("x", 10000) {
		t.Fatalf("long script output: %d bytes", len(got))
	}
	// Timeout: a clear status, and the next command works.
	res = exec1(t, w, id, "sleep 30", map[string]any{"timeout": 1})
	if res["status"] != "error" || !strings.Contains(fmt.Sprint(res["error"]), "TimeoutError") {
		t.Fatalf("timeout: %v", res)
	}
	if got := stdoutText(t, exec1(t, w, id, "echo after", nil)); got != "after\n" {
		t.Fatalf("after timeout: %q", got)
	}
	// The screen model and get_logs(type=screen) show the rendered screen.
	page, err := w.GetLogs(ctxT(t), id, worker.LogQuery{Type: "screen"})
	if err != nil || len(page.Items) != 1 || !strings.Contains(page.Items[0].Content, "after") {
		t.Fatalf("screen page %+v, %v", page, err)
	}
	if strings.Contains(page.Items[0].Content, "\x1b") {
		t.Fatalf("screen holds escape codes: %q", page.Items[0].Content)
	}
	// The session log holds the output lines.
	logs, _ := w.GetLogs(ctxT(t), id, worker.LogQuery{Type: worker.LogStdout})
	found := false
	for _, e := range logs.Items {
		found = found || e.Content == "hi from bash"
	}
	if !found {
		t.Fatalf("log lacks the output line: %v", logs.Items)
	}
}

// TestPythonREPLExecute: python3 -i; execute shows an expression's value
// as the REPL does, keeps state, and reports an exception as an error.
func TestPythonREPLExecute(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testserver.NeedOrSkip(t, false, py)
	}
	w := newWorker(t, Options{})
	id := start(t, w, "py", map[string]any{"startup_command": py + " -i -q"})
	if got := stdoutText(t, exec1(t, w, id, "x = 6\nx * 7", nil)); got != "42\n" {
		t.Fatalf("expression: %q", got)
	}
	if got := stdoutText(t, exec1(t, w, id, "for i in range(3):\n    print(i + x)\n", nil)); got != "6\n7\n8\n" {
		t.Fatalf("loop: %q", got)
	}
	res := exec1(t, w, id, "1/0", nil)
	if res["status"] != "error" || !strings.Contains(stdoutText(t, res), "ZeroDivisionError") {
		t.Fatalf("exception: %v", res)
	}
	if got := stdoutText(t, exec1(t, w, id, "print('still', x)", nil)); got != "still 6\n" {
		t.Fatalf("after exception: %q", got)
	}
}

// fullScreen draws with cursor moves on the alternate screen, as curses
// programs do, then waits.
const fullScreen = `import sys, time
sys.stdout.write("\x1b[?1049h\x1b[2J")
for row in range(1, 6):
    sys.stdout.write("\x1b[%d;%dH" % (row, row * 3) + "row%d" % row)
sys.stdout.write("\x1b[10;20HBOTTOM\x1b[1;1HTOP")
sys.stdout.flush()
time.sleep(600)
`

// TestFullScreenProgram: the screen model renders cursor-addressed output
// (what get_screen_content and get_logs(type=screen) return).
func TestFullScreenProgram(t *testing.T) {
	w := newWorker(t, Options{})
	id := start(t, w, "fs", map[string]any{"startup_command": []any{"/usr/bin/python3", "-c", fullScreen}})
	screen := waitScreen(t, w, id, "BOTTOM")
	lines := strings.Split(screen, "\n")
	// "row1" at column 3, then "TOP" over columns 1-3.
	if len(lines) < 10 || strings.TrimRight(lines[0], " ") != "TOPow1" || strings.TrimRight(lines[2], " ") != strings.Repeat(" ", 8)+"row3" ||
		strings.TrimRight(lines[9], " ") != strings.Repeat(" ", 19)+"BOTTOM" {
		t.Fatalf("rendered screen:\n%s", screen)
	}
}

// TestBurst: 10 MB of output in one command reaches execute whole and an
// attached viewer whole, in order.
func TestBurst(t *testing.T) {
	w := newWorker(t, Options{ViewerBytes: 64 << 20})
	id := start(t, w, "burst", map[string]any{"startup_command": "/bin/bash --norc -i"})
	exec1(t, w, id, "stty cols 200", nil) // fewer wrapped lines to render; changes nothing else
	seq, err := w.attach(ctxT(t), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	viewed := make(chan string, 1)
	vctx, vcancel := context.WithCancel(ctxT(t))
	defer vcancel()
	go func() {
		var b strings.Builder
		for m, err := range seq {
			if err != nil {
				break
			}
			if m["type"] == "dropped" {
				b.WriteString("<DROPPED>")
			}
			if m["type"] == "update" {
				b.WriteString(m["content"].(string))
			}
			if strings.Contains(b.String(), "END-OF-BURST\r\n") || vctx.Err() != nil {
				break
			}
		}
		viewed <- b.String()
	}()
	const n = 1300000 // seq 1..n is about 9.4 MB; with the line ends 10.6 MB on the terminal
	var want strings.Builder
	for i := 1; i <= n; i++ {
		want.WriteString(strconv.Itoa(i))
		want.WriteByte('\n')
	}
	began := time.Now()
	res := exec1(t, w, id, fmt.Sprintf("seq 1 %d; echo END-OF-BURST", n), map[string]any{"timeout": 300})
	got := stdoutText(t, res)
	t.Logf("execute of %d bytes took %s (%.1f MB/s) with a viewer attached", len(got), time.Since(began), float64(len(got))/time.Since(began).Seconds()/1e6)
	if got != want.String()+"END-OF-BURST\n" {
		t.Fatalf("execute output: %d bytes, want %d (first difference at %d)", len(got), want.Len()+13, firstDiff(got, want.String()))
	}
	var v string
	select {
	case v = <-viewed:
	case <-time.After(120 * time.Second):
		t.Fatal("the viewer never saw the end of the burst")
	}
	if strings.Contains(v, "<DROPPED>") {
		t.Fatal("the viewer was dropped")
	}
	clean := cleanOutput(v)
	i := strings.Index(clean, "\n1\n2\n3\n")
	if i < 0 || !strings.Contains(clean[i+1:], want.String()+"END-OF-BURST\n") {
		t.Fatalf("the viewer's output lacks the burst in order (%d bytes)", len(clean))
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSlowViewerDoesNotBlock: a viewer that never reads is reset (with a
// count) while the program writes far more than its bound; execute still
// gets everything.
func TestSlowViewerDoesNotBlock(t *testing.T) {
	w := newWorker(t, Options{ViewerBytes: 64 << 10})
	id := start(t, w, "slow", map[string]any{"startup_command": "/bin/bash --norc -i"})
	seq, err := w.attach(ctxT(t), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	next, stop := iterPull(seq)
	defer stop()
	if m, ok := next(); !ok || m["type"] != "initial" {
		t.Fatalf("first item %v", m)
	}
	got := stdoutText(t, exec1(t, w, id, "seq 1 200000 | tail -n 1", nil))
	if got != "200000\n" {
		t.Fatalf("execute: %q", got)
	}
	got = stdoutText(t, exec1(t, w, id, "seq 1 100000 | wc -l; seq 1 100000 >/dev/tty", nil))
	if !strings.HasPrefix(got, "100000\n") {
		t.Fatalf("execute: %q", got[:min(len(got), 100)])
	}
	m, ok := next()
	if !ok || m["type"] != "dropped" || m["dropped_bytes"].(int64) <= 0 || !strings.Contains(m["content"].(string), "\x1b[H") {
		t.Fatalf("slow viewer got %v", m)
	}
}

// TestResize: stty inside the terminal sees a resize.
func TestResize(t *testing.T) {
	w := newWorker(t, Options{Rows: 30, Cols: 100})
	id := start(t, w, "rs", map[string]any{"startup_command": "/bin/bash --norc -i"})
	if got := stdoutText(t, exec1(t, w, id, "stty size", nil)); got != "30 100\n" {
		t.Fatalf("initial size %q", got)
	}
	if res, err := w.resizeTerminal(ctxT(t), id, 50, 132); err != nil || res["success"] != true {
		t.Fatalf("resize: %v %v", res, err)
	}
	if got := stdoutText(t, exec1(t, w, id, "stty size", nil)); got != "50 132\n" {
		t.Fatalf("size after resize %q", got)
	}
	if _, err := w.resizeTerminal(ctxT(t), id, 0, 10); err == nil || !strings.Contains(err.Error(), "terminal size 0x10") {
		t.Fatalf("bad size: %v", err)
	}
}

// TestWriteReadTerminal: input typed with write_terminal shows in
// read_terminal's output.
func TestWriteReadTerminal(t *testing.T) {
	w := newWorker(t, Options{})
	id := start(t, w, "wr", map[string]any{"startup_command": "/bin/bash --norc -i"})
	if res, err := w.writeTerminal(ctxT(t), id, "echo typed-$((6*7))\r"); err != nil || res["success"] != true {
		t.Fatalf("write: %v %v", res, err)
	}
	var all string
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(all, "typed-42") {
		res, err := w.readTerminal(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		all += res["output"].(string)
		if time.Now().After(deadline) {
			t.Fatalf("read_terminal never showed the output: %q", all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitScreen(t, w, id, "typed-42")
}

// TestStopLeavesNothing: a stopped session's processes (a background job
// that ignores the hang-up included) and working directory are gone.
func TestStopLeavesNothing(t *testing.T) {
	w := newWorker(t, Options{})
	id := start(t, w, "stop", map[string]any{"startup_command": "/bin/bash --norc -i"})
	out := stdoutText(t, exec1(t, w, id, "nohup sleep 987654 >/dev/null 2>&1 &\necho $!; pwd", nil))
	f := strings.Fields(out) // "[1] 15" (the job notice), then the two lines
	if len(f) < 2 {
		t.Fatalf("output %q", out)
	}
	pid, _ := strconv.Atoi(f[len(f)-2])
	dir := f[len(f)-1]
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("working dir: %v", err)
	}
	sess, h, _ := w.lookup(ctxT(t), id)
	shell := h.pid
	if err := w.Stop(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	// The hang-up ends the shell (which ignores SIGTERM) and SIGTERM the
	// nohup'ed sleep: nothing needs SIGKILL.
	for _, e := range sess.Logs().Page(worker.LogQuery{Type: worker.LogInfo}).Items {
		if strings.Contains(e.Content, "SIGKILL") {
			t.Errorf("stop needed SIGKILL: %s", e.Content)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("working dir still there: %v", err)
	}
	for _, p := range []int{shell} {
		if syscall.Kill(p, 0) == nil {
			t.Fatalf("process %d still alive", p)
		}
	}
	// The background sleep's pid is the one inside the session's PID
	// namespace when the session has one; look for any such sleep left.
	_ = pid
	outPS, _ := exec.Command("pgrep", "-f", "sleep 987654").Output()
	if strings.TrimSpace(string(outPS)) != "" {
		t.Fatalf("sleep 987654 left running: %s", outPS)
	}
	if _, err := w.Sessions.Lookup(id); err == nil {
		t.Fatal("session still listed")
	}
}

// TestExitCompletes: a program that exits 0 completes the session; one
// that fails fails it.
func TestExitCompletes(t *testing.T) {
	w := newWorker(t, Options{})
	ok := start(t, w, "ok", map[string]any{"startup_command": "sh -c 'echo bye'"})
	bad := start(t, w, "bad", map[string]any{"startup_command": "sh -c 'exit 3'"})
	for id, want := range map[string]worker.Status{ok: worker.StatusCompleted, bad: worker.StatusFailed} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			info, err := w.GetSessionInfo(ctxT(t), id)
			if err != nil {
				t.Fatal(err)
			}
			if info.Status == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %s, want %s", id, info.Status, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestBadManifest: bad input is named.
func TestBadManifest(t *testing.T) {
	w := newWorker(t, Options{})
	for _, c := range []struct {
		m    map[string]any
		want string
	}{
		{map[string]any{"startup_command": "bash 'oops"}, "unterminated single quote"},
		{map[string]any{"startup_command": 7}, "want a string or a list of strings"},
		{map[string]any{"startup_command": "no-such-program-xyz"}, "no-such-program-xyz"},
		{map[string]any{"startup_command": "rel/prog"}, "must be an absolute path"},
		{map[string]any{"files_to_stage": []any{"../etc/passwd"}}, "leaves the working directory"},
		{map[string]any{"execute_dialect": "perl"}, "execute_dialect"},
	} {
		_, err := w.Start(ctxT(t), termConfig("ws-1", "bad", c.m))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.m, err, c.want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	got, err := splitCommand(`python3 -c "print('a b')" 'x y' z\ w`)
	if err != nil || strings.Join(got, "|") != `python3|-c|print('a b')|x y|z w` {
		t.Fatalf("%q %v", got, err)
	}
}

func TestCleanOutput(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\nb\r\n":                "a\nb\n",
		"\x1b[1;31mred\x1b[0m\r\n":  "red\n",
		"50%\r100%\r\n":             "100%\n",
		"abc\bd\n":                  "abd\n",
		"\x1b]0;title\x07text":      "text",
		"\x1b[?2004hx\x1b[?2004l\n": "x\n",
	} {
		if got := cleanOutput(in); got != want {
			t.Errorf("cleanOutput(%q) = %q, want %q", in, got, want)
		}
	}
}

// iterPull pulls items of an attach generator one at a time.
func iterPull(seq iter.Seq2[map[string]any, error]) (func() (map[string]any, bool), func()) {
	next, stop := iter.Pull2(seq)
	return func() (map[string]any, bool) {
		m, err, ok := next()
		return m, ok && err == nil
	}, stop
}

// TestHostileViewerFlood: attaching more viewers than MaxViewers is
// refused with a clear error; a viewer that leaves makes room.
func TestHostileViewerFlood(t *testing.T) {
	w := newWorker(t, Options{MaxViewers: 3})
	id := start(t, w, "flood", map[string]any{"startup_command": "/bin/bash --norc -i"})
	var stops []func()
	for i := 0; i < 3; i++ {
		seq, err := w.attach(ctxT(t), id, nil)
		if err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
		next, stop := iterPull(seq)
		if m, ok := next(); !ok || m["type"] != "initial" {
			t.Fatalf("viewer %d: %v", i, m)
		}
		stops = append(stops, stop)
	}
	if _, err := w.attach(ctxT(t), id, nil); err == nil || !strings.Contains(err.Error(), "too many viewers attached: 3") {
		t.Fatalf("fourth viewer: %v", err)
	}
	stops[0]()
	seq, err := w.attach(ctxT(t), id, nil)
	if err != nil {
		t.Fatalf("after one left: %v", err)
	}
	next, stop := iterPull(seq)
	if m, ok := next(); !ok || m["type"] != "initial" {
		t.Fatalf("new viewer: %v", m)
	}
	stop()
	for _, s := range stops[1:] {
		s()
	}
}
