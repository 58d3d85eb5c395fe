package appfiles

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/worker"
)

func TestCheckPath(t *testing.T) {
	for p, want := range map[string]string{"main.py": "main.py", "./main.py": "main.py", "a/b/c.js": "a/b/c.js", "..foo": "..foo", "a:b": "a:b"} {
		got, err := CheckPath("file path", p)
		if err != nil || got != want {
			t.Errorf("CheckPath(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	for p, why := range map[string]string{
		"":                        "is empty",
		"../evil.py":              "leaves the working directory",
		"a/../../evil.py":         "leaves the working directory",
		"a/../main.py":            "leaves the working directory",
		"/etc/passwd":             "is absolute",
		`a\..\evil.py`:            "backslash",
		"a//b.py":                 "empty or '.' element",
		"a/./b.py":                "empty or '.' element",
		"dir/":                    "is a folder",
		"nul\x00.py":              "NUL",
		strings.Repeat("a", 1025): "too long",
	} {
		_, err := CheckPath("source", p)
		if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "source") {
			t.Errorf("CheckPath(%q) = %v, want ErrInvalidConfig naming the source and %q", p, err, why)
		}
	}
}

func TestURLs(t *testing.T) {
	base := "http://h/ws/artifacts/a/files/"
	if got := FileURL(base, "dir/a b#.py"); got != "http://h/ws/artifacts/a/files/dir/a%20b%23.py?use_proxy=true" {
		t.Errorf("FileURL = %q", got)
	}
	if got := DirURL(base, ""); got != "http://h/ws/artifacts/a/files/" {
		t.Errorf("DirURL top = %q", got)
	}
	if got := DirURL(base, "d?x/y"); got != "http://h/ws/artifacts/a/files/d%3Fx/y/" {
		t.Errorf("DirURL = %q", got)
	}
	for _, bad := range []string{"", "ftp://h/x", "/relative", "http://"} {
		if err := CheckBaseURL(bad); !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("CheckBaseURL(%q) = %v, want ErrInvalidConfig", bad, err)
		}
	}
	if err := CheckBaseURL(base); err != nil {
		t.Errorf("CheckBaseURL(%q) = %v", base, err)
	}
}

// TestFetcher downloads from a real HTTP server: the token is sent, nested
// folders are made, the content is kept when asked, and every limit and
// error is what it says.
func TestFetcher(t *testing.T) {
	files := map[string]string{"main.py": "print(1)\n", "d/e/f.txt": "nested", "big.bin": strings.Repeat("x", 200)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "missing or bad token", http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("use_proxy") != "true" {
			http.Error(w, "no use_proxy", http.StatusBadRequest)
			return
		}
		c, ok := files[strings.TrimPrefix(r.URL.Path, "/files/")]
		if !ok {
			http.Error(w, "no such file", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(c))
	}))
	defer srv.Close()
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ctx := context.Background()
	f := Fetcher{Client: srv.Client(), Base: srv.URL + "/files/", Token: "tok", MaxFileBytes: 100, Budget: NewBudget(1000, "(max app bytes)")}

	if err := f.Files(ctx, root, []string{"main.py", "d/e/f.txt"}); err != nil {
		t.Fatal(err)
	}
	if b, err := root.ReadFile("d/e/f.txt"); err != nil || string(b) != "nested" {
		t.Fatalf("d/e/f.txt = %q, %v", b, err)
	}
	if b, err := f.File(ctx, root, "main.py", "copy/main.py", true); err != nil || string(b) != "print(1)\n" {
		t.Fatalf("kept content = %q, %v", b, err)
	}
	if _, err := f.File(ctx, root, "main.py", "main.py", false); err == nil {
		t.Fatal("a second file at the same target was written over")
	}
	if _, err := f.File(ctx, root, "nope.py", "nope.py", false); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "fetch nope.py: HTTP 404 Not Found: no such file") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := f.File(ctx, root, "big.bin", "big.bin", false); !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), "larger than the limit of 100 bytes per file") {
		t.Fatalf("big file: %v", err)
	}
	bad := f
	bad.Token = "other"
	if _, err := bad.File(ctx, root, "main.py", "x.py", false); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("bad token: %v", err)
	}
	small := f
	small.MaxFileBytes, small.Budget = 1000, NewBudget(150, "(max app bytes)")
	if _, err := small.File(ctx, root, "big.bin", "big2.bin", false); !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), "over the limit of 150 bytes per session (max app bytes)") {
		t.Fatalf("over the budget: %v", err)
	}
}
