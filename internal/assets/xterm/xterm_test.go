package xterm_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/assets/xterm"
)

// TestServed fetches every asset and the page over real HTTP: the
// embedded copies, their content types, a 404 for anything else, and the
// page's headers (its own scripts only, not framed elsewhere, no referrer).
func TestServed(t *testing.T) {
	if v := xterm.Version(); !strings.Contains(v, "@xterm/xterm 6.0.0") || !strings.Contains(v, "@xterm/addon-fit 0.11.0") {
		t.Fatalf("VERSION = %q", v)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /assets/xterm/", http.StripPrefix("/assets/xterm", xterm.AssetHandler()))
	mux.Handle("GET /{workspace}/terminal/{client_id}", xterm.PageHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (*http.Response, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	for _, n := range xterm.Names {
		want, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := get("/assets/xterm/" + n)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("%s: %s, %d bytes", n, resp.Status, len(body))
		}
		if strings.HasSuffix(n, ".mjs") && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
			t.Fatalf("%s: content type %q", n, resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := get("/assets/xterm/terminal.go"); resp.StatusCode != 404 {
		t.Fatalf("unknown asset: %s", resp.Status)
	}
	resp, body := get("/ws-1/terminal/abc")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/assets/xterm/xterm.mjs") ||
		!strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'self'") ||
		resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("page: %s %v", resp.Status, resp.Header)
	}
	if strings.Contains(string(body), "cdn") || strings.Contains(string(body), "https://") {
		t.Fatal("the page loads something from elsewhere")
	}
}
