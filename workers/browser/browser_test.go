package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/worker"
)

// TestWindowAppConnectsBack compiles a window app, loads its page from an
// app-files server, and calls the service it exports from Go through our
// server (which also serves the hypha-rpc client the page imports).
func TestWindowAppConnectsBack(t *testing.T) {
	w := newWorker(t, nil)
	s := testserver.Start(t, server.Config{})
	fs := newFileServer(t)
	script := `
console.log("hello from", "the app");
console.warn("careful");
await api.export({
  name: "adder",
  add: (a, b) => a + b,
  greet: async (who) => "hi " + who,
});
console.info("exported");
`
	res, err := w.Compile(testserver.Ctx(t), worker.CompileRequest{
		Manifest: worker.Manifest{"type": TypeWindow, "name": "Adder", "entry_point": "main.js"},
		Files:    []worker.File{{Path: "main.js", Content: script, Format: "text"}, {Path: "data.txt", Content: "x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.EntryPoint() != "index.html" || len(res.Files) != 2 || res.Files[1].Path != "index.html" {
		t.Fatalf("compile result: %v %+v", res.Manifest, res.Files)
	}
	fs.put("adder/index.html", res.Files[1].Content.(string))

	cfg := worker.Config{
		ID: "ws-user-root/app-adder", Workspace: "ws-user-root", ClientID: "app-adder", AppID: "adder",
		ServerURL: s.URL(), AppFilesBaseURL: fs.URL + "/files/adder", Token: testserver.RootToken,
		Manifest: res.Manifest,
	}
	ctx := testserver.Ctx(t)
	sid, err := w.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	caller := testserver.RootClient(t, s, "caller")
	var svc *rpc.RemoteService
	testserver.WaitFor(t, 30*time.Second, "the app's default service", func() bool {
		svc, err = caller.GetService(ctx, "ws-user-root/app-adder:default")
		return err == nil
	})
	got, err := svc.Call(ctx, "add", 2, 3)
	if err != nil || fmt.Sprint(got) != "5" {
		t.Fatalf("add(2, 3) = %v, %v", got, err)
	}
	got, err = svc.Call(ctx, "greet", "go")
	if err != nil || got != "hi go" {
		t.Fatalf("greet = %v, %v", got, err)
	}
	waitLog(t, w, sid, "console", "[info] exported")
	page, err := w.GetLogs(ctx, sid, worker.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	all := fmt.Sprint(page.ToMap())
	for _, want := range []string{"[log] hello from the app", "[warning] careful"} {
		if !strings.Contains(all, want) {
			t.Errorf("logs lack %q: %s", want, all)
		}
	}
	if strings.Contains(all, testserver.RootToken) {
		t.Errorf("the token is in the session's logs: %s", all)
	}
	if err := w.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the app's service to go", func() bool {
		_, err := caller.GetService(ctx, "ws-user-root/app-adder:default")
		return err != nil
	})
}

// waitLog waits until the session's logs of typ contain an entry with want.
func waitLog(t *testing.T, w *Worker, sid, typ, want string) {
	t.Helper()
	testserver.WaitFor(t, 30*time.Second, "log "+want, func() bool {
		p, err := w.GetLogs(context.Background(), sid, worker.LogQuery{Type: worker.LogType(typ)})
		return err == nil && strings.Contains(fmt.Sprint(p.ToMap()), want)
	})
}

// TestExecute evaluates DOM reads, promises, top-level await and throws.
func TestExecute(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t)
	sid := staticApp(t, w, fs, "ex", `<!doctype html><html><head><title>T1</title></head><body><p id="p">para</p></body></html>`)
	ctx := testserver.Ctx(t)
	for _, tc := range []struct{ script, want string }{
		{`document.title`, "T1"},
		{`document.getElementById("p").textContent`, "para"},
		{`new Promise(r => setTimeout(() => r({a: [1, 2], b: "x"}), 20))`, "map[a:[1 2] b:x]"},
		{`const v = await Promise.resolve(41); v + 1`, "42"},
		{`undefined`, "<nil>"},
	} {
		got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: tc.script})
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("%s = %v, %v (want %s)", tc.script, got, err, tc.want)
		}
	}
	for _, script := range []string{`throw new Error("boom")`, `Promise.reject(new Error("boom"))`} {
		_, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: script[:0] + sid, Script: script})
		if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "boom") {
			t.Errorf("%s: err = %v, want ErrScript with boom", script, err)
		}
	}
	_, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `new Promise(() => {})`, Config: map[string]any{"timeout": 0.3}})
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("a promise that never settles: err = %v", err)
	}
	// The page still answers after the timeout.
	if got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `1+1`}); err != nil || fmt.Sprint(got) != "2" {
		t.Errorf("after a timeout: %v, %v", got, err)
	}
	if _, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: "ws-a/nope", Script: `1`}); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	// Page errors and console levels reach the logs.
	if _, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `setTimeout(() => { throw new Error("late failure") }, 0); console.error("bad thing"); console.debug("dbg"); 0`}); err != nil {
		t.Fatal(err)
	}
	// A huge console message is cut (the log store bounds the total).
	if _, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `console.log("x".repeat(1 << 20)); 0`}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, w, sid, "console", "bytes truncated]")
	waitLog(t, w, sid, "error", "late failure")
	waitLog(t, w, sid, "console", "[error] bad thing")
	waitLog(t, w, sid, "console", "[debug] dbg")
}

// TestScreenshots decodes PNG and JPEG screenshots and checks their size
// against the page's viewport.
func TestScreenshots(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t)
	sid := staticApp(t, w, fs, "shot", `<!doctype html><html><body style="background:#c00"><h1>shot</h1></body></html>`)
	ctx := testserver.Ctx(t)
	vp, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `[Math.round(innerWidth * devicePixelRatio), Math.round(innerHeight * devicePixelRatio)]`})
	if err != nil {
		t.Fatal(err)
	}
	size := vp.([]any)
	for _, f := range []string{"png", "jpeg", ""} {
		b, err := w.TakeScreenshot(ctx, sid, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		img, format, err := image.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: decode: %v", f, err)
		}
		want := f
		if want == "" {
			want = "png"
		}
		bounds := img.Bounds()
		if format != want || fmt.Sprint(bounds.Dx()) != fmt.Sprint(size[0]) || fmt.Sprint(bounds.Dy()) != fmt.Sprint(size[1]) {
			t.Errorf("%s: got a %s of %v, want a %s of %v", f, format, bounds.Size(), want, size)
		}
		r, g, bl, _ := img.At(bounds.Dx()-5, bounds.Dy()-5).RGBA()
		if r>>8 < 0xa0 || g>>8 > 0x40 || bl>>8 > 0x40 {
			t.Errorf("%s: the page's red background is not in the image: %x %x %x", f, r>>8, g>>8, bl>>8)
		}
	}
	if _, err := w.TakeScreenshot(ctx, sid, "gif"); !errors.Is(err, worker.ErrInvalidConfig) {
		t.Errorf("gif: %v", err)
	}
	// The extension is declared for the adapter.
	if err := worker.ValidateExtensions(w.Extensions()); err != nil {
		t.Fatal(err)
	}
}

// TestStopLeavesNoContext checks, through the DevTools protocol, that a
// stopped session's page and browser context are gone, and that sessions
// do not share storage.
func TestStopLeavesNoContext(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t)
	ctx := testserver.Ctx(t)
	page := `<!doctype html><html><body>x</body></html>`
	a := staticApp(t, w, fs, "a", page)
	b := staticApp(t, w, fs, "b", page)
	if _, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: a, Script: `localStorage.setItem("k", "from-a"); document.cookie = "c=a"; 1`}); err != nil {
		t.Fatal(err)
	}
	// Same origin, other browser context: nothing of a is visible.
	got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: b, Script: `[localStorage.getItem("k"), document.cookie]`})
	if err != nil || fmt.Sprint(got) != "[<nil> ]" {
		t.Fatalf("session b sees %v (%v)", got, err)
	}
	bctx := w.browser.ctx
	contexts := func() int {
		r, err := chromedp.CallBrowser(bctx, target.GetBrowserContexts, cdp.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.BrowserContextIDs)
	}
	pages := func() int {
		ts, err := chromedp.Targets(bctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ti := range ts {
			if ti.Type == "page" {
				n++
			}
		}
		return n
	}
	if c, p := contexts(), pages(); c != 2 || p != 3 {
		t.Fatalf("with two sessions: %d browser contexts, %d pages (want 2, 3)", c, p)
	}
	for i, id := range []string{a, b} {
		if err := w.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
		if c, p := contexts(), pages(); c != 1-i || p != 2-i {
			t.Fatalf("after %d stops: %d browser contexts, %d pages", i+1, c, p)
		}
	}
	if n := w.Sessions.Len(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// TestBrowserKilledMidSession kills Chromium under a running session: the
// session fails with a clear reason and the next start gets a fresh browser.
func TestBrowserKilledMidSession(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t)
	ctx := testserver.Ctx(t)
	page := `<!doctype html><html><body>x</body></html>`
	sid := staticApp(t, w, fs, "k1", page)
	pid := w.BrowserPID()
	dir := w.profileDirs()[0]
	if pid == 0 {
		t.Fatal("no browser pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the session to fail", func() bool {
		info, err := w.GetSessionInfo(ctx, sid)
		return err == nil && info.Status == worker.StatusFailed
	})
	info, _ := w.GetSessionInfo(ctx, sid)
	if !strings.Contains(info.Error, "browser process ended") {
		t.Errorf("failure reason: %q", info.Error)
	}
	if _, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `1`}); err == nil || !strings.Contains(err.Error(), "failed") {
		t.Errorf("execute on the failed session: %v", err)
	}
	sid2 := staticApp(t, w, fs, "k2", page)
	if got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid2, Script: `1+2`}); err != nil || fmt.Sprint(got) != "3" {
		t.Fatalf("new session on a fresh browser: %v, %v", got, err)
	}
	if p := w.BrowserPID(); p == pid || p == 0 {
		t.Fatalf("browser pid %d after the crash (was %d)", p, pid)
	}
	if err := w.Stop(ctx, sid); err != nil {
		t.Fatalf("stopping the failed session: %v", err)
	}
	testserver.WaitFor(t, 30*time.Second, "the dead browser's processes to go", func() bool {
		return len(processesWith(dir)) == 0
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the dead browser's profile %s is left: %v", dir, err)
	}
}

// TestSessionCap refuses a start beyond MaxSessions with a clear error.
func TestSessionCap(t *testing.T) {
	w := newWorker(t, func(o *Options) { o.MaxSessions = 1 })
	fs := newFileServer(t)
	staticApp(t, w, fs, "c1", `<html><body>1</body></html>`)
	fs.put("c2/index.html", "<html></html>")
	_, err := w.Start(testserver.Ctx(t), worker.Config{ID: "ws-a/c2", Workspace: "ws-a", ClientID: "c2",
		AppFilesBaseURL: fs.URL + "/files/c2", Manifest: worker.Manifest{"type": TypeWindow}})
	if !errors.Is(err, worker.ErrWorkerNotAvailable) || !strings.Contains(err.Error(), "maximum of 1") {
		t.Fatalf("second start: %v", err)
	}
}

// TestWebAppLoadsExternalURL navigates to a web-app's entry_point.
func TestWebAppLoadsExternalURL(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t)
	fs.put("site/page.html", `<html><head><title>External</title></head><body></body></html>`)
	ctx := testserver.Ctx(t)
	sid, err := w.Start(ctx, worker.Config{ID: "ws-a/web", Workspace: "ws-a", ClientID: "web",
		Manifest: worker.Manifest{"type": TypeWebApp, "entry_point": fs.URL + "/files/site/page.html"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `document.title + " " + location.pathname`}); err != nil || got != "External /files/site/page.html" {
		t.Fatalf("got %v, %v", got, err)
	}
}

// TestNoChromium says what to install.
func TestNoChromium(t *testing.T) {
	w := New(Options{ChromiumPath: "/nonexistent/chromium"})
	defer w.Shutdown(context.Background())
	_, err := w.Start(context.Background(), worker.Config{ID: "ws/x", Workspace: "ws", ClientID: "x",
		AppFilesBaseURL: "http://127.0.0.1:1/files", Manifest: worker.Manifest{"type": TypeWindow}})
	if !errors.Is(err, ErrNoBrowser) || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Fatalf("err = %v", err)
	}
}

// TestConcurrentSessions starts ten sessions at once on one browser; each
// has its own page and storage, and all stop cleanly.
func TestConcurrentSessions(t *testing.T) {
	const n = 10
	w := newWorker(t, nil)
	fs := newFileServer(t)
	ctx := testserver.Ctx(t)
	ids := make([]string, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("c%d", i)
			fs.put(id+"/index.html", fmt.Sprintf(`<html><head><title>%s</title></head></html>`, id))
			sid, err := w.Start(ctx, worker.Config{ID: "ws-a/" + id, Workspace: "ws-a", ClientID: id,
				AppFilesBaseURL: fs.URL + "/files/" + id, Manifest: worker.Manifest{"type": TypeWindow}})
			ids[i] = sid
			if err == nil {
				_, err = w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: fmt.Sprintf(`localStorage.setItem("me", %q); 0`, id)})
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	pid := w.BrowserPID()
	for i, sid := range ids {
		got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `document.title + "/" + localStorage.getItem("me")`})
		if want := fmt.Sprintf("c%d/c%d", i, i); err != nil || got != want {
			t.Fatalf("session %d: %v, %v (want %s)", i, got, err, want)
		}
	}
	if w.BrowserPID() != pid {
		t.Fatal("the sessions do not share one browser")
	}
	for _, sid := range ids {
		if err := w.Stop(ctx, sid); err != nil {
			t.Fatal(err)
		}
	}
}
