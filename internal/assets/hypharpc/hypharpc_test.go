package hypharpc_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/hypha-go/hypha/internal/assets/hypharpc"
)

func TestVersionRecorded(t *testing.T) {
	if v := hypharpc.Version(); v == "" {
		t.Fatal("VERSION is empty")
	}
}

// TestServedOverHTTP fetches every file over real HTTP and checks the body is
// the embedded copy, the content type is JavaScript, and caching works.
func TestServedOverHTTP(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/assets", hypharpc.Handler()))
	defer srv.Close()
	for _, n := range hypharpc.Names {
		want, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(srv.URL + "/assets/" + n)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("%s: status %d, %d bytes (want %d)", n, resp.StatusCode, len(body), len(want))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
			t.Fatalf("%s: content type %q", n, ct)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" || resp.Header.Get("Cache-Control") == "" {
			t.Fatalf("%s: no caching headers: %v", n, resp.Header)
		}
		req, _ := http.NewRequest("GET", srv.URL+"/assets/"+n, nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("%s: conditional GET gave %d, want 304", n, resp.StatusCode)
		}
	}
}

func TestHostileAssetPaths(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/assets", hypharpc.Handler()))
	defer srv.Close()
	for _, p := range []string{"LICENSE", "VERSION", "hypharpc.go", "../go.mod", "%2e%2e/hypharpc.go", "", "hypha-rpc-websocket.js.map"} {
		resp, err := http.Get(srv.URL + "/assets/" + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%q: status %d, want 404", p, resp.StatusCode)
		}
	}
}
