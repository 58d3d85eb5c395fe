package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hypha-go/hypha/workers/browser"
)

// addBrowserFlags declares the browser worker's flags that the embedded
// server (hypha server) uses: --chromium-path and --max-browser-sessions.
func addBrowserFlags(fs *pflag.FlagSet, bo *browser.Options, noBrowser *bool) {
	fs.StringVar(&bo.ChromiumPath, "chromium-path", envOr("HYPHA_CHROMIUM_PATH", ""),
		"Chromium for window, iframe, web-worker and web-app apps (HYPHA_CHROMIUM_PATH; default: /usr/bin/chromium, or chromium-headless-shell, chromium, chromium-browser on PATH)")
	envIntVar(fs, &bo.MaxSessions, "max-browser-sessions", "HYPHA_MAX_BROWSER_SESSIONS", 20,
		"maximum concurrent sessions of the built-in browser worker (HYPHA_MAX_BROWSER_SESSIONS)")
	fs.BoolVar(noBrowser, "no-browser", false, "do not register the built-in browser worker")
}

func newBrowserWorkerCmd() *cobra.Command {
	var wf workerFlags
	var opts browser.Options
	cmd := &cobra.Command{
		Use:   "browser",
		Short: "Run web apps (window, iframe, web-worker, web-app) in headless Chromium",
		Long: `Register a browser worker with a Hypha server. Each session is a page in its
own browser context of one headless Chromium (the system's: /usr/bin/chromium,
chromium-headless-shell, chromium, chromium-browser, or --chromium-path;
nothing is downloaded). Window, iframe and web-worker apps load their page from
the server's app files and connect back with the JavaScript hypha-rpc client
that the server serves at /assets/hypha-rpc-websocket.mjs; a web-app opens its
entry_point URL. execute evaluates JavaScript in the page; take_screenshot
returns a PNG or JPEG of it.

Keep the worker protected (the default) or list the workspaces allowed to use
it. A token given with --token or HYPHA_TOKEN is moved out of the command line
and environment at start. On SIGINT or SIGTERM every session is stopped, the
browser closed and the worker unregistered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := wf.start(cmd)
			if err != nil {
				return err
			}
			ho, log := st.ho, st.log
			opts.IgnoreCertErrors = wf.disableSSL
			opts.Logger = log
			w := browser.New(opts)
			if err := w.Check(cmd.Context()); err != nil {
				_ = w.Shutdown(context.Background())
				return err
			}
			props, ho, err := ho.Check(w)
			if err != nil {
				_ = w.Shutdown(context.Background())
				return err
			}
			out := cmd.OutOrStdout()
			st.banner(out, &wf, "Browser Worker", ho, props,
				fmt.Sprintf("Chromium: %s", w.ChromiumPath()),
			)
			fmt.Fprintf(out, "  Max Sessions: %d\n", w.Options().MaxSessions)

			return serveWorker(cmd, &wf, "Browser", w, w.Sessions.Len, ho, 60*time.Second)
		},
	}
	wf.add(cmd)
	fs := cmd.Flags()
	fs.StringVar(&opts.ChromiumPath, "chromium-path", envOr("HYPHA_CHROMIUM_PATH", ""),
		"the Chromium executable (HYPHA_CHROMIUM_PATH; default: /usr/bin/chromium, or chromium-headless-shell, chromium, chromium-browser on PATH)")
	envIntVar(fs, &opts.MaxSessions, "max-sessions", "HYPHA_MAX_BROWSER_SESSIONS", 20, "maximum number of sessions (HYPHA_MAX_BROWSER_SESSIONS)")
	addSecretsFDFlag(fs)
	return cmd
}
