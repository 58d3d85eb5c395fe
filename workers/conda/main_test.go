package conda

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	localproc.MaybeSupervise()
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(localproc.SpawnerFunction))
}

// fakeConda is the FAKE conda of internal/condaenv's test data (no conda
// can be installed where the tests run): it makes real virtual
// environments over Debian's python3, whose ipykernel the kernel runs.
func fakeConda(t testing.TB) string {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import ipykernel, jupyter_client, venv").Run(); err != nil {
		testserver.NeedOrSkip(t, false, "/usr/bin/python3 with ipykernel and venv (Debian python3-ipykernel python3-venv)")
	}
	p, err := filepath.Abs("../../internal/condaenv/testdata/fake-conda")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newWorker returns a worker using the fake conda, with its cache and
// working directories in fresh temp dirs, shut down at the end.
func newWorker(t testing.TB, mod func(*Options)) *Worker {
	t.Helper()
	o := Options{
		CondaPath: fakeConda(t), CacheDir: testserver.SharedTempDir(t), WorkDir: testserver.SharedTempDir(t),
		NoPipVenv: true, StopGrace: 2 * time.Second, Logger: testserver.Logger(t),
	}
	if mod != nil {
		mod(&o)
	}
	w := New(o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return w
}

// fileServer serves an app's files at /files/<path> with listings of
// folders (GET /files/<dir>/ -> [{name, type}]), as the artifact
// endpoint does, and records the requests.
type fileServer struct {
	*httptest.Server
	files map[string]string
	mu    sync.Mutex
	paths []string
}

func newFileServer(t testing.TB, files map[string]string) *fileServer {
	fs := &fileServer{files: files}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/files/")
		fs.mu.Lock()
		fs.paths = append(fs.paths, r.URL.Path)
		fs.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(p, "/") || p == "" {
			dir := strings.TrimSuffix(p, "/")
			seen := map[string]string{}
			for name := range fs.files {
				rest, ok := strings.CutPrefix(name, dir+"/")
				if dir == "" {
					rest, ok = name, true
				}
				if !ok {
					continue
				}
				if first, _, sub := strings.Cut(rest, "/"); sub {
					seen[first] = "directory"
				} else {
					seen[rest] = "file"
				}
			}
			if len(seen) == 0 {
				http.NotFound(w, r)
				return
			}
			var list []map[string]string
			for n, typ := range seen {
				list = append(list, map[string]string{"name": n, "type": typ})
			}
			sort.Slice(list, func(i, j int) bool { return list[i]["name"] < list[j]["name"] })
			_ = json.NewEncoder(w).Encode(list)
			return
		}
		c, ok := fs.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(c))
	}))
	t.Cleanup(fs.Close)
	return fs
}

// config is a start config for an app served by fs.
func config(fs *fileServer, ws, name string, man worker.Manifest) worker.Config {
	if man == nil {
		man = worker.Manifest{}
	}
	man["type"] = Type
	if _, ok := man["entry_point"]; !ok {
		man["entry_point"] = "main.py"
	}
	return worker.Config{
		ID: ws + "/" + name, AppID: "app-" + name, Workspace: ws, ClientID: name,
		ServerURL: "http://127.0.0.1:1", AppFilesBaseURL: fs.URL + "/files", Token: "tok",
		Manifest: man, Timeout: 60 * time.Second,
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logsOf returns the contents of the session's log entries of one type.
func logsOf(t testing.TB, w *Worker, id string, typ worker.LogType) []string {
	t.Helper()
	page, err := w.GetLogs(context.Background(), id, worker.LogQuery{Type: typ})
	if err != nil {
		t.Fatalf("get_logs: %v", err)
	}
	var out []string
	for _, e := range page.Items {
		out = append(out, e.Content)
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// hostileListing answers every folder listing with an entry that tries to
// leave the folder.
func hostileListing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			_ = json.NewEncoder(w).Encode([]map[string]string{{"name": "../escaped.txt", "type": "file"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}
