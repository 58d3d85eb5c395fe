package process

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"

	"github.com/hypha-go/hypha/internal/testserver"
)

// multiFileApp imports its own package and reads a data file, none of them
// named in the manifest, and says whether its files are its own uid's.
var multiFileApp = map[string]string{
	"main.py": `import os
from pkg.helper import greet
print(greet("multi"))
print(open("data/greeting.txt").read().strip())
st = os.stat("pkg/helper.py")
print("owner-ok", st.st_uid == os.getuid())
`,
	"pkg/__init__.py":   "",
	"pkg/helper.py":     "def greet(name):\n    return 'helper says hi to ' + name\n",
	"data/greeting.txt": "data file read\n",
}

// TestServerAppsMultiFilePython: an app of several files in folders,
// installed through public/server-apps with no manifest "files" list,
// runs: the worker stages every file, paths preserved, owned by the
// session's user. The controller passes the exit code on.
func TestServerAppsMultiFilePython(t *testing.T) {
	hs := newHostileSystem(t)
	ctx := ctxT(t)
	apps := service(t, hs.alice, "public/server-apps")
	var files []any
	for p, c := range multiFileApp {
		files = append(files, map[string]any{"path": p, "content": c})
	}
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "multi",
		"manifest": map[string]any{"type": TypePython, "name": "Multi", "entry_point": "main.py"},
		"files":    files, "stage": true,
	}); err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "multi", rpc.Kwargs{"wait_for_service": false, "timeout": 20.0, "stage": true})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid, _ := v.(map[string]any)["id"].(string)
	var info map[string]any
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := apps.Call(ctx, "get_session_info", sid)
		if err != nil {
			t.Fatal(err)
		}
		info = r.(map[string]any)
		if info["status"] == "completed" || info["status"] == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still %v", info["status"])
		}
	}
	logs, err := apps.Call(ctx, "get_logs", sid)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(logContents(logs), "\n")
	if info["status"] != "completed" || info["exit_code"] != int64(0) {
		t.Fatalf("session info = %v\nlogs:\n%s", info, all)
	}
	for _, want := range []string{"helper says hi to multi", "data file read", "owner-ok True", "fetched 4 file(s)"} {
		if !strings.Contains(all, want) {
			t.Errorf("logs lack %q:\n%s", want, all)
		}
	}
}

// hostileFileServer answers listings (paths ending in "/") from listings
// (raw JSON by folder, "" for the top) and files from files; it counts the
// file (non-listing) requests.
type hostileFileServer struct {
	*httptest.Server
	fileHits atomic.Int64
}

func newHostileFileServer(t *testing.T, listings, files map[string]string) *hostileFileServer {
	hs := &hostileFileServer{}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/files/")
		if strings.HasSuffix(r.URL.Path, "/") {
			l, ok := listings[strings.TrimSuffix(p, "/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, l)
			return
		}
		hs.fileHits.Add(1)
		c, ok := files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, c)
	}))
	t.Cleanup(hs.Close)
	return hs
}

// TestHostileAppFileListing: whoever answers at app_files_base_url lists
// names that leave the working directory, types other than file and
// folder, more files or bytes than a session may hold, or sizes that lie.
// Each start is refused with an error naming what is wrong, nothing is
// written in or out of the working directory's parent, and no session is
// kept.
func TestHostileAppFileListing(t *testing.T) {
	entry := `{"name": "main.py", "type": "file", "size": 9}`
	many := make([]string, 6)
	for i := range many {
		many[i] = fmt.Sprintf(`{"name": "f%d.py", "type": "file", "size": 1}`, i)
	}
	big := strings.Repeat("#", 600)
	for _, tc := range []struct {
		name     string
		listings map[string]string
		files    map[string]string
		want     string
		fetches  bool // file content may be requested before the refusal
	}{
		{name: "parent name", listings: map[string]string{"": `[` + entry + `, {"name": "../escape.py", "type": "file", "size": 5}]`},
			want: `names "../escape.py", which is not a plain file name`},
		{name: "dot dot", listings: map[string]string{"": `[` + entry + `, {"name": "..", "type": "directory"}]`},
			want: `names "..", which is not a plain file name`},
		{name: "absolute", listings: map[string]string{"": `[` + entry + `, {"name": "/tmp/escape.py", "type": "file"}]`},
			want: `names "/tmp/escape.py", which is not a plain file name`},
		{name: "nested traversal", listings: map[string]string{
			"":    `[` + entry + `, {"name": "pkg", "type": "directory"}]`,
			"pkg": `[{"name": "a/../../../escape.py", "type": "file"}]`},
			want: `listing of folder "pkg" names "a/../../../escape.py"`},
		{name: "backslash", listings: map[string]string{"": `[{"name": "..\\escape.py", "type": "file"}]`},
			want: `which is not a plain file name`},
		{name: "symlink type", listings: map[string]string{"": `[` + entry + `, {"name": "link", "type": "symlink"}]`},
			want: `gives "link" the type "symlink"`},
		{name: "too many files", listings: map[string]string{"": `[` + strings.Join(many, ",") + `]`},
			want: "over the limit of 5 per session (max app files)"},
		{name: "folder holding itself forever", listings: map[string]string{
			"": `[{"name": "a", "type": "directory"}]`, "a": `[{"name": "a", "type": "directory"}]`,
			"a/a": `[{"name": "a", "type": "directory"}]`, "a/a/a": `[{"name": "a", "type": "directory"}]`,
			"a/a/a/a": `[{"name": "a", "type": "directory"}]`, "a/a/a/a/a": `[{"name": "a", "type": "directory"}]`},
			want: "max app files"},
		{name: "too many bytes announced", listings: map[string]string{"": `[{"name": "main.py", "type": "file", "size": 600}, {"name": "b.py", "type": "file", "size": 600}]`},
			want: "over the limit of 1000 bytes per session (max app bytes)"},
		{name: "sizes that lie", listings: map[string]string{"": `[{"name": "main.py", "type": "file", "size": 1}, {"name": "b.py", "type": "file", "size": 1}]`},
			files: map[string]string{"main.py": big, "b.py": big}, fetches: true,
			want: "over the limit of 1000 bytes per session (max app bytes)"},
		{name: "folder listing not json", listings: map[string]string{"": `[` + entry + `, {"name": "pkg", "type": "directory"}]`, "pkg": `<html>`},
			want: `the listing of app folder pkg is not a JSON list of files`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := testserver.SharedTempDir(t)
			dir := filepath.Join(parent, "work")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			files := tc.files
			if files == nil {
				files = map[string]string{"main.py": "print(1)\n", "escape.py": "x", "../escape.py": "x"}
			}
			srv := newHostileFileServer(t, tc.listings, files)
			w := newWorker(t, Options{Python: "sh", WorkDir: dir, MaxFiles: 5, MaxTotalBytes: 1000})
			_, err := w.Start(ctxT(t), config(t, srv.URL+"/files", "h", TypePython, "main.py", nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start: %v, want an error with %q", err, tc.want)
			}
			if !tc.fetches {
				if !errors.Is(err, worker.ErrInvalidConfig) {
					t.Errorf("err = %v, want ErrInvalidConfig", err)
				}
				if n := srv.fileHits.Load(); n != 0 {
					t.Errorf("%d files fetched from a refused listing", n)
				}
			}
			for _, d := range []string{dir, parent} {
				ents, _ := os.ReadDir(d)
				if d == parent && len(ents) == 1 && ents[0].Name() == "work" {
					continue
				}
				if len(ents) != 0 {
					t.Errorf("%s holds %v after the refusal", d, ents)
				}
			}
			if w.Sessions.Len() != 0 {
				t.Error("session kept")
			}
		})
	}
}

// TestNoListingFallsBack: a file server that gives no listing (an HTTP
// error for the folder) still serves the entry point and the manifest's
// files, as before listings were used; the session's logs say so.
func TestNoListingFallsBack(t *testing.T) {
	srv := newHostileFileServer(t, map[string]string{}, map[string]string{"main.sh": "echo fallback ok\n", "lib.sh": "x=1\n"})
	w := newWorker(t, Options{Python: "sh"})
	cfg := config(t, srv.URL+"/files", "nl", TypePython, "main.sh", map[string]any{"files": []any{"lib.sh"}})
	cfg.Token = testToken
	id, err := w.Start(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, id, worker.StatusCompleted)
	waitLog(t, w, id, worker.LogStdout, "fallback ok")
	waitLog(t, w, id, worker.LogInfo, `gives no listing of the app's files \(no file listing \(HTTP 404`)
	waitLog(t, w, id, worker.LogInfo, `fetched 2 file\(s\): main.sh, lib.sh`)
}
