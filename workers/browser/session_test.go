package browser

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

// TestWebWorkerConsole: what a web worker started by the page logs, and
// what it throws, reaches the session's logs like the page's own console,
// including lines logged before the worker was attached.
func TestWebWorkerConsole(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t)
	sid := staticApp(t, w, fs, "ww", `<!doctype html><html><body><script>
const src = 'console.log("early line from the worker"); console.warn("worker warns", 6 * 7);' +
  'self.onmessage = (e) => { if (e.data === "throw") setTimeout(() => { throw new Error("worker boom") }); else console.info("worker got", e.data); };';
window.ww = new Worker(URL.createObjectURL(new Blob([src], {type: "text/javascript"})));
</script></body></html>`)
	waitLog(t, w, sid, "console", "[log] early line from the worker")
	waitLog(t, w, sid, "console", "[warning] worker warns 42")
	ctx := testserver.Ctx(t)
	if _, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `ww.postMessage("ping"); ww.postMessage("throw"); 0`}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, w, sid, "console", "[info] worker got ping")
	waitLog(t, w, sid, "error", "worker boom")
	// The replay of the early lines is not doubled.
	p, err := w.GetLogs(ctx, sid, worker.LogQuery{Type: LogConsole})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(fmt.Sprint(p.ToMap()), "early line from the worker"); n != 1 {
		t.Errorf("the early line is logged %d times: %v", n, p.ToMap())
	}
	// Stop waits for the worker's pump too (goleak in TestMain checks
	// that nothing is left).
	if err := w.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
}

// TestCrashedSessionsFreeSlots: sessions failed by a browser crash keep
// their logs until stopped but no longer count against MaxSessions, so the
// worker starts new sessions on a fresh browser right away.
func TestCrashedSessionsFreeSlots(t *testing.T) {
	w := newWorker(t, func(o *Options) { o.MaxSessions = 2 })
	fs := newFileServer(t)
	ctx := testserver.Ctx(t)
	page := `<!doctype html><html><body><script>console.log("alive")</script></body></html>`
	a := staticApp(t, w, fs, "s1", page)
	b := staticApp(t, w, fs, "s2", page)
	if n := w.LiveSessions(); n != 2 {
		t.Fatalf("%d live sessions, want 2", n)
	}
	if err := syscall.Kill(w.BrowserPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "both sessions to fail", func() bool {
		for _, id := range []string{a, b} {
			if info, err := w.GetSessionInfo(ctx, id); err != nil || info.Status != worker.StatusFailed {
				return false
			}
		}
		return true
	})
	// The failed sessions still answer with their logs.
	waitLog(t, w, a, "error", "the browser process ended")
	// Two new sessions fit although the failed ones are not stopped yet.
	c := staticApp(t, w, fs, "s3", page)
	staticApp(t, w, fs, "s4", page)
	if n := w.LiveSessions(); n != 2 {
		t.Fatalf("%d live sessions, want 2", n)
	}
	fs.put("s5/index.html", page)
	_, err := w.Start(ctx, worker.Config{ID: "ws-a/s5", Workspace: "ws-a", ClientID: "s5",
		AppFilesBaseURL: fs.URL + "/files/s5", Manifest: worker.Manifest{"type": TypeWindow}})
	if err == nil || !strings.Contains(err.Error(), "maximum of 2") {
		t.Fatalf("a third live session: %v", err)
	}
	// Stopping a failed session gives nothing back twice; stopping a live
	// one frees its slot.
	for _, id := range []string{a, b, c} {
		if err := w.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.LiveSessions(); n != 1 {
		t.Fatalf("%d live sessions after the stops, want 1", n)
	}
}
