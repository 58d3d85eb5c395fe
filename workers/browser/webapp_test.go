package browser

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

// headerLog records the headers each path was requested with.
type headerLog struct {
	mu   sync.Mutex
	seen map[string]http.Header
}

func (l *headerLog) get(path string) http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[path]
}

func recordingServer(t *testing.T, pages map[string]string) (*httptest.Server, *headerLog) {
	l := &headerLog{seen: map[string]http.Header{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen[r.URL.Path] = r.Header.Clone()
		l.mu.Unlock()
		if body, ok := pages[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(body))
			return
		}
		w.Header().Set("Content-Type", "image/gif")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write([]byte("GIF89a"))
	}))
	t.Cleanup(srv.Close)
	return srv, l
}

// TestWebAppPreloadedState: a web-app on a local server with cookies,
// local and session storage preloaded (read back with execute), the
// Authorization and extra headers sent to the app's origin only, and the
// startup script run after load.
func TestWebAppPreloadedState(t *testing.T) {
	w := newWorker(t, nil)
	other, otherLog := recordingServer(t, nil)
	site, siteLog := recordingServer(t, map[string]string{
		"/app": `<!doctype html><html><head><title>Site</title></head><body>
<img src="` + other.URL + `/pixel.gif">
<script>window.seenAtLoad = localStorage.getItem("theme");</script></body></html>`,
	})
	fs := newFileServer(t)
	fs.put("web/init.js", `window.started = 7; console.log("startup ran on", location.pathname);`)
	ctx := testserver.Ctx(t)
	sid, err := w.Start(ctx, worker.Config{ID: "ws-a/web", Workspace: "ws-a", ClientID: "web",
		AppFilesBaseURL: fs.URL + "/files/web", Token: "tok",
		Manifest: worker.Manifest{
			"type": TypeWebApp, "entry_point": site.URL + "/app",
			"cookies":             map[string]any{"sid": "s1"},
			"local_storage":       map[string]any{"theme": "dark", "n": int64(3)},
			"session_storage":     map[string]any{"tab": "one"},
			"authorization_token": "Bearer abc",
			"extra_http_headers":  map[string]any{"X-Extra": "yes"},
			"startup_script":      "init.js",
		}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `[document.cookie, localStorage.getItem("theme"), localStorage.getItem("n"), sessionStorage.getItem("tab"), window.seenAtLoad, window.started]`})
	if err != nil || fmt.Sprint(got) != "[sid=s1 dark 3 one dark 7]" {
		t.Fatalf("state in the page = %v, %v", got, err)
	}
	h := siteLog.get("/app")
	if h.Get("Authorization") != "Bearer abc" || h.Get("X-Extra") != "yes" || !strings.Contains(h.Get("Cookie"), "sid=s1") {
		t.Errorf("the app's origin got %v", h)
	}
	testserver.WaitFor(t, 30*time.Second, "the image on the other origin", func() bool { return otherLog.get("/pixel.gif") != nil })
	if h := otherLog.get("/pixel.gif"); h.Get("Authorization") != "" || h.Get("X-Extra") != "" {
		t.Errorf("another origin got the app's headers: %v", h)
	}
	waitLog(t, w, sid, "console", "[log] startup ran on /app")
}

// TestWebAppOneStorageOnly: session_storage without local_storage (and
// the other way round, as upstream's controller passes a web-app's
// manifest) is preloaded without a warning in the console.
func TestWebAppOneStorageOnly(t *testing.T) {
	w := newWorker(t, nil)
	site, _ := recordingServer(t, map[string]string{"/app": `<!doctype html><html><body>app</body></html>`})
	ctx := testserver.Ctx(t)
	for i, man := range []worker.Manifest{
		{"session_storage": map[string]any{"tab": "one"}},
		{"local_storage": map[string]any{"tab": "one"}},
	} {
		man["type"], man["entry_point"] = TypeWebApp, site.URL+"/app"
		id := fmt.Sprintf("web%d", i)
		sid, err := w.Start(ctx, worker.Config{ID: "ws-a/" + id, Workspace: "ws-a", ClientID: id, Manifest: man})
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `sessionStorage.getItem("tab") || localStorage.getItem("tab")`})
		if err != nil || got != "one" {
			t.Fatalf("%v: storage in the page = %v, %v", man, got, err)
		}
		// The console is pumped in order: once this line is in the logs,
		// a warning from the preload before it would be too.
		if _, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `console.log("after the load")`}); err != nil {
			t.Fatal(err)
		}
		waitLog(t, w, sid, "console", "[log] after the load")
		logs, err := w.GetLogs(ctx, sid, worker.LogQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(logs); strings.Contains(s, "preloading storage failed") {
			t.Errorf("%v: %s", man, s)
		}
	}
}

func TestHostileWebAppOptions(t *testing.T) {
	entry, _ := url.Parse("http://127.0.0.1:1/app")
	for _, tc := range []struct {
		man  worker.Manifest
		want string
	}{
		{worker.Manifest{"cookies": "a=b"}, "cookies"},
		{worker.Manifest{"cookies": []any{map[string]any{"value": "x"}}}, "name is missing"},
		{worker.Manifest{"cookies": []any{map[string]any{"name": "a", "sameSite": "Sometimes"}}}, "sameSite"},
		{worker.Manifest{"local_storage": []any{"x"}}, "local_storage"},
		{worker.Manifest{"extra_http_headers": map[string]any{"Bad Name": "x"}}, "not a header name"},
		{worker.Manifest{"extra_http_headers": map[string]any{"X-A": "v\r\nInjected: 1"}}, "line break"},
		{worker.Manifest{"authorization_token": 42}, "authorization_token"},
		{worker.Manifest{"startup_script": "../../etc/passwd"}, "startup_script"},
		{worker.Manifest{"startup_script": "https://evil.example/x.js"}, "startup_script"},
		{worker.Manifest{"local_storage": map[string]any{"big": strings.Repeat("x", 2<<20)}}, "exceed"},
	} {
		_, err := parseWebApp(tc.man, entry)
		if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.man, err, tc.want)
		}
	}
}
