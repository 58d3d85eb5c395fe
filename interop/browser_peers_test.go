package interop

// Opt-in check of the browser worker with the real upstream peers
// (HYPHA_PEERS=1): TestUpstreamBrowserWorker registers our
// `hypha worker browser` on the real upstream server and drives it with
// upstream's apps controller from a Python driver
// (interop/testdata/upstream_browser_worker.py). It needs Debian's
// Chromium as well.
//
//	HYPHA_PEERS=1 go test ./interop/ -run TestUpstreamBrowserWorker -v

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/workers/browser"
)

// descendants lists root's descendant processes whose command line holds
// sub.
func descendants(root int, sub string) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 {
				ppid, _ := strconv.Atoi(f[1])
				children[ppid] = append(children[ppid], pid)
			}
		}
	}
	var out []int
	queue := append([]int(nil), children[root]...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		queue = append(queue, children[pid]...)
		if cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(cmd), sub) {
			out = append(out, pid)
		}
	}
	return out
}

// TestUpstreamBrowserWorker: upstream's controller installs (calling our
// compile, then its trial start, which waits for the default service, and
// stop), starts, lists, reads logs of, stops and uninstalls a window app and
// a web-app on our browser worker (and an iframe, a web-worker and a hypha
// source through start and their default service); the driver calls the window app's
// default service, and execute and take_screenshot on our worker service.
// The web-app is a page on this test's httptest server, loaded with the
// cookies and local storage of its manifest. Nothing is left behind: no
// session, no app, no page's renderer process, and on SIGINT no browser.
func TestUpstreamBrowserWorker(t *testing.T) {
	dir := needPeers(t)
	_, err := browser.FindChromium("")
	testserver.NeedOrSkip(t, err == nil, "Chromium (Debian's chromium)")
	bin := buildHypha(t)
	u := startUpstream(t, dir, "PEERS_S3=1")
	token := peersRootToken()

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html><head><title>local web-app</title></head><body><h1 id="t">local web-app</h1>` +
			`<script>console.log("web-app loaded, cookie=" + document.cookie + ", greeting=" + localStorage.getItem("greeting"));</script></body></html>`))
	}))
	defer site.Close()

	w := startProc(t, "hypha worker browser", 8*time.Minute, false, ".", bin, "worker", "browser",
		"--server-url", u.url, "--token", token, "--visibility", "public")
	w.waitOutput("Browser worker ready", 2*time.Minute)

	r := startProc(t, "upstream browser driver", 5*time.Minute, false, ".", filepath.Join(dir, "run-py.sh"),
		testdata(t, "upstream_browser_worker.py"), u.url, token, site.URL+"/app").mustResult()

	workers, _ := at(r, "workers").([]any)
	if len(workers) != 1 {
		t.Fatalf("browser workers listed by upstream: %v", mustJSON(at(r, "workers")))
	}
	workerID := str(workers[0], "id")
	if !strings.HasPrefix(workerID, "ws-user-root/") || !strings.HasSuffix(workerID, ":browser-worker") {
		t.Errorf("worker id %q", workerID)
	}
	expectContains(t, "supported_types", mustJSON(at(workers[0], "supported_types")), `"web-app"`)

	// install: our compile rendered index.html from main.js; upstream's trial
	// start waited for the default service.
	expect(t, "install type", str(r, "install", "type"), "window")
	expect(t, "install entry_point", str(r, "install", "entry_point"), "index.html")
	expect(t, "app files", at(r, "files"), []any{"index.html"})
	prog := mustJSON(at(r, "install_progress"))
	for _, want := range []string{"Compiling app using worker", "page loaded", "Service 'default' registered successfully", "Installation complete!"} {
		expectContains(t, "install progress", prog, want)
	}

	// start, and the default service called from upstream's Python client.
	sid := str(r, "start", "id")
	expect(t, "start worker_id", str(r, "start", "worker_id"), workerID)
	expect(t, "start services", at(r, "start_services"), []any{sid + ":default"})
	expect(t, "list_running", at(r, "running"), []any{sid})
	expect(t, "ping", at(r, "ping"), "pong")
	expect(t, "add", at(r, "add"), 42.0)
	expect(t, "whoami", at(r, "whoami"), map[string]any{"workspace": "ws-user-root",
		"client_id": strings.TrimPrefix(sid, "ws-user-root/"), "calls": 1.0})

	// execute and take_screenshot on the worker service.
	expect(t, "execute title", at(r, "execute_title"), "go-browser-window")
	expect(t, "execute promise", at(r, "execute_promise"), 42.0)
	expectContains(t, "execute throw", str(r, "execute_throw"), "boom from upstream check")
	expect(t, "screenshot is a PNG", at(r, "screenshot", "png"), true)

	// logs through upstream's controller.
	logs := mustJSON(at(r, "logs", "items"))
	expectContains(t, "logs", logs, `["console","[log] hello from the window app /ws-user-root/artifacts/`)
	expectContains(t, "logs", logs, `["info","page loaded: `+u.url+`/ws-user-root/artifacts/`)
	if strings.Contains(logs, token) {
		t.Errorf("the token is in the session's logs: %s", logs)
	}
	for _, k := range []string{"items", "total", "offset", "limit"} {
		expectContains(t, "log keys", mustJSON(at(r, "logs", "keys")), `"`+k+`"`)
	}
	if items, _ := at(r, "logs_console", "items").([]any); len(items) != 1 || str(items[0], 0) != "console" {
		t.Errorf("get_logs(type=console, limit=1): %v", mustJSON(at(r, "logs_console")))
	}

	// stop: gone from upstream, from our worker and the app's service.
	expect(t, "list_running after stop", at(r, "running_after_stop"), []any{})
	expectContains(t, "execute after stop", str(r, "execute_after_stop"), "session not found")
	if str(r, "service_after_stop") == "still there" {
		t.Errorf("%s:default still registered after stop", sid)
	}

	// iframe and web-worker apps, and a hypha source split by upstream's
	// controller (our compile renders its script as a window page).
	expect(t, "other types", at(r, "types"), map[string]any{
		"iframe":     map[string]any{"stored_type": "iframe", "ping": "pong-page"},
		"web-worker": map[string]any{"stored_type": "web-worker", "ping": "pong-worker"},
		"hypha":      map[string]any{"stored_type": "window", "ping": "pong-hypha"},
	})

	// web-app: the manifest's cookie and local storage in the page.
	expect(t, "web-app entry_point", str(r, "web_install", "entry_point"), site.URL+"/app")
	expect(t, "web-app state", at(r, "web_read"), map[string]any{"title": "local web-app", "cookie": "session=c00kie",
		"greeting": "hello from local_storage", "search": ""})
	webLogs := mustJSON(at(r, "web_logs"))
	expectContains(t, "web-app logs", webLogs, "[log] web-app loaded, cookie=session=c00kie, greeting=hello from local_storage")
	if strings.Contains(webLogs, "preloading storage failed") {
		t.Errorf("web-app logs: %s", webLogs)
	}

	// nothing left behind.
	expect(t, "running at the end", at(r, "running_at_end"), []any{})
	expect(t, "apps at the end", at(r, "apps_at_end"), []any{})
	// The browser keeps the blank tab it was started with (one renderer)
	// and its own WebUI renderer (--top-chrome-webui); every session's page
	// had a renderer of its own, and those must be gone.
	testserver.WaitFor(t, time.Minute, "no session's renderer left under the worker", func() bool {
		n := 0
		for _, pid := range descendants(w.cmd.Process.Pid, "--type=renderer") {
			if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); !strings.Contains(string(cmd), "--top-chrome-webui") {
				n++
			}
		}
		return n <= 1
	})
	browserProcs := descendants(w.cmd.Process.Pid, "hypha-browser-")
	if len(browserProcs) == 0 {
		t.Errorf("no browser process found under the worker")
	}
	t.Logf("upstream timings (s): %s", mustJSON(at(r, "timings")))

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
	testserver.WaitFor(t, 30*time.Second, "the browser's processes to end", func() bool {
		for _, pid := range browserProcs {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				return false
			}
		}
		return true
	})
}
