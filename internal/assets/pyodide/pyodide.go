// Package pyodide ships the Pyodide runtime (Python compiled to WebAssembly;
// npm package pyodide, version in VERSION, MPL-2.0, see NOTICE) inside the
// binary, so web-python pages load it from our own server with no network
// access and nothing installed.
//
// The files are stored gzip-compressed (refresh.sh makes them from the npm
// package) and served at Prefix+name: as gzip to clients that accept it (all
// browsers), decompressed otherwise.
package pyodide

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

//go:embed *.gz VERSION LICENSE LICENSE-PYTHON NOTICE
var files embed.FS

// Prefix is the URL path under which the server mounts Handler.
const Prefix = "/assets/pyodide/"

// contentTypes maps every served file to its media type. application/wasm
// matters: browsers compile a module while it downloads only with it.
var contentTypes = map[string]string{
	"pyodide.mjs":       "text/javascript; charset=utf-8",
	"pyodide.js":        "text/javascript; charset=utf-8",
	"pyodide.asm.js":    "text/javascript; charset=utf-8",
	"pyodide.asm.wasm":  "application/wasm",
	"python_stdlib.zip": "application/zip",
	"pyodide-lock.json": "application/json",
	"package.json":      "application/json",
}

// Names lists the served files (relative to Prefix), sorted.
var Names = []string{
	"package.json", "pyodide-lock.json", "pyodide.asm.js", "pyodide.asm.wasm",
	"pyodide.js", "pyodide.mjs", "python_stdlib.zip",
}

// Version is the npm version of the shipped Pyodide.
func Version() string {
	b, _ := files.ReadFile("VERSION")
	return strings.TrimSpace(string(b))
}

// File returns the decompressed content of one served file.
func File(name string) ([]byte, error) {
	if _, ok := contentTypes[name]; !ok {
		return nil, fmt.Errorf("pyodide: no file %q", name)
	}
	gz, err := files.ReadFile(name + ".gz")
	if err != nil {
		return nil, fmt.Errorf("pyodide: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("pyodide: %s: %w", name, err)
	}
	return io.ReadAll(zr)
}

type asset struct {
	gz    []byte
	ctype string
	// etag names the decompressed bytes; gzip responses carry it with a
	// "-gzip" suffix, since a strong ETag must differ between encodings.
	etag string
}

// Handler serves the runtime files by their base name (mount it under
// Prefix with the prefix stripped); anything else is 404. The content is
// fixed for a build, so responses carry strong ETags (conditional requests
// get 304) and may be cached for a day. Any origin may fetch them: the pages
// that load Pyodide come from an app's files, which may be another origin.
func Handler() http.Handler {
	assets := make(map[string]asset, len(Names))
	for _, n := range Names {
		gz, err := files.ReadFile(n + ".gz")
		if err != nil {
			panic("pyodide: embedded file missing: " + n) // a build error, not a run-time one
		}
		// The ETag hashes the stored gzip bytes: it changes exactly when
		// the content does, without decompressing 12 MiB at start.
		sum := sha256.Sum256(gz)
		assets[n] = asset{gz: gz, ctype: contentTypes[n], etag: hex.EncodeToString(sum[:16])}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", "public, max-age=86400")
		h.Set("Vary", "Accept-Encoding")
		h.Set("X-Content-Type-Options", "nosniff")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("ETag", `"`+a.etag+`-gzip"`)
			h.Set("Content-Encoding", "gzip")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.gz))
			return
		}
		etag := `"` + a.etag + `"`
		h.Set("ETag", etag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(a.gz))
		if err != nil {
			http.Error(w, "corrupt embedded file", http.StatusInternalServerError)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = io.Copy(w, zr) // a client that went away is not an error here
	})
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (q=0
// refuses it).
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
			return false
		}
		return true
	}
	return false
}

func etagMatch(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" || strings.TrimPrefix(p, "W/") == etag {
			return true
		}
	}
	return false
}
