// Package workertest is a conformance suite for server-app workers: any
// worker.Worker, built in or written by a third party, runs it from a Go
// test with
//
//	func TestConformance(t *testing.T) {
//		workertest.Run(t, workertest.Options{
//			New:   func(t testing.TB) worker.Worker { return myworker.New() },
//			Serve: workertest.App{Type: "my-type", EntryPoint: "main.x", Files: ...},
//		})
//	}
//
// The suite drives the worker the way a Hypha server does, over real
// websockets: it starts this module's server on a free loopback port,
// registers the worker through the real adapter (worker/hyphaworker) as a
// root client of the public workspace (as the embedded server registers
// its built-in workers), calls it as the apps controller does (root in
// public, with the end user's workspace in the context argument), serves
// the app's files over HTTP at config.app_files_base_url, and checks:
//
//   - registration: type server-app-worker, the app type among
//     supported_types, every worker function present;
//   - status transitions: start returns the session id once the session
//     runs (listed, status running); an app that ends by itself becomes
//     completed (exit code 0) or failed; a stopped session is gone;
//   - stop is idempotent: twice, concurrently, or on an unknown id;
//   - workspace isolation: clients of other workspaces are refused by
//     every function and see nothing of the session, which keeps running;
//     the controller's listing of another workspace does not show it;
//   - log paging: get_logs with type, offset and limit pages through the
//     app's numbered stdout lines in order, with total and next_offset;
//   - progress: start reports through progress_callback;
//   - close_workspace stops the workspace's sessions and no other;
//   - no leaks: after the worker is shut down and unregistered and the
//     server closed, no goroutine started during the suite is left, and
//     (Linux) no process the suite's sessions started.
//
// The suite starts the server itself rather than taking a server URL and
// token: isolation needs what only the server's owner has (the root token,
// fresh workspaces for several users, the controller's identity). The
// server is this module's own (package server, which the suite imports), so
// a worker of another module runs the suite with nothing else installed.
//
// Run starts processes and goroutines and checks that they are gone at
// the end: do not run it in parallel with other tests of the same binary.
package workertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"go.uber.org/goleak"
)

// App is an app the suite starts: its manifest type and entry point, and
// the files served at config.app_files_base_url (the entry point among
// them, at "<base>/<path>"; every request must carry the session's token
// as a bearer token, which the suite checks).
type App struct {
	Type       string
	EntryPoint string
	Files      map[string]string
	// Manifest holds extra manifest keys (type, entry_point and name are
	// set by the suite).
	Manifest map[string]any
}

// Options configures Run. New and Serve are required.
type Options struct {
	// New returns the worker under test. It is called once; the suite
	// registers it, and shuts it down through the adapter at the end.
	New func(t testing.TB) worker.Worker
	// Serve prints the lines "line 1" to "line N" (N = Lines) on stdout,
	// one per line and in order, then runs until it is stopped.
	Serve App
	// Lines is how many numbered lines Serve prints (default 30; at
	// least 10).
	Lines int
	// Complete, when set, ends by itself with success (exit code 0);
	// Fail, when set, ends by itself with a failure.
	Complete, Fail *App
	// Timeout bounds every wait of the suite (default 60 s).
	Timeout time.Duration
	// LogType is the log type in which Serve's numbered lines appear
	// (default stdout), and LinePrefix what precedes "line N" in each entry
	// (the browser worker logs console.log("line 1") as "[log] line 1" of
	// type console).
	LogType    worker.LogType
	LinePrefix string
	// AppToken gives each session a real token of the server (for the
	// session's workspace, restricted to its client id, as the apps
	// controller mints), for workers that connect to the server as the app
	// themselves (the MCP proxy); the file server accepts these tokens too.
	// Without it the token is a placeholder only the file server knows.
	AppToken bool
	// TokenInQuery makes the file server also accept the apps' token as a
	// ?token= query parameter, as the server's app-files route does: a
	// browser worker loads a page by URL and cannot send a Bearer header.
	TokenInQuery bool
	// IgnoreGoroutines names the top functions of goroutines that live as
	// long as the program (for goleak.IgnoreTopFunction), such as a
	// spawner thread started on first use.
	IgnoreGoroutines []string
	// Logger receives the server's and the adapter's logs (default:
	// discarded).
	Logger *slog.Logger
}

func (o Options) withDefaults(t *testing.T) Options {
	t.Helper()
	if o.New == nil || o.Serve.Type == "" || o.Serve.EntryPoint == "" {
		t.Fatal("workertest: Options.New, Serve.Type and Serve.EntryPoint are required")
	}
	if o.Lines == 0 {
		o.Lines = 30
	}
	if o.Lines < 10 {
		t.Fatalf("workertest: Options.Lines is %d, want at least 10", o.Lines)
	}
	if o.LogType == "" {
		o.LogType = worker.LogStdout
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Run runs the conformance suite on the worker o.New returns, each check
// as a subtest.
func Run(t *testing.T, o Options) {
	o = o.withDefaults(t)
	ignore := append([]goleak.Option{goleak.IgnoreCurrent()}, topFunctions(o.IgnoreGoroutines)...)
	procsBefore := descendants(os.Getpid())

	e := newEnv(t, o)
	closed := false
	defer func() {
		if !closed {
			e.close(t)
		}
	}()
	t.Run("registration", e.testRegistration)
	t.Run("status-transitions", e.testStatus)
	t.Run("idempotent-stop", e.testIdempotentStop)
	t.Run("workspace-isolation", e.testIsolation)
	t.Run("log-paging", e.testLogPaging)
	t.Run("progress", e.testProgress)
	t.Run("close-workspace", e.testCloseWorkspace)
	closed = true
	e.close(t)
	t.Run("no-leaks", func(t *testing.T) {
		left := waitNoNewProcesses(procsBefore, o.Timeout)
		if len(left) > 0 {
			t.Errorf("processes started during the suite are still running after the worker shut down: %v", left)
		}
		if err := goleak.Find(ignore...); err != nil {
			t.Errorf("goroutines left after the worker shut down and the server closed: %v", err)
		}
	})
}

// env is the server, the registered worker and the clients of one Run.
type env struct {
	o       Options
	srv     *server.Server
	files   *httptest.Server
	token   string // the apps' file token
	mu      sync.Mutex
	tokens  map[string]bool // AppToken: the tokens given to sessions
	w       worker.Worker
	wc      *rpc.Client // the worker's own connection, root in public
	id      string      // the worker's service id
	ctl     *rpc.Client // the apps controller: root in public
	a, b    *rpc.Client // anonymous users, each in a workspace of its own
	counter int
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	e := &env{o: o, token: randomHex(16)}
	srv, err := server.New(server.Config{JWTSecret: randomHex(16), RootToken: randomHex(16), Logger: o.Logger})
	if err != nil {
		t.Fatalf("workertest: server: %v", err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		srv.Close()
		t.Fatalf("workertest: server: %v", err)
	}
	e.srv = srv
	apps := map[string]App{}
	for _, a := range []*App{&o.Serve, o.Complete, o.Fail} {
		if a != nil {
			apps[a.Type+"/"+a.EntryPoint] = *a
		}
	}
	e.files = httptest.NewServer(http.HandlerFunc(e.serveFile))
	ctx := e.ctx(t)
	rootTok := e.publicRootToken(t)
	e.wc = e.connect(t, rpc.Config{Token: rootTok, Workspace: hyphaworker.PublicWorkspace, ClientID: "workertest-worker"})
	e.ctl = e.connect(t, rpc.Config{Token: rootTok, Workspace: hyphaworker.PublicWorkspace, ClientID: "workertest-controller"})
	e.a = e.connect(t, rpc.Config{ClientID: "workertest-alice"})
	e.b = e.connect(t, rpc.Config{ClientID: "workertest-bob"})
	e.w = o.New(t)
	// Visibility public: clients of other workspaces reach the service,
	// so that the suite sees the adapter refuse them.
	id, err := hyphaworker.Register(ctx, e.wc, e.w, hyphaworker.Options{Visibility: hyphaworker.Public, Logger: o.Logger})
	if err != nil {
		e.close(t)
		t.Fatalf("workertest: register the worker: %v", err)
	}
	e.id = id
	return e
}

// serveFile serves the files of every app at /<path>, to holders of the
// apps' token only. A folder listing is not offered: workers fall back to
// the entry point and the manifest's files.
func (e *env) serveFile(w http.ResponseWriter, r *http.Request) {
	bearer, isBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !(isBearer && e.fileToken(bearer)) && !(e.o.TokenInQuery && e.fileToken(r.URL.Query().Get("token"))) {
		http.Error(w, "missing or bad token", http.StatusUnauthorized)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	for _, a := range []*App{&e.o.Serve, e.o.Complete, e.o.Fail} {
		if a == nil {
			continue
		}
		if c, ok := a.Files[name]; ok {
			_, _ = io.WriteString(w, c)
			return
		}
	}
	http.NotFound(w, r)
}

func (e *env) ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) connect(t *testing.T, cfg rpc.Config) *rpc.Client {
	t.Helper()
	cfg.ServerURL = e.srv.URL()
	cfg.Logger = e.o.Logger
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	defer cancel()
	c, err := rpc.Connect(ctx, cfg)
	if err != nil {
		e.close(t)
		t.Fatalf("workertest: connect %s: %v", cfg.ClientID, err)
	}
	return c
}

// publicRootToken is a root token for the public workspace, as the apps
// controller makes its own.
func (e *env) publicRootToken(t *testing.T) string {
	root := auth.RootUser()
	root.Scope.CurrentWorkspace = hyphaworker.PublicWorkspace
	root.CurrentWorkspace = hyphaworker.PublicWorkspace
	tok, err := e.srv.Issuer().Generate(root, time.Hour)
	if err != nil {
		e.close(t)
		t.Fatalf("workertest: root token: %v", err)
	}
	return tok
}

// close shuts the worker down through the adapter (every session stopped,
// the service unregistered), then closes the clients and the server.
func (e *env) close(t *testing.T) {
	t.Helper()
	if e.w != nil && e.wc != nil && e.id != "" {
		ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
		if err := hyphaworker.Shutdown(ctx, e.wc, e.w, e.id); err != nil {
			t.Errorf("workertest: shut the worker down: %v", err)
		}
		cancel()
		e.w = nil
	}
	for _, c := range []*rpc.Client{e.a, e.b, e.ctl, e.wc} {
		if c != nil {
			c.Close()
		}
	}
	e.a, e.b, e.ctl, e.wc = nil, nil, nil, nil
	if e.files != nil {
		e.files.Close()
		e.files = nil
	}
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
}

func (e *env) svc(t *testing.T, c *rpc.Client) *rpc.RemoteService {
	t.Helper()
	s, err := c.GetService(e.ctx(t), e.id)
	if err != nil {
		t.Fatalf("get the worker service as %s: %v", c.Info().ClientID, err)
	}
	return s
}

// fileToken reports whether tok is a token the suite gave to apps.
func (e *env) fileToken(tok string) bool {
	if tok == e.token {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return tok != "" && e.tokens[tok]
}

// appToken is the token of a session: the placeholder, or (AppToken) a
// server token for workspace ws restricted to client id cid.
func (e *env) appToken(ws, cid string) string {
	if !e.o.AppToken {
		return e.token
	}
	u := &auth.UserInfo{ID: "workertest-app-" + cid, Roles: []string{}, CurrentWorkspace: ws,
		Scope: auth.Scope{CurrentWorkspace: ws, ClientID: cid, Workspaces: map[string]auth.Permission{ws: auth.ReadWrite}}}
	tok, err := e.srv.Issuer().Generate(u, time.Hour)
	if err != nil {
		return e.token // the start then fails, naming the refused token
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tokens == nil {
		e.tokens = map[string]bool{}
	}
	e.tokens[tok] = true
	return tok
}

// config is a start config as the apps controller sends it, for a session
// of app in workspace ws.
func (e *env) config(app App, ws string) map[string]any {
	e.counter++
	cid := fmt.Sprintf("wt%d-%s", e.counter, randomHex(3))
	man := map[string]any{"type": app.Type, "entry_point": app.EntryPoint, "name": cid}
	for k, v := range app.Manifest {
		man[k] = v
	}
	return map[string]any{
		"id": ws + "/" + cid, "app_id": "app-" + cid, "workspace": ws, "client_id": cid,
		"server_url": e.srv.URL(), "public_base_url": e.srv.URL(), "local_base_url": e.srv.URL(),
		"app_files_base_url": e.files.URL, "token": e.appToken(ws, cid), "entry_point": app.EntryPoint,
		"artifact_id": ws + "/app-" + cid, "manifest": man, "timeout": e.o.Timeout.Seconds(),
	}
}

// start starts a session of app for workspace ws as the controller does.
func (e *env) start(t *testing.T, app App, ws string, extra map[string]any) string {
	t.Helper()
	cfg := e.config(app, ws)
	for k, v := range extra {
		cfg[k] = v
	}
	got, err := e.svc(t, e.ctl).Call(e.ctx(t), hyphaworker.MethodStart, cfg, rpc.Kwargs{"context": map[string]any{"ws": ws}})
	if err != nil {
		t.Fatalf("start %s session: %v", app.Type, err)
	}
	id, _ := got.(string)
	if id != cfg["id"] {
		t.Fatalf("start returned %v, want the config's id %v", got, cfg["id"])
	}
	t.Cleanup(func() { _, _ = e.callCtl(hyphaworker.MethodStop, id) })
	return id
}

// callCtl calls a worker function as the controller (without a test: for
// cleanups).
func (e *env) callCtl(method string, args ...any) (any, error) {
	if e.ctl == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Timeout)
	defer cancel()
	s, err := e.ctl.GetService(ctx, e.id)
	if err != nil {
		return nil, err
	}
	return s.Call(ctx, method, args...)
}

func (e *env) info(t *testing.T, id string) (map[string]any, error) {
	t.Helper()
	v, err := e.svc(t, e.ctl).Call(e.ctx(t), hyphaworker.MethodGetSessionInfo, id)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("get_session_info returned %T, want a map", v)
	}
	return m, nil
}

// waitStatus waits until the session has status want; a session that
// reaches another final status fails the test at once.
func (e *env) waitStatus(t *testing.T, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(e.o.Timeout)
	for {
		m, err := e.info(t, id)
		if err != nil {
			t.Fatalf("get_session_info %s: %v", id, err)
		}
		st, _ := m["status"].(string)
		if st == want {
			return m
		}
		if st == string(worker.StatusCompleted) || st == string(worker.StatusFailed) || st == string(worker.StatusStopped) {
			t.Fatalf("session %s ended with status %s (info %v), want %s", id, st, m, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s: status %s after %s, want %s", id, st, e.o.Timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) listed(t *testing.T, c *rpc.Client, ws string) []string {
	t.Helper()
	args := []any{}
	if ws != "" {
		args = append(args, ws)
	}
	v, err := e.svc(t, c).Call(e.ctx(t), hyphaworker.MethodListSessions, args...)
	if err != nil {
		t.Fatalf("list_sessions(%q): %v", ws, err)
	}
	items, ok := v.([]any)
	if !ok {
		t.Fatalf("list_sessions returned %T, want a list", v)
	}
	var ids []string
	for _, it := range items {
		m, _ := it.(map[string]any)
		id, _ := m["session_id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// stdout reads the session's stdout lines through get_logs.
func (e *env) stdout(t *testing.T, id string) []string {
	t.Helper()
	page := e.logs(t, id, 0, 0)
	return contents(page)
}

func (e *env) logs(t *testing.T, id string, offset, limit int) map[string]any {
	t.Helper()
	args := []any{id, string(e.o.LogType), offset}
	if limit > 0 {
		args = append(args, limit)
	} else {
		args = append(args, nil)
	}
	v, err := e.svc(t, e.ctl).Call(e.ctx(t), hyphaworker.MethodGetLogs, args...)
	if err != nil {
		t.Fatalf("get_logs(%s, %s, %d, %d): %v", id, e.o.LogType, offset, limit, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("get_logs returned %T, want a map", v)
	}
	return m
}

func contents(page map[string]any) []string {
	items, _ := page["items"].([]any)
	var out []string
	for _, it := range items {
		m, _ := it.(map[string]any)
		s, _ := m["content"].(string)
		out = append(out, s)
	}
	return out
}

// waitLines waits until the session has printed all its numbered lines.
func (e *env) waitLines(t *testing.T, id string) {
	t.Helper()
	want := e.o.LinePrefix + "line " + strconv.Itoa(e.o.Lines)
	deadline := time.Now().Add(e.o.Timeout)
	for {
		lines := e.stdout(t, id)
		if slices.Contains(lines, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s did not print %q within %s; stdout: %q", id, want, e.o.Timeout, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wsOf(c *rpc.Client) string { return c.Info().Workspace }

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}

func topFunctions(names []string) []goleak.Option {
	var out []goleak.Option
	for _, n := range names {
		out = append(out, goleak.IgnoreTopFunction(n))
	}
	return out
}

// isPermissionError reports whether err is the adapter's refusal.
func isPermissionError(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "permission denied")
}
