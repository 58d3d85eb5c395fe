package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/workers/browser"
	"github.com/spf13/cobra"
)

// maxAppBytes bounds what `apps install` reads from disk.
const maxAppBytes = 64 << 20

// appSource is an app read from disk: its manifest and files.
type appSource struct {
	Manifest map[string]any
	Files    []any // [{path, content, format}]
}

// typeByExt guesses the app type of an entry point.
var typeByExt = map[string]string{".py": "python-eval", ".js": "node-eval", ".mjs": "node-eval", ".cjs": "node-eval"}

// isHTMLFile reports whether name is a web page by its extension.
func isHTMLFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".html", ".htm":
		return true
	}
	return false
}

// detectHTMLType is the app type of an .html entry point: an ImJoy-style
// source (a <config> section and a <script> section) is "hypha", any other
// page "window" (compile keeps a whole HTML page as it is).
func detectHTMLType(src string) string {
	l := strings.ToLower(src)
	if strings.Contains(l, "<config") && strings.Contains(l, "<script") {
		return browser.TypeHypha
	}
	return browser.TypeWindow
}

// fileText is the text content of the app's file at path ("" when there is
// none or it is not text).
func (a *appSource) fileText(path string) string {
	for _, f := range a.Files {
		m, _ := f.(map[string]any)
		if m["path"] == path && m["format"] == "text" {
			s, _ := m["content"].(string)
			return s
		}
	}
	return ""
}

// loadApp reads an app from a directory (with an optional manifest.json) or
// a single file.
func loadApp(path, typ, id string) (*appSource, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	app := &appSource{Manifest: map[string]any{}}
	total := 0
	add := func(rel string, data []byte) error {
		total += len(data)
		if total > maxAppBytes {
			return fmt.Errorf("app %s is larger than %d bytes", path, maxAppBytes)
		}
		f := map[string]any{"path": filepath.ToSlash(rel)}
		if utf8.Valid(data) {
			f["content"], f["format"] = string(data), "text"
		} else {
			f["content"], f["format"] = base64.StdEncoding.EncodeToString(data), "base64"
		}
		app.Files = append(app.Files, f)
		return nil
	}
	if !st.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(path)
		if err := add(name, data); err != nil {
			return nil, err
		}
		app.Manifest["entry_point"] = name
		app.Manifest["name"] = strings.TrimSuffix(name, filepath.Ext(name))
		if typ == "" && isHTMLFile(name) && detectHTMLType(string(data)) == "window" {
			// A page of one's own need not connect back at all: it is
			// ready once loaded unless --wait-for-service names a service.
			app.Manifest["wait_for_service"] = false
			if !browser.IsHTMLDocument(string(data)) {
				// Kept as is by compile only when it reads as a whole
				// page; a browser opening the file would read it so too.
				f := app.Files[0].(map[string]any)
				f["content"] = "<!doctype html>\n" + string(data)
			}
		}
	} else {
		if b, err := os.ReadFile(filepath.Join(path, "manifest.json")); err == nil {
			if err := json.Unmarshal(b, &app.Manifest); err != nil {
				return nil, fmt.Errorf("%s/manifest.json: %w", path, err)
			}
			if app.Manifest == nil {
				return nil, fmt.Errorf("%s/manifest.json: not a JSON object", path)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(path, p)
			if d.IsDir() {
				if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "__pycache__") {
					return filepath.SkipDir
				}
				return nil
			}
			if rel == "manifest.json" || strings.HasPrefix(d.Name(), ".") || !d.Type().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return add(rel, data)
		})
		if err != nil {
			return nil, err
		}
		if _, ok := app.Manifest["name"]; !ok {
			app.Manifest["name"] = filepath.Base(filepath.Clean(path))
		}
		if _, ok := app.Manifest["entry_point"]; !ok {
			for _, cand := range []string{"main.py", "app.py", "index.js", "main.js", "index.mjs", "main.mjs", "index.html", "index.imjoy.html"} {
				if _, err := os.Stat(filepath.Join(path, cand)); err == nil {
					app.Manifest["entry_point"] = cand
					break
				}
			}
		}
	}
	entry, _ := app.Manifest["entry_point"].(string)
	if entry == "" {
		return nil, fmt.Errorf("%s: no entry point (set entry_point in manifest.json or add main.py / index.js)", path)
	}
	if typ != "" {
		app.Manifest["type"] = typ
	}
	if _, ok := app.Manifest["type"]; !ok {
		t, ok := typeByExt[strings.ToLower(filepath.Ext(entry))]
		if isHTMLFile(entry) {
			t, ok = detectHTMLType(app.fileText(entry)), true
		}
		if !ok {
			return nil, fmt.Errorf("%s: cannot tell the app type of %s; set \"type\" in manifest.json or pass --type", path, entry)
		}
		app.Manifest["type"] = t
	}
	if id != "" {
		app.Manifest["id"] = id
	}
	sort.Slice(app.Files, func(i, j int) bool {
		return app.Files[i].(map[string]any)["path"].(string) < app.Files[j].(map[string]any)["path"].(string)
	})
	return app, nil
}

// progressPrinter shows the controller's progress messages live.
// progressPrinter prints progress messages as "[type] message". An error
// that repeats an error already printed (the controller wraps the worker's)
// is printed with the repeated part replaced by a pointer to it, so that
// one failure reads once.
func progressPrinter(w io.Writer) func(map[string]any) {
	var mu sync.Mutex
	var errs []string
	return func(m map[string]any) {
		typ, _ := m["type"].(string)
		msg, _ := m["message"].(string)
		if typ == "" {
			typ = "info"
		}
		if typ == "error" {
			mu.Lock()
			for _, e := range errs {
				if len(e) >= minRepeatedError && strings.Contains(msg, e) && msg != e {
					msg = strings.Replace(msg, e, "(the error above)", 1)
					break
				}
			}
			errs = append(errs, msg)
			mu.Unlock()
		}
		fmt.Fprintf(w, "[%s] %s\n", typ, msg)
	}
}

// minRepeatedError is the shortest error text progressPrinter treats as a
// repetition when a later error contains it.
const minRepeatedError = 20

func serverApps(ctx context.Context, c *rpc.Client) (*rpc.RemoteService, error) {
	svc, err := c.GetService(ctx, "public/server-apps")
	if err != nil {
		return nil, fmt.Errorf("the server has no apps controller (public/server-apps): %w", err)
	}
	return svc, nil
}

func installApp(ctx context.Context, apps *rpc.RemoteService, app *appSource, overwrite bool, progress io.Writer, extra rpc.Kwargs) (string, error) {
	kw := rpc.Kwargs{"manifest": app.Manifest, "files": app.Files, "overwrite": overwrite,
		"progress_callback": progressPrinter(progress)}
	for k, v := range extra {
		kw[k] = v
	}
	if id, ok := app.Manifest["id"].(string); ok {
		kw["app_id"] = id
	}
	v, err := apps.Call(ctx, "install", kw)
	if err != nil {
		return "", err
	}
	if m, ok := v.(map[string]any); ok {
		if id, _ := m["id"].(string); id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("install returned %v, not an app", v)
}

func newAppsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apps", Short: "Install, start and manage server apps (public/server-apps)"}
	var cf clientFlags
	cf.add(cmd.PersistentFlags())
	withApps := func(run func(ctx context.Context, cmd *cobra.Command, c *rpc.Client, apps *rpc.RemoteService, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, &cf)
			if err != nil {
				return err
			}
			defer c.Close()
			apps, err := serverApps(cmd.Context(), c)
			if err != nil {
				return err
			}
			return run(cmd.Context(), cmd, c, apps, args)
		}
	}

	var typ, id, installWait string
	var overwrite, installStage bool
	install := &cobra.Command{
		Use:   "install PATH",
		Short: "Install an app from a directory (optional manifest.json) or a single file",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			app, err := loadApp(args[0], typ, id)
			if err != nil {
				return err
			}
			defaultAppID(app) // as hypha run does
			extra := rpc.Kwargs{}
			if w, ok := app.Manifest["wait_for_service"]; ok {
				extra["wait_for_service"] = w
			}
			if installWait != "" {
				extra["wait_for_service"] = installWait
			}
			if installStage {
				extra["stage"] = true
			}
			appID, err := installApp(ctx, apps, app, overwrite, cmd.ErrOrStderr(), extra)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), appID)
			return nil
		}),
	}
	install.Flags().StringVar(&typ, "type", "", "app type (default: from the manifest or the entry point's extension)")
	install.Flags().StringVar(&id, "id", "", "app id (default: the manifest's id, else a slug of its name, which defaults to the directory or file name, as for hypha run)")
	install.Flags().BoolVar(&overwrite, "overwrite", false, "replace an installed app with the same id")
	install.Flags().StringVar(&installWait, "wait-for-service", "", "service the trial start waits for (default: the manifest's wait_for_service, else the server's default)")
	install.Flags().BoolVar(&installStage, "stage", false, "store the app as its staged version, without a trial start; the committed version keeps running until `hypha apps commit`")

	var waitFor string
	var detach, startStage bool
	var timeout time.Duration
	start := &cobra.Command{
		Use:   "start APP_ID",
		Short: "Start an installed app and print its session id",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			kw := rpc.Kwargs{"progress_callback": progressPrinter(cmd.ErrOrStderr())}
			if timeout > 0 {
				kw["timeout"] = timeout.Seconds()
			}
			switch {
			case detach:
				kw["wait_for_service"] = false
			case cmd.Flags().Changed("wait-for-service"):
				kw["wait_for_service"] = waitFor
			}
			if startStage {
				kw["stage"] = true
			}
			v, err := apps.Call(ctx, "start", args[0], kw)
			if err != nil {
				return err
			}
			m, _ := v.(map[string]any)
			sid, _ := m["id"].(string)
			if sid == "" {
				return fmt.Errorf("start returned %v, not a session", v)
			}
			fmt.Fprintln(cmd.OutOrStdout(), sid)
			return nil
		}),
	}
	start.Flags().StringVar(&waitFor, "wait-for-service", "", "wait until the app registers this service (\"\" waits for the app to connect; default: the server's readiness rule, see docs/apps.md)")
	start.Flags().BoolVar(&detach, "detach", false, "do not wait for the app to connect")
	start.Flags().DurationVar(&timeout, "timeout", 0, "start timeout (default: the server's)")
	start.Flags().BoolVar(&startStage, "stage", false, "run the app's staged version instead of its committed one")

	stop := &cobra.Command{
		Use:   "stop SESSION_ID",
		Short: "Stop a running app session",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			v, err := apps.Call(ctx, "stop", args[0])
			if m, ok := v.(map[string]any); ok && m["stop_pending"] == true {
				// The session's worker is away: the server stops it there
				// when the worker comes back (docs/apps.md).
				fmt.Fprintf(cmd.ErrOrStderr(), "stop pending: %v\n", m["detail"])
			}
			return err
		}),
	}

	var logType string
	var follow bool
	logs := &cobra.Command{
		Use:   "logs SESSION_ID",
		Short: "Print the logs of an app session",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			_, err := streamLogs(ctx, apps, args[0], logType, follow, cmd.OutOrStdout(), cmd.OutOrStdout())
			return err
		}),
	}
	logs.Flags().StringVar(&logType, "type", "", "only entries of this type (stdout, stderr, info, error, …)")
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new entries until the session ends")

	var running bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List installed apps (or running sessions with --running)",
		Args:  cobra.NoArgs,
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, _ []string) error {
			fn := "list_apps"
			if running {
				fn = "list_running"
			}
			v, err := apps.Call(ctx, fn)
			if err != nil {
				return err
			}
			items, _ := v.([]any)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if running {
				fmt.Fprintln(tw, "SESSION\tAPP\tSTATUS")
			} else {
				fmt.Fprintln(tw, "APP\tTYPE\tNAME")
			}
			for _, it := range items {
				m, _ := it.(map[string]any)
				if running {
					fmt.Fprintf(tw, "%v\t%v\t%v\n", m["id"], m["app_id"], m["status"])
				} else {
					id := fmt.Sprint(m["id"])
					if m["staged"] == true {
						id += " (staged)" // only a staged version so far
					}
					fmt.Fprintf(tw, "%v\t%v\t%v\n", id, m["type"], m["name"])
				}
			}
			return tw.Flush()
		}),
	}
	list.Flags().BoolVar(&running, "running", false, "list running sessions instead of installed apps")

	uninstall := &cobra.Command{
		Use:   "uninstall APP_ID",
		Short: "Remove an installed app (an app with a staged version: only that version, as upstream)",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			_, err := apps.Call(ctx, "uninstall", args[0])
			return err
		}),
	}

	workers := &cobra.Command{
		Use:   "workers",
		Short: "List the workers the controller can use",
		Args:  cobra.NoArgs,
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, _ []string) error {
			v, err := apps.Call(ctx, "list_workers")
			if err != nil {
				return err
			}
			items, _ := v.([]any)
			for _, it := range items {
				m, _ := it.(map[string]any)
				types, _ := json.Marshal(m["supported_types"])
				fmt.Fprintf(cmd.OutOrStdout(), "%v\t%s\t%v\n", m["id"], types, m["name"])
			}
			return nil
		}),
	}
	cmd.AddCommand(install, start, stop, logs, list, uninstall, workers)
	cmd.AddCommand(appsEditCommands(withApps)...)   // apps_edit.go
	cmd.AddCommand(appsExecuteCommand(withApps))    // apps_execute.go
	cmd.AddCommand(appsScreenshotCommand(withApps)) // apps_screenshot.go
	return cmd
}

// followWait is how long one get_logs call of a follower waits on the
// server for new entries (a long poll) when it has read everything.
const followWait = 10 * time.Second

// followPage bounds the entries of one get_logs page of a follower.
const followPage = 20000

// streamLogs prints a session's log entries from the start; with follow it
// keeps reading until the session has ended and everything is printed. It
// returns the final status when following ("" otherwise).
//
// Reading is by absolute offset (get_logs's next_offset): no entry is
// skipped or printed twice. A follower asks again at once while entries
// are pending and waits on the server (wait=) only when it has read
// everything; it names itself (follower=), so that a worker with
// back-pressure holds the app's output back rather than drop what this
// follower has not read yet. Entries the retention dropped before they
// were read are reported as one "[warning] N lines were dropped" line.
// With a server that knows neither wait nor follower it falls back to
// polling.
//
// The app's own output (stdout and the seed's "log" entries) goes to out as
// is; every other entry (stderr, info, error, …) goes to diag prefixed with
// its type, so that `hypha run app > file` captures just the app's output.
// A line the worker split (partial) is printed whole again.
func streamLogs(ctx context.Context, apps *rpc.RemoteService, sessionID, typ string, follow bool, out, diag io.Writer) (string, error) {
	bout := bufio.NewWriterSize(out, 64<<10)
	defer bout.Flush()
	flush := func() {
		bout.Flush()
		if f, ok := diag.(interface{ Flush() error }); ok {
			f.Flush()
		}
	}
	var offset int64
	legacy := !follow // plain reads send no follow arguments
	follower := ""
	if follow {
		follower = randomID()
	}
	partial := map[string]bool{} // a diag line is open for this type
	draining, final := false, "" // the session ended: read what is left
	for {
		kw := rpc.Kwargs{"offset": offset}
		if typ != "" {
			kw["type"] = typ
		}
		if !legacy && !draining {
			kw["limit"] = followPage
			kw["wait"] = followWait.Seconds()
			if typ == "" && follower != "" {
				kw["follower"] = follower
			}
		}
		v, err := apps.Call(ctx, "get_logs", sessionID, kw)
		if err != nil && !legacy && !draining && strings.Contains(err.Error(), "unexpected keyword argument") {
			legacy = true // an older server
			continue
		}
		if err != nil && follower != "" && strings.Contains(err.Error(), "follower") && strings.Contains(strings.ToLower(err.Error()), "permission denied") {
			// Holding the app back takes the permission to stop it; a
			// reader follows without (and may then miss lines, told so).
			follower = ""
			continue
		}
		if err != nil {
			flush()
			if ctx.Err() != nil {
				return "", nil
			}
			if draining {
				return final, nil
			}
			if follow {
				if ended, status := sessionEnded(ctx, apps, sessionID); ended {
					return status, nil // the session is gone and took its logs with it
				}
			}
			return "", err
		}
		m, _ := v.(map[string]any)
		items, _ := m["items"].([]any)
		if missed := asInt64(m["missed"]); missed > 0 {
			bout.Flush()
			fmt.Fprintf(diag, "[warning] %d lines were dropped before they were read (the worker keeps the last lines only; offsets %d to %d are gone)\n",
				missed, offset, offset+missed-1)
		}
		for _, it := range items {
			e, _ := it.(map[string]any)
			content, _ := e["content"].(string)
			t, _ := e["type"].(string)
			part, _ := e["partial"].(bool)
			end := "\n"
			if part {
				end = ""
			} else {
				content = strings.TrimRight(content, "\n")
			}
			switch t {
			// A web page's console ("[level] text") is its output, as a
			// process app's stdout is.
			case "stdout", "log", "console", "":
				bout.WriteString(content)
				bout.WriteString(end)
			default:
				bout.Flush()
				if !partial[t] {
					fmt.Fprintf(diag, "[%s] ", t)
				}
				fmt.Fprint(diag, content+end)
				partial[t] = part
			}
		}
		next, ok := m["next_offset"]
		if ok {
			offset = asInt64(next)
		} else {
			offset += int64(len(items))
		}
		total, hasTotal := m["total"]
		pending := hasTotal && offset < asInt64(total) && len(items) > 0
		if pending {
			continue // more is there: no waiting
		}
		if !follow {
			return final, nil
		}
		flush()
		if ctx.Err() != nil {
			return "", nil
		}
		// Caught up: has the session ended? The worker's page says so
		// (after the last entry was written); else ask the controller.
		status, _ := m["status"].(string)
		ended := status == "completed" || status == "failed" || status == "stopped"
		if !ended && (legacy || status == "") {
			ended, status = sessionEnded(ctx, apps, sessionID)
		}
		if ended {
			// One more read without waiting: entries written between this
			// page and the status.
			follow, draining, final = false, true, status
			continue
		}
		if legacy && len(items) == 0 {
			select {
			case <-ctx.Done():
				return "", nil
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// asInt64 reads a decoded wire integer.
func asInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case uint64:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
}

// randomID names one follower.
func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sessionEnded reports whether a session completed, failed or is gone.
func sessionEnded(ctx context.Context, apps *rpc.RemoteService, sessionID string) (bool, string) {
	v, err := apps.Call(ctx, "get_session_info", sessionID)
	if err != nil {
		return true, "stopped"
	}
	m, _ := v.(map[string]any)
	st, _ := m["status"].(string)
	switch st {
	case "completed", "failed", "stopped":
		return true, st
	}
	return false, st
}
