// Package hypharpc ships the browser build of the JavaScript hypha-rpc client
// (npm package hypha-rpc, version in VERSION, MIT licence in LICENSE) inside
// the binary, so pages of browser apps can import it from our own server at
// upstream's paths with no network access and nothing installed.
//
// The files are the package's dist/ builds copied unchanged; their source
// maps are not shipped (browsers fetch them only with developer tools open).
package hypharpc

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

//go:embed hypha-rpc-websocket.js hypha-rpc-websocket.mjs hypha-rpc-websocket.min.js hypha-rpc-websocket.min.mjs LICENSE VERSION
var files embed.FS

// Prefix is the URL path under which the server mounts Handler, as upstream.
const Prefix = "/assets/"

// Names lists the served files (relative to Prefix).
var Names = []string{
	"hypha-rpc-websocket.js",
	"hypha-rpc-websocket.mjs",
	"hypha-rpc-websocket.min.js",
	"hypha-rpc-websocket.min.mjs",
}

// Version is the npm version of the shipped hypha-rpc client.
func Version() string {
	b, _ := files.ReadFile("VERSION")
	return strings.TrimSpace(string(b))
}

// File returns the content of one served file.
func File(name string) ([]byte, bool) {
	for _, n := range Names {
		if n == name {
			b, err := files.ReadFile(n)
			return b, err == nil
		}
	}
	return nil, false
}

type asset struct {
	body []byte
	etag string
}

// Handler serves the client files by their base name (mount it under
// Prefix with the prefix stripped). The content is fixed for a build, so
// responses carry a strong ETag (conditional requests get 304) and may be
// cached for a day; anything else is 404.
func Handler() http.Handler {
	assets := make(map[string]asset, len(Names))
	for _, n := range Names {
		b, err := files.ReadFile(n)
		if err != nil {
			panic("hypharpc: embedded file missing: " + n) // a build error, not a run-time one
		}
		sum := sha256.Sum256(b)
		assets[n] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		// Module scripts are fetched in CORS mode: a page served from another
		// origin (an app's files) must be allowed to import the client.
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=86400")
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
