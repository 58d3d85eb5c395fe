package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/workers/browser"
	"github.com/hypha-go/hypha/workers/conda"
	"github.com/hypha-go/hypha/workers/mcpproxy"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/hypha-go/hypha/workers/terminal"
	"github.com/spf13/cobra"
)

// logSink is where run prints the app's log: nowhere for a terminal app,
// whose output was shown live (the log then only tells when it ended).
func logSink(terminalApp bool, out io.Writer) io.Writer {
	if terminalApp {
		return io.Discard
	}
	return out
}

func newRunCmd() *cobra.Command {
	var cf clientFlags
	var typ string
	var waitFor string
	var timeout time.Duration
	var po process.Options
	var co conda.Options
	var bo browser.Options
	var noBrowser bool
	var appUser appUserFlags
	cmd := &cobra.Command{
		Use:   "run PATH",
		Short: "Install an app, start it, stream its logs, stop it on Ctrl-C",
		Long: "Runs an app (a directory with an optional manifest.json, or a single .py/.js/.html file;\n" +
			"an .html file is a window app, or a hypha app when it is an ImJoy-style source with\n" +
			"<config> and <script> sections; its console output is printed as it comes).\n" +
			"Without --server-url it starts the embedded server and its built-in workers in-process.\n" +
			"The app is ready by the server's readiness rule (a process app once it runs) unless its\n" +
			"manifest or --wait-for-service names a service to wait for.\n" +
			"Exit code: the app's own exit code when its process exits (0 when it completes),\n" +
			"1 when it fails otherwise or hypha run itself fails, 130 on Ctrl-C (143 on SIGTERM).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			app, err := loadApp(args[0], typ, "")
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			var c *rpc.Client
			if !cmd.Flags().Changed("server-url") && os.Getenv("HYPHA_SERVER_URL") == "" {
				// The embedded server's secrets live in this process.
				harden(quietLogger(cmd))
				if err := appUserOption(cmd, &po, appUser); err != nil {
					return err
				}
				dataDir, err := os.MkdirTemp("", "hypha-run-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dataDir)
				web := isBrowserType(app.Manifest["type"])
				if web && !noBrowser {
					if err := chromiumFound(bo.ChromiumPath, app.Manifest["type"]); err != nil {
						return err
					}
				}
				k8sOpts, err := k8sFromEnv()
				if err != nil {
					return err
				}
				// The Kubernetes worker only when the app needs it: finding
				// a cluster configuration is all it costs, but a run of
				// another app should not list pods.
				k8sOpts.Disabled = k8sOpts.Disabled || app.Manifest["type"] != "k8s-pod"
				sys, err := embedded.Start(ctx, embedded.Options{
					K8s:     k8sOpts,
					Server:  server.Config{Logger: quietLogger(cmd), DataDir: dataDir, JWTSecret: randomSecret()},
					Addr:    "127.0.0.1:0",
					Process: po,
					Conda:   co,
					Browser: bo,
					// The embedded server of hypha run is private (loopback,
					// a random secret) and runs the user's own app: its
					// stdio MCP servers may run as the user, root included.
					MCPProxy: mcpproxy.Options{AllowStdio: true},
					// A web app needs the browser worker; other apps do not
					// pay for finding one.
					NoBrowser: noBrowser || !web,
				})
				if err != nil {
					return err
				}
				defer sys.Close()
				if web && sys.BrowserWorker() == nil {
					if noBrowser {
						return fmt.Errorf("cannot run the %v app: the browser worker is off (--no-browser)", app.Manifest["type"])
					}
					return fmt.Errorf("cannot run the %v app: %s; install Debian's chromium (apt-get install chromium) or pass --chromium-path", app.Manifest["type"], sys.BrowserStatus())
				}
				tok, err := sys.RootToken(24 * time.Hour)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "[info] embedded server at %s\n", sys.Server.URL())
				if app.Manifest["type"] == conda.Type {
					fmt.Fprintf(stderr, "[info] %s\n", sys.CondaStatus())
				}
				if web {
					fmt.Fprintf(stderr, "[info] %s\n", sys.BrowserStatus())
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				c, err = rpc.Connect(cctx, rpc.Config{ServerURL: sys.Server.URL(), Token: tok, Logger: quietLogger(cmd)})
				cancel()
				if err != nil {
					return err
				}
			} else {
				if c, err = connect(cmd, &cf); err != nil {
					return err
				}
			}
			defer c.Close()
			apps, err := serverApps(ctx, c)
			if err != nil {
				return err
			}
			defaultAppID(app)
			// nil: the server's readiness rule (docs/apps.md, "Readiness").
			var wait any
			if w, ok := app.Manifest["wait_for_service"]; ok {
				wait = w
			}
			if cmd.Flags().Changed("wait-for-service") {
				wait = waitFor
			}
			// Installed as a staged version and started as one (stage=True
			// both times, as upstream): the trial start of install is
			// skipped, the real start follows, and an app of the same id
			// installed and committed before keeps its committed version.
			appID, err := installApp(ctx, apps, app, true, stderr, rpc.Kwargs{"stage": true, "wait_for_service": wait})
			if err != nil {
				return fmt.Errorf("install: %w", err)
			}
			// The start's progress goes through startLines, so that a failure
			// already shown as an [error] line is not printed again in full.
			startLines := &errorLines{w: stderr}
			// stop_after_inactive 0: a run lasts until the app ends or Ctrl-C,
			// however long nobody calls it (the server's default stops idle
			// apps after 600 s).
			kw := rpc.Kwargs{"progress_callback": progressPrinter(startLines), "wait_for_service": wait, "stop_after_inactive": 0, "stage": true}
			if timeout > 0 {
				kw["timeout"] = timeout.Seconds()
			}
			v, err := apps.Call(ctx, "start", appID, kw)
			if err != nil {
				if ctx.Err() != nil {
					// Ctrl-C (or SIGTERM) while starting: exit as for
					// one while running.
					fmt.Fprintln(stderr, "[info] interrupted while starting")
					return exitError{code: signalExitCode(ctx)}
				}
				if startLines.shownIn(err.Error()) {
					return exitError{code: 1} // the [error] lines above said why
				}
				return fmt.Errorf("start: %w", err)
			}
			m, _ := v.(map[string]any)
			sid, _ := m["id"].(string)
			diag := &errorLines{w: stderr}
			if app.Manifest["type"] == terminal.Type {
				// A terminal app is shown on this terminal instead of
				// its log (run_terminal.go).
				wid, _ := m["worker_id"].(string)
				aerr := attachTerminal(ctx, c, apps, wid, sid, os.Stdin, cmd.OutOrStdout(), stderr)
				if aerr != nil && !errors.Is(aerr, errDetached) && ctx.Err() == nil {
					fmt.Fprintf(stderr, "[error] %v\n", aerr)
				}
				if errors.Is(aerr, errDetached) || aerr != nil && ctx.Err() == nil {
					sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					_, _ = apps.Call(sctx, "stop", sid)
					fmt.Fprintf(stderr, "[info] stopped %s\n", sid)
					if errors.Is(aerr, errDetached) {
						return nil
					}
					return exitError{code: 1}
				}
			} else {
				fmt.Fprintf(stderr, "[info] session %s running; Ctrl-C stops it\n", sid)
			}
			status, err := streamLogs(ctx, apps, sid, "", true, logSink(app.Manifest["type"] == terminal.Type, cmd.OutOrStdout()), diag)
			if ctx.Err() != nil {
				sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				if _, err := apps.Call(sctx, "stop", sid); err != nil {
					fmt.Fprintf(stderr, "[warning] stop %s: %v\n", sid, err)
				}
				fmt.Fprintf(stderr, "[info] stopped %s\n", sid)
				return exitError{code: signalExitCode(ctx)}
			}
			if err != nil {
				return err
			}
			return runOutcome(ctx, apps, sid, status, stderr, diag)
		},
	}
	cf.add(cmd.Flags())
	// Unlike the other client commands, run's default is no server at all:
	// it starts the embedded one.
	if f := cmd.Flags().Lookup("server-url"); f != nil {
		f.DefValue = ""
		f.Usage = "server to run the app on (HYPHA_SERVER_URL); default: the embedded server with its built-in workers, started in-process"
	}
	cmd.Flags().StringVar(&typ, "type", "", "app type (default: from the manifest or the entry point's extension)")
	cmd.Flags().StringVar(&waitFor, "wait-for-service", "", "wait until the app registers this service")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "start timeout (default: the server's)")
	cmd.Flags().StringVar(&po.Python, "python", envOr("HYPHA_PYTHON", "python3"), "interpreter for python-eval apps (embedded server)")
	cmd.Flags().StringVar(&po.Node, "node", envOr("HYPHA_NODE", "node"), "interpreter for node-eval apps (embedded server)")
	cmd.Flags().StringVar(&po.NodePath, "node-path", envOr("NODE_PATH", ""), "NODE_PATH for node-eval apps (embedded server)")
	addAppUserFlag(cmd.Flags(), &appUser)
	addAppFilesFlags(cmd.Flags(), &po)
	addLogFlags(cmd.Flags(), &po)
	addCondaFlags(cmd.Flags(), &co)
	addBrowserFlags(cmd.Flags(), &bo, &noBrowser)
	return cmd
}

// isBrowserType reports whether apps of type t run on the browser worker.
func isBrowserType(t any) bool {
	s, _ := t.(string)
	return s == "web-python" || slices.Contains(browser.SupportedTypes, s)
}

// chromiumFound says, for a web app of type typ, what to install when no
// Chromium is found.
func chromiumFound(path string, typ any) error {
	if _, err := browser.FindChromium(path); err == nil {
		return nil
	}
	if path != "" {
		return fmt.Errorf("cannot run the %v app: no Chromium at %q (--chromium-path or HYPHA_CHROMIUM_PATH); install Debian's chromium (apt-get install chromium) or give the path of a Chromium or Chrome executable", typ, path)
	}
	return fmt.Errorf("cannot run the %v app: no Chromium found (looked for %s); install Debian's chromium (apt-get install chromium) or pass --chromium-path", typ, strings.Join(browser.CandidatePaths, ", "))
}
