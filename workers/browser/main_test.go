package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// needChromium skips (fails in CI) when no Chromium is installed.
func needChromium(t testing.TB) string {
	t.Helper()
	p, err := FindChromium("")
	testserver.NeedOrSkip(t, err == nil, "Chromium (Debian's chromium)")
	return p
}

// newWorker returns a worker on the system Chromium, shut down at the end
// with a check that no browser process is left.
func newWorker(t testing.TB, mod func(*Options)) *Worker {
	t.Helper()
	needChromium(t)
	o := Options{Logger: testserver.Logger(t), LoadTimeout: 60 * time.Second}
	if mod != nil {
		mod(&o)
	}
	w := New(o)
	t.Cleanup(func() {
		dirs := w.profileDirs()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		for _, d := range dirs {
			if pids := processesWith(d); len(pids) > 0 {
				t.Errorf("browser processes left after shutdown: %v", pids)
			}
		}
	})
	return w
}

// profileDirs lists the profile directory of the running browser.
func (w *Worker) profileDirs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.browser == nil {
		return nil
	}
	return []string{w.browser.dataDir}
}

// fileServer serves an app's files at /files/<path> (as the server's
// app-files URL does), counting requests.
type fileServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string]string
}

func newFileServer(t testing.TB) *fileServer {
	fs := &fileServer{files: map[string]string{}}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		body, ok := fs.files[strings.TrimPrefix(r.URL.Path, "/files/")]
		fs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fileServer) put(path, body string) {
	fs.mu.Lock()
	fs.files[path] = body
	fs.mu.Unlock()
}

// staticApp starts a window session over a plain HTML page (no connection
// back), for tests about the page alone.
func staticApp(t *testing.T, w *Worker, fs *fileServer, id, html string) string {
	t.Helper()
	fs.put(id+"/index.html", html)
	cfg := worker.Config{
		ID: "ws-a/" + id, Workspace: "ws-a", ClientID: id, AppID: "app", ServerURL: fs.URL,
		AppFilesBaseURL: fs.URL + "/files/" + id, Token: "secret-token-" + id,
		Manifest: worker.Manifest{"type": TypeWindow, "entry_point": "index.html"},
	}
	sid, err := w.Start(testserver.Ctx(t), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return sid
}
