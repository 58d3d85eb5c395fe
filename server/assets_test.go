package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/assets/hypharpc"
	"github.com/hypha-go/hypha/internal/assets/pyodide"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/server"
)

// TestAssetsHyphaRPCClient fetches the browser hypha-rpc client from a running
// server at upstream's paths: the embedded copy, as JavaScript, cacheable.
func TestAssetsHyphaRPCClient(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	for _, name := range hypharpc.Names {
		resp, err := http.Get(s.URL() + "/assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, _ := hypharpc.File(name)
		if resp.StatusCode != http.StatusOK || string(body) != string(want) {
			t.Fatalf("%s: status %d, %d bytes (want %d)", name, resp.StatusCode, len(body), len(want))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
			t.Fatalf("%s: content type %q", name, ct)
		}
		if resp.Header.Get("ETag") == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
			t.Fatalf("%s: no caching headers: %v", name, resp.Header)
		}
	}
	if !strings.Contains(mustGet(t, s.URL()+"/assets/hypha-rpc-websocket.mjs"), "connectToServer") {
		t.Fatal("the module does not export connectToServer")
	}
	resp, err := http.Get(s.URL() + "/assets/LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("/assets/LICENSE is served; only the client builds should be")
	}
}

func mustGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestAssetsPyodide fetches the Pyodide runtime from a running server: every
// file, the wasm with the media type streaming compilation needs, gzip for
// a browser, CORS open; other names under /assets/pyodide/ are 404.
func TestAssetsPyodide(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	for _, name := range pyodide.Names {
		want, err := pyodide.File(name)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(s.URL() + "/assets/pyodide/" + name) // Go asks for gzip and decodes it
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != string(want) || !resp.Uncompressed {
			t.Fatalf("%s: status %d, %d bytes (want %d), was gzip: %v", name, resp.StatusCode, len(body), len(want), resp.Uncompressed)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("ETag") == "" {
			t.Fatalf("%s: headers %v", name, resp.Header)
		}
	}
	resp, err := http.Get(s.URL() + "/assets/pyodide/pyodide.asm.wasm")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/wasm" {
		t.Fatalf("wasm content type %q", ct)
	}
	for _, p := range []string{"LICENSE", "pyodide.asm.wasm.gz", "pyodide.mjs.map", "..%2f..%2fgo.mod", "x"} {
		resp, err := http.Get(s.URL() + "/assets/pyodide/" + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/assets/pyodide/%s: status %d, want 404", p, resp.StatusCode)
		}
	}
}
