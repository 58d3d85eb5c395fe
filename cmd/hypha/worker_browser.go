package main

import (
	"github.com/spf13/pflag"

	"github.com/hypha-go/hypha/workers/browser"
)

// addBrowserFlags declares the browser worker's flags that the embedded
// server (hypha server) uses: --chromium-path and --max-browser-sessions.
func addBrowserFlags(fs *pflag.FlagSet, bo *browser.Options, noBrowser *bool) {
	fs.StringVar(&bo.ChromiumPath, "chromium-path", envOr("HYPHA_CHROMIUM_PATH", ""),
		"Chromium for window, iframe, web-worker and web-app apps (HYPHA_CHROMIUM_PATH; default: /usr/bin/chromium, or chromium-headless-shell, chromium, chromium-browser on PATH)")
	fs.IntVar(&bo.MaxSessions, "max-browser-sessions", envInt("HYPHA_MAX_BROWSER_SESSIONS", 20),
		"maximum concurrent sessions of the built-in browser worker (HYPHA_MAX_BROWSER_SESSIONS)")
	fs.BoolVar(noBrowser, "no-browser", false, "do not register the built-in browser worker")
}
