package apps_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

// TestMain fails the package if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer runs a server with server apps enabled on dataDir.
func startServer(t *testing.T, dataDir string) *server.Server {
	t.Helper()
	return testserver.Start(t, server.Config{DataDir: dataDir})
}

// userToken mints a token for user id, whose own workspace is ws-user-<id>.
func userToken(t *testing.T, s *server.Server, id string) string {
	t.Helper()
	tok, err := s.Issuer().Generate(&auth.UserInfo{ID: id, Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-" + id}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publicRootToken is a root token whose current workspace is public.
func publicRootToken(t *testing.T, s *server.Server) string {
	t.Helper()
	u := auth.RootUser()
	u.Scope.CurrentWorkspace = "public"
	tok, err := s.Issuer().Generate(u, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// connectUser connects a client as user id in its own workspace.
func connectUser(t *testing.T, s *server.Server, id, clientID string) *rpc.Client {
	t.Helper()
	return testserver.Connect(t, s, rpc.Config{Token: userToken(t, s, id), ClientID: clientID, NoReconnect: true})
}

func appsService(t *testing.T, c *rpc.Client) *rpc.RemoteService {
	t.Helper()
	svc, err := c.GetService(testserver.Ctx(t), "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// testWorker is a server-app-worker written as an ordinary client service.
// Its apps are emulated: on start it connects back to the server as the app
// client with the config's server_url, workspace, client_id and token and
// registers `default` with `add`, unless the manifest's test_mode says:
//
//	"hang"  never connect;
//	"bare"  connect but register no service;
//	"fail"  start raises.
type testWorker struct {
	t      *testing.T
	client *rpc.Client
	id     string

	mu       sync.Mutex
	apps     map[string]*rpc.Client
	logs     map[string][]any
	configs  []map[string]any
	contexts []map[string]any
	stamped  []*rpc.CallContext
	stopped  []string
	executed []string
	shots    []map[string]any // the context each take_screenshot got
	shotWith any              // when set, what take_screenshot answers (a broken worker)
	compiled int
}

func newTestWorker(t *testing.T, s *server.Server, cfg rpc.Config, visibility string) *testWorker {
	t.Helper()
	cfg.NoReconnect = true
	if cfg.ClientID == "" {
		cfg.ClientID = "test-worker-client"
	}
	w := &testWorker{t: t, apps: map[string]*rpc.Client{}, logs: map[string][]any{}}
	w.client = testserver.Connect(t, s, cfg)
	t.Cleanup(w.closeApps)
	id, err := w.client.RegisterService(testserver.Ctx(t), rpc.Service{
		ID: "test-worker", Name: "Test Worker", Description: "emulates apps for tests",
		Type:   "server-app-worker",
		Config: rpc.ServiceConfig{Visibility: visibility, RequireContext: true},
		Functions: map[string]any{
			"supported_types": []any{"test-app"},
			"start":           rpc.HandlerFunc(w.start),
			"stop":            rpc.HandlerFunc(w.stop),
			"get_logs":        rpc.HandlerFunc(w.getLogs),
			"compile":         rpc.HandlerFunc(w.compile),
			"kill":            rpc.HandlerFunc(w.kill),
			"execute":         rpc.HandlerFunc(w.execute),
			"take_screenshot": rpc.HandlerFunc(w.takeScreenshot),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.id = id
	return w
}

func (w *testWorker) log(sid, typ, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.logs[sid] = append(w.logs[sid], map[string]any{"type": typ, "content": msg})
}

func (w *testWorker) closeApps() {
	w.mu.Lock()
	apps := w.apps
	w.apps = map[string]*rpc.Client{}
	w.mu.Unlock()
	for _, c := range apps {
		c.Close()
	}
}

func (w *testWorker) lastConfig() (map[string]any, map[string]any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.configs) == 0 {
		return nil, nil
	}
	return w.configs[len(w.configs)-1], w.contexts[len(w.contexts)-1]
}

func (w *testWorker) stops() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string{}, w.stopped...)
}

func (w *testWorker) start(ctx context.Context, c *rpc.Call) (any, error) {
	cfg, ok := c.Arg(0, "config").(map[string]any)
	if !ok {
		return nil, errors.New("start: config must be a dict")
	}
	sid, _ := cfg["id"].(string)
	w.mu.Lock()
	w.configs = append(w.configs, cfg)
	// The explicit context, had the controller sent one (as a keyword or
	// after the config); this worker declares require_context, so it
	// should not (workercall.go).
	kctx, _ := c.Arg(1, "context").(map[string]any)
	w.contexts = append(w.contexts, kctx)
	w.stamped = append(w.stamped, c.Context)
	w.mu.Unlock()
	w.log(sid, "info", "starting "+sid)
	if pc, ok := cfg["progress_callback"].(*rpc.RemoteFunc); ok {
		if _, err := pc.Call(ctx, map[string]any{"type": "info", "message": "test worker says hello"}); err != nil {
			w.log(sid, "error", "progress callback failed: "+err.Error())
		}
	}
	manifest, _ := cfg["manifest"].(map[string]any)
	mode, _ := manifest["test_mode"].(string)
	switch mode {
	case "hang":
		w.log(sid, "error", "stuck: never connecting")
		return sid, nil
	case "fail":
		w.log(sid, "error", "boom from worker")
		return nil, errors.New("boom from worker")
	}
	// Read the entry file the way a real worker does: app_files_base_url
	// with the app's token.
	base, _ := cfg["app_files_base_url"].(string)
	entry, _ := cfg["entry_point"].(string)
	token, _ := cfg["token"].(string)
	if body, err := httpGet(ctx, base+"/"+entry, token); err == nil {
		w.log(sid, "stdout", "file "+entry+": "+body)
	} else {
		w.log(sid, "error", "read entry: "+err.Error())
	}
	app, err := rpc.Connect(ctx, rpc.Config{
		ServerURL: cfg["server_url"].(string), Workspace: cfg["workspace"].(string),
		ClientID: cfg["client_id"].(string), Token: token, NoReconnect: true,
		Logger: testserver.Logger(w.t),
	})
	if err != nil {
		w.log(sid, "error", "connect: "+err.Error())
		return nil, err
	}
	w.mu.Lock()
	w.apps[sid] = app
	w.mu.Unlock()
	if mode != "bare" {
		appID, _ := cfg["app_id"].(string)
		_, err := app.RegisterService(ctx, rpc.Service{ID: "default", Name: "Test App", AppID: appID,
			Description: "an emulated app", Config: rpc.ServiceConfig{Visibility: "protected"},
			Functions: map[string]any{"add": func(a, b int) int { return a + b }}})
		if err != nil {
			w.log(sid, "error", "register: "+err.Error())
			return nil, err
		}
	}
	w.log(sid, "info", "app running")
	return sid, nil
}

func (w *testWorker) stop(_ context.Context, c *rpc.Call) (any, error) {
	sid, _ := c.Arg(0, "session_id").(string)
	w.mu.Lock()
	app := w.apps[sid]
	delete(w.apps, sid)
	w.stopped = append(w.stopped, sid)
	w.mu.Unlock()
	if app != nil {
		app.Close()
	}
	w.log(sid, "info", "stopped")
	return nil, nil
}

// execute answers in the conda worker's shape: the script echoed as
// stdout, after one progress message; "fail" gives an error status.
func (w *testWorker) execute(ctx context.Context, c *rpc.Call) (any, error) {
	sid, _ := c.Arg(0, "session_id").(string)
	script, _ := c.Arg(1, "script").(string)
	w.mu.Lock()
	app := w.apps[sid]
	w.executed = append(w.executed, sid)
	w.mu.Unlock()
	if app == nil {
		return nil, fmt.Errorf("session not found: %s", sid)
	}
	if cb, ok := c.Arg(3, "progress_callback").(*rpc.RemoteFunc); ok {
		_, _ = cb.Call(ctx, map[string]any{"type": "info", "message": "executing"})
	}
	if script == "fail" {
		return map[string]any{"status": "error", "outputs": []any{},
			"error": map[string]any{"ename": "RuntimeError", "evalue": "fail", "traceback": []any{}}}, nil
	}
	return map[string]any{"status": "ok", "outputs": []any{
		map[string]any{"type": "stream", "name": "stdout", "text": script}}}, nil
}

// takeScreenshot answers image bytes of the format asked for: a PNG
// signature, or JPEG's, or shotWith when set.
func (w *testWorker) takeScreenshot(_ context.Context, c *rpc.Call) (any, error) {
	sid, _ := c.Arg(0, "session_id").(string)
	format, _ := c.Arg(1, "format").(string)
	ctxMap, _ := c.Kwargs["context"].(map[string]any)
	w.mu.Lock()
	app := w.apps[sid]
	w.shots = append(w.shots, ctxMap)
	answer := w.shotWith
	w.mu.Unlock()
	if app == nil {
		return nil, fmt.Errorf("session not found: %s", sid)
	}
	if answer != nil {
		return answer, nil
	}
	switch format {
	case "png":
		return []byte("\x89PNG\r\n\x1a\nfake"), nil
	case "jpeg":
		return []byte("\xff\xd8\xff\xe0fake"), nil
	}
	return nil, fmt.Errorf("unexpected format %q", format)
}

// kill closes an app's client without telling the controller (a crash).
func (w *testWorker) kill(_ context.Context, c *rpc.Call) (any, error) {
	sid, _ := c.Arg(0, "session_id").(string)
	w.mu.Lock()
	app := w.apps[sid]
	delete(w.apps, sid)
	w.mu.Unlock()
	if app == nil {
		return nil, fmt.Errorf("no app %s", sid)
	}
	app.Close()
	return nil, nil
}

func (w *testWorker) getLogs(_ context.Context, c *rpc.Call) (any, error) {
	sid, _ := c.Arg(0, "session_id").(string)
	typ, _ := c.Arg(1, "type").(string)
	offset, _ := c.Arg(2, "offset").(int64)
	w.mu.Lock()
	var items []any
	for _, it := range w.logs[sid] {
		if typ == "" || it.(map[string]any)["type"] == typ {
			items = append(items, it)
		}
	}
	w.mu.Unlock()
	total := int64(len(items))
	if offset < 0 { // Python slicing: the last -offset items
		offset = max(total+offset, 0)
	}
	items = items[min(offset, total):]
	limit := c.Arg(3, "limit")
	if l, ok := limit.(int64); ok && l < int64(len(items)) {
		items = items[:l]
	}
	if items == nil {
		items = []any{}
	}
	return map[string]any{"items": items, "total": total, "offset": offset, "limit": limit}, nil
}

func (w *testWorker) compile(_ context.Context, c *rpc.Call) (any, error) {
	m, _ := c.Arg(0, "manifest").(map[string]any)
	files := c.Arg(1, "files")
	w.mu.Lock()
	w.compiled++
	w.mu.Unlock()
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	out["compiled"] = true
	return []any{out, files}, nil
}

func httpGet(ctx context.Context, url, token string) (string, error) {
	code, body, err := httpDo(ctx, url, token)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", url, code, body)
	}
	return body, nil
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func httpDo(ctx context.Context, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func call(t *testing.T, svc *rpc.RemoteService, fn string, args ...any) any {
	t.Helper()
	v, err := svc.Call(testserver.Ctx(t), fn, args...)
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	return v
}

func callErr(t *testing.T, svc *rpc.RemoteService, fn string, want string, args ...any) error {
	t.Helper()
	_, err := svc.Call(testserver.Ctx(t), fn, args...)
	if err == nil {
		t.Fatalf("%s: no error, want one containing %q", fn, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: error %q does not contain %q", fn, err, want)
	}
	return err
}

// testApp is the manifest and files of a test-app.
func testApp(mode string) rpc.Kwargs {
	m := map[string]any{"type": "test-app", "name": "My App", "entry_point": "main.txt"}
	if mode != "" {
		m["test_mode"] = mode
	}
	return rpc.Kwargs{
		"manifest": m,
		"files":    []any{map[string]any{"path": "main.txt", "content": "hello from main"}},
	}
}

func with(k rpc.Kwargs, kv ...any) rpc.Kwargs {
	out := rpc.Kwargs{}
	for key, v := range k {
		out[key] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func asList(t *testing.T, v any) []any {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("got %T, want a list", v)
	}
	return l
}

func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("got %T (%v), want a dict", v, v)
	}
	return m
}

func ids(l []any) []string {
	var out []string
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			id, _ := m["id"].(string)
			out = append(out, id)
		}
	}
	return out
}
