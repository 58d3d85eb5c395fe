package interop

// The seed's workers on our server: workers written in the seed's styles
// (interop/js/workers: plain functions, and a class with bound methods;
// opt-in, a Python worker on upstream's BaseWorker) register with the real
// hypha-rpc clients as server-app-worker services for their own app type,
// and our apps controller installs, starts, lists, reads the logs of and
// stops apps through them. docs/compatibility.md records the results.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
)

// seedWorker is a running seed-style worker process.
type seedWorker struct {
	p         *proc
	serviceID string
	appType   string
	// stamped: the worker declares require_context, so the context it
	// sees is the one its rpc client stamps (it has a "from"); else it is
	// the explicit {ws, user} the controller passes last.
	stamped bool
}

// startJSWorker starts interop/js/workers/<script> with the root token.
func startJSWorker(t *testing.T, url, script, appType, serviceID string, stamped bool) *seedWorker {
	t.Helper()
	node, dir := needJS(t)
	args := map[string]any{"token": testserver.RootToken, "service_id": serviceID,
		"supported_types": []string{appType}, "visibility": "protected"}
	p := startProc(t, "js "+script, jsServeLife, true, dir, node, filepath.Join("workers", script), url, mustJSON(args))
	ready := p.waitReady()
	return &seedWorker{p: p, serviceID: str(ready, "service_id"), appType: appType, stamped: stamped}
}

// TestJSSeedWorkers: the seed's two JavaScript styles, written fresh with the
// npm hypha-rpc client, serve our controller: install (with its trial
// start), start with progress, list_running, get_logs (whole, by type,
// paged), stop, uninstall. Each worker function gets its arguments where the
// seed's signature expects them (before the fix, start got undefined).
func TestJSSeedWorkers(t *testing.T) {
	t.Parallel()
	needJS(t)
	url := ourTarget(t).url
	for _, tc := range []struct {
		name, script, appType string
		stamped               bool
	}{
		{"function", "function-worker.cjs", "seed-js", false},
		{"class", "class-worker.cjs", "seed-js-class", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := startJSWorker(t, url, tc.script, tc.appType, "seed-"+tc.name+"-worker", tc.stamped)
			driveSeedWorker(t, url, testserver.RootToken, w)
		})
	}
}

// driveSeedWorker runs one app of w's type through the apps controller of
// the server at url (as root, in root's workspace, where w is registered)
// and then checks the calls w received.
func driveSeedWorker(t *testing.T, url, rootToken string, w *seedWorker) {
	t.Helper()
	ctx := ctxTimeout(t, 3*time.Minute)
	root := goConnect(t, url, rpc.Config{Token: rootToken, ClientID: "seed-driver-" + w.appType})
	ws := root.Info().Workspace
	if !strings.HasPrefix(w.serviceID, ws+"/") {
		t.Fatalf("worker registered as %q, want it in %s", w.serviceID, ws)
	}
	apps, err := root.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	// The worker is listed for its type.
	workers, err := apps.Call(ctx, "list_workers")
	if err != nil {
		t.Fatalf("list_workers: %v%s", err, w.p.diag())
	}
	if !strings.Contains(mustJSON(workers), w.serviceID) {
		t.Errorf("list_workers does not list %s: %s", w.serviceID, mustJSON(workers))
	}

	appID := "seed-app-" + w.appType
	lines := "hello from the seed app\nstderr: a warning\nsecond line"
	info, err := apps.Call(ctx, "install", rpc.Kwargs{
		"manifest": map[string]any{"name": "Seed App", "type": w.appType, "version": "0.1.0", "entry_point": "main.txt"},
		"files":    []any{map[string]any{"name": "main.txt", "content": lines, "format": "text"}},
		"app_id":   appID, "wait_for_service": false, "overwrite": true,
	})
	if err != nil {
		t.Fatalf("install: %v%s", err, w.p.diag())
	}
	expect(t, "installed app id", str(info, "id"), appID)

	var mu sync.Mutex
	var progress []string
	rec, err := apps.Call(ctx, "start", appID, rpc.Kwargs{"wait_for_service": false,
		"progress_callback": func(m map[string]any) {
			mu.Lock()
			progress = append(progress, fmt.Sprint(m["message"]))
			mu.Unlock()
		}})
	if err != nil {
		t.Fatalf("start: %v%s", err, w.p.diag())
	}
	sid := str(rec, "id")
	expect(t, "session workspace", str(rec, "workspace"), ws)
	expect(t, "session worker", str(rec, "worker_id"), w.serviceID)
	mu.Lock()
	expectContains(t, "progress", strings.Join(progress, "\n"), "worker started "+sid)
	mu.Unlock()

	running, err := apps.Call(ctx, "list_running")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sessionIDs(running), sid) {
		t.Errorf("list_running = %s, want %s in it", mustJSON(running), sid)
	}
	si, err := apps.Call(ctx, "get_session_info", sid)
	if err != nil {
		t.Fatalf("get_session_info: %v", err)
	}
	expect(t, "status", str(si, "status"), "running")

	// The logs: whole, one type, a page.
	logs, err := apps.Call(ctx, "get_logs", sid)
	if err != nil {
		t.Fatalf("get_logs: %v%s", err, w.p.diag())
	}
	expect(t, "log lines", logContents(logs), []string{"stdout:context: " + ws, "stdout:hello from the seed app",
		"stderr:a warning", "stdout:second line"})
	logs, err = apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "stderr"})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "stderr lines", logContents(logs), []string{"stderr:a warning"})
	logs, err = apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 1, "limit": 1})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "page (offset 1, limit 1)", logContents(logs), []string{"stdout:hello from the seed app"})

	// Following (hypha run, apps logs -f): the worker knows no wait or
	// follower, so the controller reads plainly and polls until entries
	// come or the wait ends.
	logs, err = apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 0, "limit": 100, "wait": 5, "follower": "f1"})
	if err != nil {
		t.Fatalf("get_logs following: %v%s", err, w.p.diag())
	}
	if n := len(logContents(logs)); n != 4 {
		t.Errorf("get_logs following from 0 = %s, want the 4 entries", mustJSON(logs))
	}
	t0 := time.Now()
	logs, err = apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 4, "wait": 1, "follower": "f1"})
	if err != nil {
		t.Fatalf("get_logs following at the end: %v%s", err, w.p.diag())
	}
	if n := len(logContents(logs)); n != 0 || time.Since(t0) < 900*time.Millisecond {
		t.Errorf("get_logs following at the end = %s after %v, want nothing after about 1 s", mustJSON(logs), time.Since(t0))
	}

	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatalf("stop: %v%s", err, w.p.diag())
	}
	running, err = apps.Call(ctx, "list_running")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(sessionIDs(running), sid) {
		t.Errorf("list_running after stop still has %s", sid)
	}
	if _, err := apps.Call(ctx, "uninstall", appID); err != nil {
		t.Fatalf("uninstall: %v", err)
	}

	// What the worker received: install's trial start and stop, then ours.
	r := w.p.mustResult()
	calls, _ := r["calls"].([]any)
	byFn := map[string][]map[string]any{}
	for _, c := range calls {
		m, _ := c.(map[string]any)
		byFn[str(m, "fn")] = append(byFn[str(m, "fn")], m)
	}
	if n := len(byFn["start"]); n != 2 {
		t.Errorf("the worker saw %d starts, want 2 (install's trial and start): %s", n, mustJSON(calls))
	}
	if n := len(byFn["stop"]); n != 2 {
		t.Errorf("the worker saw %d stops, want 2: %s", n, mustJSON(calls))
	}
	for fn, list := range byFn {
		for _, c := range list {
			ctxv, _ := c["context"].(map[string]any)
			if ctxv == nil || ctxv["ws"] != ws {
				t.Errorf("%s got context %v, want one for workspace %s", fn, c["context"], ws)
			}
			if hasFrom := ctxv != nil && ctxv["from"] != nil; hasFrom != w.stamped {
				t.Errorf("%s got context %v: stamped by the worker's rpc = %v, want %v", fn, ctxv, hasFrom, w.stamped)
			}
			switch fn {
			case "start":
				if !strings.HasPrefix(str(c, "arg0", "id"), ws+"/_rapp_") {
					t.Errorf("start got config %v, want the start config", c["arg0"])
				}
			case "stop", "get_logs", "get_session_info":
				if a0, _ := c["arg0"].(string); !strings.HasPrefix(a0, ws+"/_rapp_") {
					t.Errorf("%s got session id %v", fn, c["arg0"])
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("worker calls: %s%s", mustJSON(calls), w.p.diag())
	}
}

func sessionIDs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		out = append(out, str(e, "id"))
	}
	return out
}

// logContents lists "type:content" of a get_logs page.
func logContents(v any) []string {
	var out []string
	items, _ := at(v, "items").([]any)
	for _, it := range items {
		out = append(out, str(it, "type")+":"+str(it, "content"))
	}
	return out
}

// TestPythonSeedBaseWorker (opt-in, HYPHA_PEERS=1): a worker on upstream's
// BaseWorker (interop/testdata/seed_base_worker.py, run with the real Python
// hypha-rpc client and upstream's hypha package) serves our controller the
// same way, with require_context (the context comes from its rpc client as
// the keyword context) and without (the controller's context arrives as the
// last positional argument).
func TestPythonSeedBaseWorker(t *testing.T) {
	dir := needPeers(t)
	t.Parallel()
	url := ourTarget(t).url
	for _, rc := range []bool{true, false} {
		name := map[bool]string{true: "require_context", false: "no_context"}[rc]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			appType := "seed-py-" + strings.ReplaceAll(name, "_", "-")
			args := map[string]any{"token": testserver.RootToken, "service_id": "seed-py-" + name,
				"supported_types": []string{appType}, "require_context": rc}
			p := startProc(t, "python BaseWorker "+name, pyServeLife, true, ".", filepath.Join(dir, "run-py.sh"),
				testdata(t, "seed_base_worker.py"), url, mustJSON(args))
			ready := p.waitReady()
			driveSeedWorker(t, url, testserver.RootToken, &seedWorker{p: p, serviceID: str(ready, "service_id"), appType: appType, stamped: rc})
		})
	}
}

// TestDocWorkerExamples: the JavaScript and Python worker examples of
// docs/workers.md, run as written (Python only with HYPHA_PEERS=1), serve an
// app through our controller.
func TestDocWorkerExamples(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "workers.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := func(heading, lang string) string {
		_, rest, ok := strings.Cut(string(doc), heading)
		if !ok {
			t.Fatalf("docs/workers.md has no %q", heading)
		}
		_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
		if !ok {
			t.Fatalf("docs/workers.md: no %s block after %q", lang, heading)
		}
		code, _, _ := strings.Cut(rest, "```")
		return code
	}
	url := ourTarget(t).url
	t.Run("javascript", func(t *testing.T) {
		t.Parallel()
		node, dir := needJS(t)
		file := filepath.Join(t.TempDir(), "my-worker.cjs")
		if err := os.WriteFile(file, []byte(block("### JavaScript", "js")), 0o644); err != nil {
			t.Fatal(err)
		}
		// (a file outside interop/js finds the packages through NODE_PATH)
		p := startProc(t, "doc JS worker", jsServeLife, true, dir, "env", "HYPHA_TOKEN="+testserver.RootToken,
			"NODE_PATH="+filepath.Join(dir, "node_modules"), node, file, url)
		runDocWorker(t, p, url, "my-js-type")
	})
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		dir := needPeers(t)
		file := filepath.Join(t.TempDir(), "my_worker.py")
		if err := os.WriteFile(file, []byte(block("### Python", "python")), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, "doc Python worker", pyServeLife, true, ".", filepath.Join(dir, "run-py.sh"), file, url, testserver.RootToken)
		runDocWorker(t, p, url, "my-py-type")
	})
}

// runDocWorker waits for a worker of appType in root's workspace, then
// installs, starts, reads the logs of and stops an app of that type.
func runDocWorker(t *testing.T, p *proc, url, appType string) {
	ctx := ctxTimeout(t, 2*time.Minute)
	root := goConnect(t, url, rpc.Config{Token: testserver.RootToken, ClientID: "doc-driver-" + appType})
	apps, err := root.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	for {
		ws, err := apps.Call(ctx, "list_workers")
		if err != nil {
			t.Fatalf("list_workers: %v", err)
		}
		if strings.Contains(mustJSON(ws), appType) {
			break
		}
		select {
		case <-ctx.Done():
			p.fatalf("no worker for %s registered", appType)
		case <-p.exited:
			p.fatalf("the worker exited (%v)", p.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	appID := "doc-" + appType
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"manifest": map[string]any{"name": "Doc App", "type": appType, "version": "0.1.0", "entry_point": "main.txt"},
		"files":    []any{map[string]any{"name": "main.txt", "content": "one\ntwo", "format": "text"}},
		"app_id":   appID, "wait_for_service": false, "overwrite": true,
	}); err != nil {
		t.Fatalf("install: %v", err)
	}
	rec, err := apps.Call(ctx, "start", appID, rpc.Kwargs{"wait_for_service": false})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := str(rec, "id")
	logs, err := apps.Call(ctx, "get_logs", sid)
	if err != nil {
		t.Fatalf("get_logs: %v", err)
	}
	expect(t, "logs", logContents(logs), []string{"stdout:one", "stdout:two"})
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
