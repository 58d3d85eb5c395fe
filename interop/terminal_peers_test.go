package interop

// Opt-in check of the terminal worker with the real upstream peers
// (HYPHA_PEERS=1): TestUpstreamTerminalWorker registers our
// `hypha worker terminal` on the real upstream server and drives it with
// upstream's apps controller and upstream's Python client from
// interop/testdata/upstream_terminal_worker.py.
//
//	HYPHA_PEERS=1 go test ./interop/ -run TestUpstreamTerminalWorker -v
//
// When the peers chroot has the host's /dev/pts mounted (upstream's own
// terminal worker needs a pty; the peers setup does not mount it), the
// upstream server also runs its own terminal worker
// (--enable-terminal-worker) and the driver runs the same scenario on it,
// so that the test logs both results side by side (docs/compatibility.md §8).

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
)

// upstreamHasPTYs reports whether the peers chroot can open a pty: its
// /dev/pts is a devpts mount (one that holds ptmx).
func upstreamHasPTYs() bool {
	_, err := os.Stat(filepath.Join(peersState(), "vendor", "trixie-root", "dev", "pts", "ptmx"))
	return err == nil
}

// TestUpstreamTerminalWorker: upstream's controller installs (its trial
// start and stop included), starts, lists, reads logs of (all, a page of
// stdout, and type "screen"), stops and uninstalls a bash terminal app on
// our worker; the driver calls execute (cleaned, raw, state kept across
// calls, a failing command, the staged entry point), write_terminal and
// read_terminal, resize_terminal, get_screen_content and attach on our
// worker service, as an upstream client calls them. Nothing is left
// behind: the session's bash and a background process it started end on
// stop, and its working directory goes.
func TestUpstreamTerminalWorker(t *testing.T) {
	dir := needPeers(t)
	bin := buildHypha(t)
	withTheirs := upstreamHasPTYs()
	u := &upstream{dir: dir, port: freePort(t), env: []string{"PEERS_S3=1"}}
	u.url = "http://127.0.0.1:" + strconv.Itoa(u.port)
	if withTheirs {
		u.args = []string{"--enable-terminal-worker"}
	} else {
		t.Logf("the peers chroot has no /dev/pts mount: upstream's own terminal worker is not compared (mount --bind /dev/pts <peers state>/vendor/trixie-root/dev/pts to compare)")
	}
	t.Cleanup(func() { u.stop(t) })
	u.start(t)
	token := peersRootToken()

	workDir := testserver.SharedTempDir(t)
	w := startProc(t, "hypha worker terminal", 8*time.Minute, false, ".", bin, "worker", "terminal",
		"--server-url", u.url, "--token", token, "--visibility", "public", "--work-dir", workDir)
	w.waitOutput("Terminal worker ready", 2*time.Minute)

	d := startProc(t, "upstream terminal driver", 5*time.Minute, true, ".", filepath.Join(dir, "run-py.sh"),
		testdata(t, "upstream_terminal_worker.py"), u.url, token)
	ready := d.waitReady()
	sid := str(ready, "session_id")
	// Before stop: the session's bash and its background sleep run under
	// our worker (in the session's supervisor).
	if len(descendants(w.cmd.Process.Pid, "bash")) == 0 {
		t.Errorf("no bash under the worker while session %s runs", sid)
	}
	if len(descendants(w.cmd.Process.Pid, "sleep\x0031337")) != 1 {
		t.Errorf("the session's background `sleep 31337` is not under the worker")
	}
	if _, err := d.stdin.Write([]byte("stop\n")); err != nil {
		t.Fatal(err)
	}
	r := d.mustResult()

	workers, _ := at(r, "workers").([]any)
	if len(workers) != 1 {
		t.Fatalf("our terminal worker as listed by upstream: %v", mustJSON(at(r, "workers")))
	}
	workerID := str(workers[0], "id")
	if !strings.HasPrefix(workerID, "ws-user-root/") || !strings.HasSuffix(workerID, ":terminal-worker") {
		t.Errorf("worker id %q", workerID)
	}
	expect(t, "supported_types", at(workers[0], "supported_types"), []any{"terminal"})

	o := at(r, "ours").(map[string]any)
	expect(t, "errors", at(o, "errors"), map[string]any{})
	expect(t, "install", at(o, "install"), map[string]any{"type": "terminal", "entry_point": "hello.sh", "startup_command": "bash"})
	prog := mustJSON(at(o, "install_progress"))
	for _, want := range []string{"Compiling app using worker", "Spawning terminal with command: bash", "Installation complete!"} {
		expectContains(t, "install progress", prog, want)
	}
	expect(t, "start id", str(o, "start", "id"), sid)
	expect(t, "start worker_id", str(o, "start", "worker_id"), workerID)
	expect(t, "list_running", at(o, "running"), []any{sid})
	fns := mustJSON(at(o, "functions"))
	for _, f := range []string{"execute", "write_terminal", "read_terminal", "resize_terminal", "get_screen_content", "attach", "get_logs", "list_sessions"} {
		expectContains(t, "worker functions", fns, `"`+f+`"`)
	}

	// execute: upstream's {status, outputs: [{type: stream, name: stdout, text}]}.
	ex := func(name string) any { return at(o, "execute", name) }
	stdout := func(text string) []any {
		return []any{map[string]any{"type": "stream", "name": "stdout", "text": text}}
	}
	expect(t, "execute echo", at(ex("echo"), "outputs"), stdout("hello-42\n"))
	expect(t, "execute echo status", at(ex("echo"), "status"), "ok")
	expect(t, "execute state", at(ex("state"), "outputs"), stdout("X=42 in /tmp\n"))
	expect(t, "execute multi", at(ex("multi"), "outputs"), stdout("line1\nline2\nline3\n"))
	expect(t, "execute staged entry point", at(ex("hello_sh"), "outputs"), stdout("hello from the terminal app\n"))
	expect(t, "execute false: status", at(ex("false"), "status"), "error")
	expect(t, "execute false: ename", at(ex("false"), "error", "ename"), "NonZeroExit")
	raw := str(ex("raw"), "outputs", 0, "text")
	expectContains(t, "execute raw", raw, "raw-42\r\n")
	expect(t, "execute raw type", str(ex("raw"), "outputs", 0, "type"), "stream")
	if !strings.Contains(raw, "\x1b[") {
		t.Errorf("raw output has no escape sequence: %q", raw)
	}

	// write_terminal / read_terminal / resize_terminal / get_screen_content.
	expect(t, "write_terminal", at(o, "write"), map[string]any{"success": true, "bytes_written": 21.0})
	expect(t, "read_terminal", at(o, "read", "saw_output"), true)
	expect(t, "read_terminal shapes", at(o, "read", "shapes"), []any{`["output", "success"]`})
	expect(t, "resize_terminal", at(o, "resize"), map[string]any{"success": true})
	expect(t, "stty size after resize", at(o, "stty", "outputs"), stdout("30 100\n"))
	expect(t, "get_screen_content", at(o, "screen_content"), map[string]any{"keys": []any{"cols", "content", "rows", "success"},
		"has_typed": true, "has_escape": false, "success": true, "rows": 30.0, "cols": 100.0})
	expect(t, "attach (a generator)", at(o, "attach"), map[string]any{"kind": "generator",
		"first": []any{"content", "session_id", "terminal_size", "type"}, "first_type": "initial"})

	// attach(session_id, on_screen_update), as upstream's web terminal
	// calls it: the callback gets the initial screen, then the updates.
	if ups, _ := at(o, "attach_callback", "updates").([]any); len(ups) < 2 || ups[0] != "initial" || ups[1] != "update" {
		t.Errorf("attach with on_screen_update: %s", mustJSON(at(o, "attach_callback")))
	}
	expectContains(t, "list_sessions item", mustJSON(at(o, "list_sessions", "item")), `"session_id"`)

	// get_logs through upstream's controller: every chunk read, typed
	// input's output included (one reader), no escape sequence.
	for _, k := range []string{"items", "total", "offset", "limit"} {
		expectContains(t, "log keys", mustJSON(at(o, "logs", "keys")), `"`+k+`"`)
	}
	expect(t, "logs types", at(o, "logs", "types"), []any{"info", "stdout"})
	expect(t, "logs hold execute's output", at(o, "logs", "has_hello"), true)
	expect(t, "logs hold typed output", at(o, "logs", "has_typed"), true)
	expect(t, "logs without escapes", at(o, "logs", "has_escape"), false)
	expect(t, "logs page", at(o, "logs_page", "types"), []any{"stdout"})
	expect(t, "logs screen", at(o, "logs_screen", "has_typed"), true)
	expect(t, "logs screen: the bare screen text, as upstream's", at(o, "logs_screen", "kind"), "str")
	expect(t, "logs screen without escapes", at(o, "logs_screen", "has_escape"), false)

	// stop: gone from upstream and from our worker.
	expect(t, "list_running after stop", at(o, "running_after_stop"), []any{})
	expectContains(t, "execute after stop", str(o, "execute_after_stop_error"), "session not found")
	expectContains(t, "write_terminal after stop", str(o, "write_after_stop_error"), "session not found")
	expect(t, "apps after uninstall", at(o, "apps_left"), []any{})
	testserver.WaitFor(t, time.Minute, "no process of the session left under the worker", func() bool {
		return len(descendants(w.cmd.Process.Pid, "bash")) == 0 && len(descendants(w.cmd.Process.Pid, "sleep\x0031337")) == 0
	})
	testserver.WaitFor(t, time.Minute, "the session's working directory removed", func() bool {
		ents, err := os.ReadDir(workDir)
		return err == nil && len(ents) == 0
	})
	t.Logf("upstream timings with our worker (s): %s", mustJSON(at(o, "timings")))

	// Upstream's own worker, for comparison only (logged, not asserted).
	if withTheirs {
		if len(at(r, "upstream_workers").([]any)) == 0 {
			t.Errorf("--enable-terminal-worker, but upstream lists no terminal worker of its own")
		} else {
			th := at(r, "theirs")
			for _, k := range []string{"errors", "execute", "write", "read", "resize", "stty", "screen_content", "attach", "attach_callback", "list_sessions", "logs", "logs_screen", "functions"} {
				t.Logf("upstream's own worker: %s = %s", k, mustJSON(at(th, k)))
			}
		}
	}

	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		w.fatalf("did not exit after SIGINT")
	}
	if w.err != nil || !strings.Contains(w.other.String(), "Worker stopped.") {
		w.fatalf("exit after SIGINT: %v", w.err)
	}
}
