package interop

// Opt-in checks against the real upstream peers (HYPHA_PEERS=1): the real
// Python server (amun-ai/hypha) with this module's Go client, and the real
// Python client (hypha-rpc) with the embedded server. The peers scripts live
// in shared/peers beside the repository; see the README there for the setup
// (a Debian chroot; the scripts need root).
//
//	HYPHA_PEERS=1 go test ./interop/ -run 'Upstream|Python' -v
//
// HYPHA_PEERS_DIR overrides the peers folder (default ../shared/peers from
// the repository's root);
// PEERS_ROOT_TOKEN is the upstream root token, as for start-hypha.sh.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
)

const (
	peersEnv        = "HYPHA_PEERS"
	defaultPeersDir = "../../shared/peers" // from interop/, where the tests run
	// the default of start-hypha.sh (PEERS_ROOT_TOKEN); a test fixture, see peers/README.md
	defaultPeersRootToken = "Pz7kQw3Xv9LmN2bR8tYc4HsJd6FgA1eU5oKi0WqZxTn"
	pyTimeout             = 2 * time.Minute // hard limit of one Python scenario process
	pyServeLife           = 5 * time.Minute
	peersBigSize          = 10 << 20 // the "10 MB payload" of the peers checks
)

// needPeers skips the test unless HYPHA_PEERS=1 and returns the peers folder.
func needPeers(t *testing.T) string {
	t.Helper()
	if os.Getenv(peersEnv) != "1" {
		t.Skipf("skipping: set %s=1 to run the checks against the real upstream server and Python client (%s)", peersEnv, defaultPeersDir)
	}
	dir := os.Getenv("HYPHA_PEERS_DIR")
	if dir == "" {
		dir = defaultPeersDir
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs // the scripts are run from other directories
	}
	for _, f := range []string{"start-hypha.sh", "stop-hypha.sh", "run-py.sh"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s=1 but the peers scripts are missing: %v", peersEnv, err)
		}
	}
	return dir
}

func peersRootToken() string {
	if v := os.Getenv("PEERS_ROOT_TOKEN"); v != "" {
		return v
	}
	return defaultPeersRootToken
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// upstream is a real Hypha server started with start-hypha.sh.
type upstream struct {
	dir  string
	port int
	url  string
	env  []string
	args []string // extra hypha.server arguments
}

func peersLog(port int) string {
	state := os.Getenv("PEERS_HOME")
	if state == "" {
		home, _ := os.UserHomeDir()
		state = filepath.Join(home, ".cache", "hypha-peers")
	}
	run := os.Getenv("PEERS_RUN_DIR")
	if run == "" {
		run = filepath.Join(state, "run")
	}
	return filepath.Join(run, fmt.Sprintf("hypha-%d.log", port))
}

func (u *upstream) logTail() string {
	b, err := os.ReadFile(peersLog(u.port))
	if err != nil {
		return err.Error()
	}
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// startUpstream starts the upstream server on a free port and stops it when
// the test ends.
func startUpstream(t *testing.T, dir string, env ...string) *upstream {
	t.Helper()
	u := &upstream{dir: dir, port: freePort(t), env: env}
	u.url = "http://127.0.0.1:" + strconv.Itoa(u.port)
	t.Cleanup(func() { u.stop(t) })
	u.start(t)
	return u
}

func (u *upstream) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(u.dir, "start-hypha.sh"), append([]string{strconv.Itoa(u.port)}, u.args...)...)
	cmd.Env = append(os.Environ(), u.env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("start-hypha.sh %d: %v\n%s\n----- server log -----\n%s", u.port, err, out, u.logTail())
	}
	t.Logf("upstream server on %s (pid %s) ready in %v", u.url, strings.TrimSpace(string(out)), time.Since(start).Round(time.Millisecond))
}

func (u *upstream) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(u.dir, "stop-hypha.sh"), strconv.Itoa(u.port)).CombinedOutput()
	if err != nil {
		t.Logf("stop-hypha.sh %d: %v\n%s", u.port, err, out)
	}
}

// pyStart starts `run-py.sh testdata/py_peer.py scenario url args`.
func pyStart(t *testing.T, dir, scenario, url string, args map[string]any, serve bool) *proc {
	t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	timeout := pyTimeout
	if serve {
		timeout = pyServeLife
	}
	return startProc(t, "python "+scenario, timeout, serve, ".", filepath.Join(dir, "run-py.sh"),
		testdata(t, "py_peer.py"), scenario, url, mustJSON(args))
}

func pyRun(t *testing.T, dir, scenario, url string, args map[string]any) map[string]any {
	t.Helper()
	return pyStart(t, dir, scenario, url, args, false).mustResult()
}

// ---------------------------------------------------------------------------
// The checks shared by both servers.

// checkGoServesPython: a Go client registers the test service; a Python
// client (anonymous, another workspace) calls every function, passes a
// Python callback, uses keyword arguments and sends 10 MB both ways.
func checkGoServesPython(t *testing.T, dir, url, rootToken string) {
	ctx := ctxTimeout(t, 3*time.Minute)
	goc := goConnect(t, url, rpc.Config{Token: rootToken, ClientID: "go-for-py"})
	var n counters
	sid, err := goc.RegisterService(ctx, goService("go-svc", "public", &n))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "service id", sid, "ws-user-root/go-for-py:go-svc")
	r := pyRun(t, dir, "call", url, map[string]any{
		"service_id": sid,
		"calls": []any{
			map[string]any{"fn": "add", "args": []any{2, 3}},
			map[string]any{"fn": "echo", "args": []any{b64([]byte{0, 1, 2, 255})}},
			map[string]any{"fn": "echo", "args": []any{map[string]any{"a": []any{1, 2.5, nil, "s"}}}},
			map[string]any{"fn": "fail", "args": []any{"boom"}},
			map[string]any{"fn": "ctx_who"},
			map[string]any{"fn": "call_back", "args": []any{map[string]any{"$callback": "py:"}, "x"}},
			map[string]any{"fn": "greet", "kwargs": map[string]any{"name": "py", "greeting": "yo"}},
			map[string]any{"fn": "check_pattern", "args": []any{map[string]any{"$pattern": peersBigSize}}},
			map[string]any{"fn": "echo", "args": []any{map[string]any{"$pattern": peersBigSize}}},
		},
	})
	ws, cid, user := str(r, "workspace"), str(r, "client_id"), str(r, "user")
	expect(t, "service.id", str(r, "service", "id"), sid)
	expect(t, "service.config.workspace", at(r, "service", "config", "workspace"), "ws-user-root")
	res := at(r, "results")
	expect(t, "add", at(res, 0), 5)
	expect(t, "echo bytes", at(res, 1), b64([]byte{0, 1, 2, 255}))
	expect(t, "echo object", at(res, 2), map[string]any{"a": []any{1, 2.5, nil, "s"}})
	expectContains(t, "fail error", str(res, 3, "$error"), "boom")
	expect(t, "ctx_who", at(res, 4), map[string]any{"ws": ws, "from": ws + "/" + cid, "user": user})
	expect(t, "call_back (Go calls the Python callback)", at(res, 5), "py:x")
	expect(t, "greet kwargs", at(res, 6), "yo, py")
	expect(t, "check_pattern 10 MB Python -> Go", at(res, 7), map[string]any{"len": peersBigSize, "ok": true})
	expect(t, "echo 10 MB Python -> Go -> Python", []any{at(res, 8, "$bytes_len"), at(res, 8, "$pattern_ok")}, []any{peersBigSize, true})
	if n.get("call_back") != 1 || n.get("check_pattern") != 1 || n.get("echo") != 3 {
		t.Errorf("Go service call counts = %v", n.n)
	}
}

// checkPythonServesGo: a Python client registers the test service; a Go
// client calls it (callbacks into Go, context, errors) and sends 10 MB both
// ways.
func checkPythonServesGo(t *testing.T, dir, url, rootToken string) {
	ctx := ctxTimeout(t, 3*time.Minute)
	serve := pyStart(t, dir, "serve", url, map[string]any{"client_id": "py-serve-1", "service_id": "py-svc"}, true)
	ready := serve.waitReady()
	sid := str(ready, "service_id")
	if !strings.HasSuffix(sid, "/py-serve-1:py-svc") {
		t.Fatalf("READY service_id = %q", sid)
	}
	goc := goConnect(t, url, rpc.Config{Token: rootToken, ClientID: "go-calls-py"})
	svc, err := goc.GetService(ctx, sid)
	if err != nil {
		t.Fatalf("get Python service: %v%s", err, serve.diag())
	}
	callGoPeerService(t, ctx, goc, svc)
	if v, err := svc.Call(ctx, "greet", rpc.Kwargs{"name": "go", "greeting": "hi"}); err != nil || v != "hi, go" {
		t.Errorf("greet(kwargs) = %v, %v", v, err)
	}
	start := time.Now()
	v, err := svc.Call(ctx, "echo", pattern(peersBigSize))
	if err != nil {
		t.Fatalf("echo 10 MB: %v%s", err, serve.diag())
	}
	if err := checkPatternBytes(v, peersBigSize); err != nil {
		t.Errorf("echo 10 MB Go -> Python -> Go: %v", err)
	}
	t.Logf("10 MB echo Go -> Python -> Go: %v", time.Since(start).Round(time.Millisecond))
	res := serve.mustResult()
	expect(t, "Python serve call counts", res["calls"], map[string]any{
		"add": 1, "echo": 3, "fail": 1, "ctx_who": 1, "call_back": 1, "greet": 1,
	})
}

// checkPythonJoin: generate_token, then a Python client joins the
// workspace; a protected service is refused across workspaces.
func checkPythonJoin(t *testing.T, dir, url, rootToken string) {
	for _, tc := range []struct {
		name string
		args map[string]any
	}{
		{"root", map[string]any{"token": rootToken}},
		{"anonymous", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := pyRun(t, dir, "join", url, tc.args)
			aws := checkJoined(t, r, tc.name == "root")
			expectContains(t, "C refused", str(r, "c_refused"), "Permission denied for non-public service in workspace "+aws)
			expect(t, "C public call", at(r, "c_public"), "pong")
		})
	}
}

// ---------------------------------------------------------------------------

// TestUpstreamGoClient: this module's Go client on the real upstream server.
func TestUpstreamGoClient(t *testing.T) {
	dir := needPeers(t)
	u := startUpstream(t, dir)
	root := peersRootToken()
	t.Run("GoServesPython", func(t *testing.T) { checkGoServesPython(t, dir, u.url, root) })
	t.Run("PythonServesGo", func(t *testing.T) { checkPythonServesGo(t, dir, u.url, root) })
	t.Run("GoServesGo", func(t *testing.T) {
		ctx := ctxTimeout(t, 2*time.Minute)
		a := goConnect(t, u.url, rpc.Config{Token: root, ClientID: "go-a"})
		b := goConnect(t, u.url, rpc.Config{})
		var n counters
		sid, err := a.RegisterService(ctx, goService("go-svc", "public", &n))
		if err != nil {
			t.Fatal(err)
		}
		svc, err := b.GetService(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		callGoPeerService(t, ctx, b, svc)
		// a protected Go service is refused to b (another workspace)
		if _, err := a.RegisterService(ctx, goService("go-prot", "protected", &n)); err != nil {
			t.Fatal(err)
		}
		_, err = b.GetService(ctx, "ws-user-root/go-a:go-prot")
		if err == nil || !strings.Contains(err.Error(), "Permission denied for non-public service in workspace ws-user-root") {
			t.Errorf("protected get_service from another workspace: %v", err)
		}
		// generate_token + join
		tok, err := a.GenerateToken(ctx, rpc.TokenConfig{Workspace: "ws-user-root", Permission: "read_write", ExpiresIn: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c := goConnect(t, u.url, rpc.Config{Token: tok, Workspace: "ws-user-root"})
		p, err := c.GetService(ctx, "go-a:go-prot")
		if err != nil {
			t.Fatal(err)
		}
		if v, err := p.Call(ctx, "add", 40, 2); err != nil || fmt.Sprint(v) != "42" {
			t.Errorf("joined client add = %v, %v", v, err)
		}
	})
	t.Run("Reconnect", func(t *testing.T) {
		ctx := ctxTimeout(t, 4*time.Minute)
		a := goConnect(t, u.url, rpc.Config{Token: root, ClientID: "go-reconnect"})
		reconnected := make(chan struct{}, 4)
		a.OnReconnect(func() { reconnected <- struct{}{} })
		var n counters
		sid, err := a.RegisterService(ctx, goService("go-svc-r", "public", &n))
		if err != nil {
			t.Fatal(err)
		}
		oldManager := a.Info().ManagerID
		u.stop(t)
		start := time.Now()
		u.start(t)
		select {
		case <-reconnected:
			t.Logf("Go client reconnected %v after the restart began (new manager %s, was %s)",
				time.Since(start).Round(time.Millisecond), a.Info().ManagerID, oldManager)
		case <-time.After(3 * time.Minute):
			t.Fatalf("the Go client did not reconnect within 3 minutes\n----- server log -----\n%s", u.logTail())
		}
		if a.Info().ManagerID == oldManager {
			t.Errorf("manager id unchanged (%s): did the server really restart?", oldManager)
		}
		if v, err := a.Echo(ctx, "after restart"); err != nil || v != "after restart" {
			t.Errorf("manager echo after reconnect = %v, %v", v, err)
		}
		// the service was registered again: a Python client calls it
		r := pyRun(t, dir, "call", u.url, map[string]any{
			"service_id": sid,
			"calls":      []any{map[string]any{"fn": "add", "args": []any{20, 22}}, map[string]any{"fn": "ctx_who"}},
		})
		expect(t, "add after reconnect", at(r, "results", 0), 42)
		expect(t, "ctx_who after reconnect", str(r, "results", 1, "ws"), str(r, "workspace"))
		// and the Go client can still call out
		if v, err := a.Echo(ctx, []byte("x")); err != nil || !bytes.Equal(v.([]byte), []byte("x")) {
			t.Errorf("echo bytes after reconnect = %v, %v", v, err)
		}
	})
}

// TestPythonOnOurServer: the real Python client on the embedded server.
func TestPythonOnOurServer(t *testing.T) {
	dir := needPeers(t)
	s := startServer(t)
	url := s.URL()
	t.Run("Connect", func(t *testing.T) {
		r := pyRun(t, dir, "connect", url, map[string]any{"token": testserver.RootToken, "client_id": "py-root"})
		expect(t, "root who", []string{str(r, "workspace"), str(r, "client_id"), str(r, "user"), str(r, "manager_id")},
			[]string{"ws-user-root", "py-root", "root", "manager-" + s.ServerID()})
		expect(t, "manager echo", at(r, "echo"), "hi")
		fns := mustJSON(at(r, "manager_functions"))
		for _, f := range []string{"register_service", "get_service", "list_services", "generate_token"} {
			expectContains(t, "manager functions", fns, `"`+f+`"`)
		}
		r = pyRun(t, dir, "connect", url, nil)
		if ws := str(r, "workspace"); !strings.HasPrefix(ws, "ws-user-anonymouz-") {
			t.Errorf("anonymous workspace = %q", ws)
		}
	})
	t.Run("GoServesPython", func(t *testing.T) { checkGoServesPython(t, dir, url, testserver.RootToken) })
	t.Run("PythonServesGo", func(t *testing.T) { checkPythonServesGo(t, dir, url, testserver.RootToken) })
	t.Run("TwoPython", func(t *testing.T) {
		serve := pyStart(t, dir, "serve", url, map[string]any{"service_id": "py-svc"}, true)
		sid := str(serve.waitReady(), "service_id")
		r := pyRun(t, dir, "call", url, map[string]any{
			"service_id": sid,
			"calls": []any{
				map[string]any{"fn": "add", "args": []any{2, 3}},
				map[string]any{"fn": "echo", "args": []any{b64([]byte{9, 8, 7})}},
				map[string]any{"fn": "fail", "args": []any{"py boom"}},
				map[string]any{"fn": "ctx_who"},
				map[string]any{"fn": "call_back", "args": []any{map[string]any{"$callback": "cb:"}, "y"}},
				map[string]any{"fn": "greet", "kwargs": map[string]any{"name": "b"}},
			},
		})
		res := at(r, "results")
		expect(t, "add", at(res, 0), 5)
		expect(t, "echo bytes", at(res, 1), b64([]byte{9, 8, 7}))
		expectContains(t, "fail", str(res, 2, "$error"), "py boom")
		ws := str(r, "workspace")
		expect(t, "ctx_who", at(res, 3), map[string]any{"ws": ws, "from": ws + "/" + str(r, "client_id"), "user": str(r, "user")})
		expect(t, "call_back", at(res, 4), "cb:y")
		expect(t, "greet", at(res, 5), "hello, b")
		serve.mustResult()
	})
	t.Run("TokenJoin", func(t *testing.T) { checkPythonJoin(t, dir, url, testserver.RootToken) })
	t.Run("Generators", func(t *testing.T) {
		checkPeerReadsGoGenerators(t, url, func(args map[string]any) map[string]any {
			return pyRun(t, dir, "generators", url, args)
		})
		serve := pyStart(t, dir, "serve", url, map[string]any{"service_id": "py-gen"}, true)
		checkGoReadsPeerGenerators(t, url, serve, str(serve.waitReady(), "service_id"))
	})
}

// TestUpstreamPythonJoin runs the same join scenario on the upstream server
// (the reference for TestPythonOnOurServer/TokenJoin).
func TestUpstreamPythonJoin(t *testing.T) {
	dir := needPeers(t)
	if testing.Short() {
		t.Skip("short mode")
	}
	u := startUpstream(t, dir)
	checkPythonJoin(t, dir, u.url, peersRootToken())
}

// TestUpstreamJS runs the JS checks of js_test.go against the upstream
// server: it keeps interop/js/scenario.mjs and the expectations of the JS
// tests honest (they must hold for the reference server too) and covers the
// Go client <-> JS client pairs on the upstream server.
func TestUpstreamJS(t *testing.T) {
	dir := needPeers(t)
	needJS(t)
	u := startUpstream(t, dir)
	root := peersRootToken()
	t.Run("JSServesGoCalls", func(t *testing.T) { checkJSServesGo(t, u.url, root) })
	t.Run("JSCallsGoService", func(t *testing.T) { checkJSCallsGo(t, u.url, root) })
	t.Run("TwoClients", func(t *testing.T) { checkJSTwoClients(t, u.url) })
	t.Run("TokenThenJoin", func(t *testing.T) { checkJSTokenThenJoin(t, u.url, root) })
	t.Run("ProtectedRefused", func(t *testing.T) { checkJSProtectedRefused(t, u.url, root) })
}
