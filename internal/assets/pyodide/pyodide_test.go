package pyodide_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/assets/pyodide"
)

func TestVersionMatchesPackage(t *testing.T) {
	b, err := pyodide.File("package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct{ Name, Version, License string }
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Name != "pyodide" || pkg.Version != pyodide.Version() || pkg.License != "MPL-2.0" {
		t.Fatalf("package.json says %+v, VERSION says %q", pkg, pyodide.Version())
	}
	lock, err := pyodide.File("pyodide-lock.json")
	if err != nil || !json.Valid(lock) {
		t.Fatalf("pyodide-lock.json: %v", err)
	}
	wasm, err := pyodide.File("pyodide.asm.wasm")
	if err != nil || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		t.Fatalf("pyodide.asm.wasm is not WebAssembly: %v", err)
	}
	if _, err := pyodide.File("LICENSE"); err == nil {
		t.Fatal("File serves LICENSE; only the runtime files are served")
	}
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// A Transport that leaves Accept-Encoding alone and does not decode.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestServedOverHTTP fetches every file over real HTTP, with and without
// gzip, and checks bodies, media types, caching and CORS.
func TestServedOverHTTP(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/assets/pyodide", pyodide.Handler()))
	defer srv.Close()
	types := map[string]string{
		"pyodide.mjs": "text/javascript; charset=utf-8", "pyodide.js": "text/javascript; charset=utf-8",
		"pyodide.asm.js": "text/javascript; charset=utf-8", "pyodide.asm.wasm": "application/wasm",
		"python_stdlib.zip": "application/zip", "pyodide-lock.json": "application/json", "package.json": "application/json",
	}
	if len(types) != len(pyodide.Names) {
		t.Fatalf("served %v, test knows %v", pyodide.Names, types)
	}
	for _, n := range pyodide.Names {
		want, err := pyodide.File(n)
		if err != nil {
			t.Fatal(err)
		}
		u := srv.URL + "/assets/pyodide/" + n
		// Without gzip: the plain bytes.
		resp, body := get(t, u, nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("Content-Encoding") != "" {
			t.Fatalf("%s: status %d, %d bytes (want %d), encoding %q", n, resp.StatusCode, len(body), len(want), resp.Header.Get("Content-Encoding"))
		}
		if ct := resp.Header.Get("Content-Type"); ct != types[n] {
			t.Errorf("%s: content type %q, want %q", n, ct, types[n])
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
			t.Errorf("%s: headers %v", n, resp.Header)
		}
		plainTag := resp.Header.Get("ETag")
		// With gzip: compressed bytes that decode to the same content.
		resp, body = get(t, u, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != types[n] {
			t.Fatalf("%s (gzip): status %d, headers %v", n, resp.StatusCode, resp.Header)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		dec, _ := io.ReadAll(zr)
		if !bytes.Equal(dec, want) {
			t.Fatalf("%s: gzip body decodes to %d bytes, want %d", n, len(dec), len(want))
		}
		gzTag := resp.Header.Get("ETag")
		if plainTag == "" || gzTag == "" || plainTag == gzTag || strings.HasPrefix(plainTag, "W/") {
			t.Errorf("%s: ETags plain %q gzip %q: want two different strong tags", n, plainTag, gzTag)
		}
		// Conditional requests, both encodings.
		for _, c := range []map[string]string{{"If-None-Match": plainTag}, {"If-None-Match": gzTag, "Accept-Encoding": "gzip"}} {
			if resp, _ := get(t, u, c); resp.StatusCode != http.StatusNotModified {
				t.Errorf("%s: conditional GET %v gave %d, want 304", n, c, resp.StatusCode)
			}
		}
		// gzip refused with q=0: plain bytes.
		if resp, body := get(t, u, map[string]string{"Accept-Encoding": "gzip;q=0"}); resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) {
			t.Errorf("%s: gzip;q=0 still got %q", n, resp.Header.Get("Content-Encoding"))
		}
	}
}

func TestHostileAssetPaths(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/assets/pyodide", pyodide.Handler()))
	defer srv.Close()
	for _, p := range []string{
		"LICENSE", "NOTICE", "VERSION", "pyodide.go", "refresh.sh", "pyodide.asm.wasm.gz", "../go.mod",
		"%2e%2e/pyodide.go", "..%2fpyodide.go", "", "pyodide.mjs.map", "pyodide.d.ts", "console.html",
		"/pyodide.mjs", "PYODIDE.MJS", "pyodide.mjs/", "sub/pyodide.mjs",
	} {
		resp, _ := get(t, srv.URL+"/assets/pyodide/"+p, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%q: status %d, want 404", p, resp.StatusCode)
		}
	}
}
