package interop

// The real hypha-rpc JavaScript client (npm hypha-rpc, pinned in
// interop/js/package-lock.json) against the embedded server.
//
// Needs node (>= 18) and interop/js/node_modules; the first test runs
// `npm ci` there when node_modules is missing. Without node (or when npm ci
// fails) the tests skip, except in CI (CI=true) where they fail.

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

const (
	jsTimeout   = 90 * time.Second // hard limit of one scenario process
	jsServeLife = 3 * time.Minute  // hard limit of a serve process
	bigSize     = 5 << 20          // the "5 MB payload" of the JS checks
)

var jsSetup struct {
	once sync.Once
	dir  string // absolute path of interop/js
	node string
	err  error // why the JS tests cannot run
}

// needJS returns the node binary and the interop/js directory, running
// `npm ci` once if node_modules is missing. It skips the test when node or
// the packages are unavailable, or fails it when CI=true.
func needJS(t *testing.T) (node, dir string) {
	t.Helper()
	jsSetup.once.Do(func() {
		jsSetup.dir, jsSetup.err = filepath.Abs("js")
		if jsSetup.err != nil {
			return
		}
		if jsSetup.node, jsSetup.err = exec.LookPath("node"); jsSetup.err != nil {
			jsSetup.err = fmt.Errorf("node is not installed (not in PATH): %w", jsSetup.err)
			return
		}
		if jsModulesPresent(jsSetup.dir) {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			jsSetup.err = fmt.Errorf("%s/node_modules is missing and npm is not in PATH to install it", jsSetup.dir)
			return
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = jsSetup.dir
		done := make(chan struct{})
		var out []byte
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			_ = cmd.Process.Kill()
			<-done
			err = fmt.Errorf("timed out after 5 minutes")
		}
		if err != nil {
			jsSetup.err = fmt.Errorf("npm ci in %s failed: %v\n%s", jsSetup.dir, err, out)
			return
		}
		if !jsModulesPresent(jsSetup.dir) {
			jsSetup.err = fmt.Errorf("npm ci in %s did not install hypha-rpc and ws", jsSetup.dir)
		}
	})
	if jsSetup.err != nil {
		if isCI() {
			t.Fatalf("JS interop tests cannot run (CI=true, so this is a failure): %v", jsSetup.err)
		}
		t.Skipf("skipping JS interop test: %v (install Node.js >= 18 and run `npm ci` in interop/js)", jsSetup.err)
	}
	return jsSetup.node, jsSetup.dir
}

func jsModulesPresent(dir string) bool {
	for _, p := range []string{"node_modules/hypha-rpc/package.json", "node_modules/ws/package.json",
		"node_modules/@modelcontextprotocol/sdk/package.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return false
		}
	}
	return true
}

// jsStart starts `node scenario.mjs name url args`.
func jsStart(t *testing.T, name, url string, args map[string]any, serve bool) *proc {
	t.Helper()
	node, dir := needJS(t)
	if args == nil {
		args = map[string]any{}
	}
	timeout := jsTimeout
	if serve {
		timeout = jsServeLife
	}
	return startProc(t, "js "+name, timeout, serve, dir, node, "scenario.mjs", name, url, mustJSON(args))
}

// jsRun runs a scenario to its end and returns its RESULT (failing on ERROR).
func jsRun(t *testing.T, name, url string, args map[string]any) map[string]any {
	t.Helper()
	return jsStart(t, name, url, args, false).mustResult()
}

// jsServe starts the serve scenario and waits for READY.
func jsServe(t *testing.T, url string, args map[string]any) (*proc, map[string]any) {
	t.Helper()
	p := jsStart(t, "serve", url, args, true)
	return p, p.waitReady()
}

func startServer(t *testing.T) *server.Server {
	t.Helper()
	return testserver.Start(t, server.Config{})
}

func b64(b []byte) map[string]any {
	return map[string]any{"$bytes_b64": base64.StdEncoding.EncodeToString(b)}
}

// TestJSConnect: the JS client connects anonymously and with the root token
// and sees the manager's functions.
func TestJSConnect(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	r := jsRun(t, "connect", s.URL(), nil)
	if ws := str(r, "workspace"); !strings.HasPrefix(ws, "ws-user-anonymouz-") {
		t.Errorf("anonymous workspace = %q", ws)
	}
	expect(t, "manager_id", str(r, "manager_id"), "manager-"+s.ServerID())
	fns := mustJSON(r["manager_functions"])
	for _, f := range []string{"registerService", "getService", "listServices", "generateToken", "echo", "subscribe"} {
		expectContains(t, "manager functions", fns, `"`+f+`"`)
	}
	r = jsRun(t, "connect", s.URL(), map[string]any{"token": testserver.RootToken, "client_id": "js-root"})
	expect(t, "root who", []string{str(r, "workspace"), str(r, "client_id"), str(r, "user")},
		[]string{"ws-user-root", "js-root", "root"})
}

// TestJSServesGoCalls: a JS client registers the test service; a Go client
// calls add, echo (bytes, objects), fail, ctx_who (require_context) and
// call_back with a Go func, and sends a 5 MB payload through echo.
func TestJSServesGoCalls(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	checkJSServesGo(t, s.URL(), testserver.RootToken)
}

func checkJSServesGo(t *testing.T, url, rootToken string) {
	ctx := ctxTimeout(t, 2*time.Minute)
	serve, ready := jsServe(t, url, map[string]any{"client_id": "js-serve-1", "service_id": "js-svc"})
	sid := str(ready, "service_id")
	if !strings.HasSuffix(sid, "/js-serve-1:js-svc") || !strings.HasPrefix(sid, "ws-user-anonymouz-") {
		t.Fatalf("READY service_id = %q", sid)
	}
	// a Go client in another workspace (root) calls the public JS service
	goc := goConnect(t, url, rpc.Config{Token: rootToken, ClientID: "go-caller"})
	svc, err := goc.GetService(ctx, sid)
	if err != nil {
		t.Fatalf("get JS service: %v%s", err, serve.diag())
	}
	expect(t, "service config.require_context", svc.Config["require_context"], true)
	expect(t, "service config.workspace", svc.Config["workspace"], str(ready, "workspace"))
	callGoPeerService(t, ctx, goc, svc)

	// an error with its message
	_, err = svc.Call(ctx, "fail", "js says no")
	if err == nil || !strings.Contains(err.Error(), "js says no") {
		t.Errorf("fail error = %v", err)
	}

	// 5 MB both ways (Go -> JS argument, JS -> Go result)
	start := time.Now()
	v, err := svc.Call(ctx, "echo", pattern(bigSize))
	if err != nil {
		t.Fatalf("echo 5 MB: %v%s", err, serve.diag())
	}
	if err := checkPatternBytes(v, bigSize); err != nil {
		t.Errorf("echo 5 MB: %v", err)
	}
	t.Logf("5 MB echo Go -> JS -> Go: %v", time.Since(start).Round(time.Millisecond))

	// an anonymous Go client in a third workspace sees the JS caller context of its own
	anon := goConnect(t, url, rpc.Config{})
	svc2, err := anon.GetService(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	var who map[string]any
	if err := svc2.CallInto(ctx, &who, "ctx_who"); err != nil {
		t.Fatal(err)
	}
	ai := anon.Info()
	expect(t, "anonymous ctx_who", who, map[string]any{"ws": ai.Workspace, "from": ai.Workspace + "/" + ai.ClientID, "user": ai.User.ID})

	res := serve.mustResult()
	expect(t, "JS serve call counts", res["calls"], map[string]any{
		"add": 1, "echo": 3, "fail": 2, "ctx_who": 2, "call_back": 1,
	})
}

// TestJSCallsGoService: a Go client registers the test service; the JS client
// calls it (add, echo bytes, echo object, an error, ctx_who, a JS callback,
// keyword arguments), calls back into JS (callback_to_go) and echoes 5 MB.
func TestJSCallsGoService(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	checkJSCallsGo(t, s.URL(), testserver.RootToken)
}

func checkJSCallsGo(t *testing.T, url, rootToken string) {
	ctx := ctxTimeout(t, 2*time.Minute)
	goc := goConnect(t, url, rpc.Config{Token: rootToken, ClientID: "go-svc-client"})
	var n counters
	sid, err := goc.RegisterService(ctx, goService("go-svc", "public", &n))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "service id", sid, "ws-user-root/go-svc-client:go-svc")

	r := jsRun(t, "call", url, map[string]any{
		"service_id": sid,
		"calls": []any{
			map[string]any{"fn": "add", "args": []any{2, 3}},
			map[string]any{"fn": "echo", "args": []any{b64([]byte{0, 1, 2, 255})}},
			map[string]any{"fn": "echo", "args": []any{map[string]any{"a": []any{1, 2.5, nil, "s"}}}},
			map[string]any{"fn": "fail", "args": []any{"boom"}},
			map[string]any{"fn": "ctx_who"},
			map[string]any{"fn": "call_back", "args": []any{map[string]any{"$callback": "cb:"}, "x"}},
			map[string]any{"fn": "greet", "kwargs": map[string]any{"name": "js", "greeting": "yo"}},
			map[string]any{"fn": "add", "kwargs": map[string]any{}, "args": []any{5, 6}},
			map[string]any{"fn": "add", "kwargs": map[string]any{"b": 2, "a": 40}},
			map[string]any{"fn": "greet", "kwargs": map[string]any{"greeting": "yo"}},
			map[string]any{"fn": "add", "args": []any{1}},
		},
	})
	ws, cid, user := str(r, "workspace"), str(r, "client_id"), str(r, "user")
	expect(t, "service.id", str(r, "service", "id"), sid)
	expect(t, "service.config.visibility", at(r, "service", "config", "visibility"), "public")
	expect(t, "service.config.workspace", at(r, "service", "config", "workspace"), "ws-user-root")
	expectContains(t, "service.functions", mustJSON(at(r, "service", "functions")), `"check_pattern"`)
	res := at(r, "results")
	expect(t, "add", at(res, 0), 5)
	expect(t, "echo bytes", at(res, 1), b64([]byte{0, 1, 2, 255}))
	expect(t, "echo object", at(res, 2), map[string]any{"a": []any{1, 2.5, nil, "s"}})
	expectContains(t, "fail error", str(res, 3, "$error"), "boom")
	expect(t, "ctx_who", at(res, 4), map[string]any{"ws": ws, "from": ws + "/" + cid, "user": user})
	expect(t, "call_back", at(res, 5), "cb:x")
	expect(t, "greet kwargs", at(res, 6), "yo, js")
	expect(t, "add with empty kwargs", at(res, 7), 11)
	expect(t, "add by name (_rkwargs)", at(res, 8), 42)
	expectContains(t, "greet without its name", str(res, 9, "$error"), `TypeError: greet: missing argument "name"`)
	expectContains(t, "add with one argument", str(res, 10, "$error"), `missing argument "b"`)

	// Go calls a JS callback passed as an argument
	r = jsRun(t, "callback_to_go", url, map[string]any{"service_id": sid})
	expect(t, "callback_to_go result", at(r, "result"), "js:hello")
	expect(t, "callback_to_go callback_calls", at(r, "callback_calls"), 1)

	// 5 MB JS -> Go -> JS
	r = jsRun(t, "big", url, map[string]any{"service_id": sid, "size": bigSize})
	expect(t, "big equal", at(r, "equal"), true)
	expect(t, "big recv_size", at(r, "recv_size"), bigSize)
	t.Logf("5 MB echo JS -> Go -> JS: %v ms", at(r, "ms"))

	if n.get("call_back") != 2 || n.get("greet") != 1 || n.get("fail") != 1 || n.get("echo") != 3 || n.get("add") != 3 {
		t.Errorf("Go service call counts = %v", n.n)
	}
}

// TestJSTwoClients: two JS clients talk through our server (all functions of
// the JS test service, callbacks, errors, context), then 5 MB between them.
func TestJSTwoClients(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	checkJSTwoClients(t, s.URL())
}

func checkJSTwoClients(t *testing.T, url string) {
	r := jsRun(t, "two_js", url, nil)
	res := at(r, "results")
	expect(t, "add", at(res, "add"), 5)
	expect(t, "echo_bytes_equal", at(res, "echo_bytes_equal"), true)
	expect(t, "echo_obj", at(res, "echo_obj"), map[string]any{"s": "x", "n": 1.5, "l": []any{1, nil, true}})
	expect(t, "call_back", at(res, "call_back"), "js:ping")
	expect(t, "fail summary", str(res, "fail", "$summary"), "Error: boom")
	bws := str(r, "b", "workspace")
	expect(t, "ctx_who", at(res, "ctx_who"), map[string]any{
		"ws": bws, "from": bws + "/" + str(r, "b", "client_id"), "user": str(r, "b", "user"),
	})
	if str(r, "a", "workspace") == bws {
		t.Errorf("A and B share workspace %s; want two anonymous workspaces", bws)
	}
	expect(t, "served", at(r, "served"), map[string]any{"add": 1, "echo": 2, "call_back": 1, "fail": 1, "ctx_who": 1})

	r = jsRun(t, "big", url, map[string]any{"size": bigSize})
	expect(t, "big JS <-> JS equal", at(r, "equal"), true)
	t.Logf("5 MB echo JS -> JS -> JS: %v ms", at(r, "ms"))
}

// TestJSTokenThenJoin: generate_token, then a second JS client joins that
// workspace with the token and uses a protected service by its short id.
func TestJSTokenThenJoin(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	checkJSTokenThenJoin(t, s.URL(), testserver.RootToken)
}

func checkJSTokenThenJoin(t *testing.T, url, rootToken string) {
	for _, tc := range []struct {
		name string
		args map[string]any
	}{
		{"root", map[string]any{"token": rootToken}},
		{"anonymous", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := jsRun(t, "token_then_join", url, tc.args)
			aws := checkJoined(t, r, tc.name == "root")
			if p := at(r, "b_user_scope", "workspaces", aws); p != "rw" && p != "a" {
				t.Errorf("B scope on %s = %v, want rw or a", aws, p)
			}
		})
	}
}

// TestJSProtectedRefused: a protected service is refused to a client of
// another workspace (JS service / JS caller, and Go service / JS caller),
// while the same caller may use a public one.
func TestJSProtectedRefused(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	checkJSProtectedRefused(t, s.URL(), testserver.RootToken)
}

func checkJSProtectedRefused(t *testing.T, url, rootToken string) {
	r := jsRun(t, "protected_refused", url, nil)
	expect(t, "refused", at(r, "refused"), true)
	checkProtectedError(t, str(r, "error_summary"), str(r, "service_id"))

	ctx := ctxTimeout(t, time.Minute)
	goc := goConnect(t, url, rpc.Config{Token: rootToken, ClientID: "go-prot"})
	var n counters
	sid, err := goc.RegisterService(ctx, goService("go-protected", "protected", &n))
	if err != nil {
		t.Fatal(err)
	}
	r = jsRun(t, "protected_refused", url, map[string]any{"service_id": sid})
	checkProtectedError(t, str(r, "error_summary"), sid)

	// the same Go service is usable from its own workspace (a token-joined JS client)
	tok, err := goc.GenerateToken(ctx, rpc.TokenConfig{Workspace: "ws-user-root", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	r = jsRun(t, "call", url, map[string]any{
		"token": tok, "workspace": "ws-user-root", "service_id": "go-prot:go-protected",
		"calls": []any{map[string]any{"fn": "add", "args": []any{20, 22}}},
	})
	expect(t, "protected add from own workspace", at(r, "results", 0), 42)

	// and a JS call of a missing service fails with ERROR
	p := jsStart(t, "call", url, map[string]any{"service_id": "ws-user-root/go-prot:nosuch"}, false)
	if _, e := p.finish(); !strings.Contains(e, "not found") {
		t.Errorf("missing service: ERROR %q, want it to contain \"not found\"", e)
	}
}

// checkProtectedError accepts upstream's wording ("Permission denied for
// non-public service in workspace <ws>").
func checkProtectedError(t *testing.T, summary, sid string) {
	t.Helper()
	ws, _, _ := strings.Cut(sid, "/")
	expectContains(t, "protected refusal", summary, "Permission denied for non-public service in workspace "+ws)
}
