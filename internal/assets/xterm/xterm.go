// Package xterm ships the web terminal: xterm.js (npm @xterm/xterm 6.0.0,
// MIT, LICENSE.xterm) with its fit addon (npm @xterm/addon-fit 0.11.0,
// MIT, LICENSE.addon-fit) inside the binary, and the page the server
// serves per terminal session at /{workspace}/terminal/{client_id}
// (terminal.html). Nothing is loaded from a CDN.
//
// The package files are the npm packages' lib/xterm.mjs,
// lib/addon-fit.mjs and css/xterm.css, unchanged except for their last
// line, the sourceMappingURL comment (the maps are not shipped).
package xterm

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

//go:embed xterm.mjs addon-fit.mjs xterm.css terminal.html LICENSE.xterm LICENSE.addon-fit VERSION
var files embed.FS

// Prefix is where the server mounts AssetHandler.
const Prefix = "/assets/xterm/"

// Names are the files served under Prefix.
var Names = []string{"xterm.mjs", "addon-fit.mjs", "xterm.css", "LICENSE.xterm", "LICENSE.addon-fit"}

// Version names the shipped npm packages.
func Version() string {
	b, _ := files.ReadFile("VERSION")
	return strings.TrimSpace(string(b))
}

type asset struct {
	body  []byte
	etag  string
	ctype string
}

func load(name string) asset {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("xterm: missing embedded file " + name)
	}
	sum := sha256.Sum256(b)
	ctype := "text/plain; charset=utf-8"
	switch {
	case strings.HasSuffix(name, ".mjs"):
		ctype = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		ctype = "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".html"):
		ctype = "text/html; charset=utf-8"
	}
	return asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ctype}
}

func serve(w http.ResponseWriter, r *http.Request, a asset, cache string) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", cache)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// AssetHandler serves the files of Names by their base name (mount it
// under Prefix with the prefix stripped); anything else is 404.
func AssetHandler() http.Handler {
	m := map[string]asset{}
	for _, n := range Names {
		m[n] = load(n)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := m[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		serve(w, r, a, "public, max-age=86400")
	})
}

// PageHandler serves the terminal page. The page holds no secret and is
// the same for every session: it reads the workspace and client id from
// its own path and the token from the URL fragment (#token=…, never sent
// to the server), and talks to the server's apps controller from the
// browser with that token. It may not be framed by other sites, and
// loads scripts from this server only (the hypha-rpc client needs
// 'unsafe-eval').
func PageHandler() http.Handler {
	page := load("terminal.html")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; frame-ancestors 'self'")
		h.Set("Referrer-Policy", "no-referrer")
		serve(w, r, page, "no-cache")
	})
}
