package hyphaworker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echoWorker is a Funcs worker that records the Caller of every start.
type echoWorker struct {
	sessions *worker.Registry
	mu       sync.Mutex
	callers  []worker.Caller
	stops    []string
	shutdown int
}

func newEchoWorker(t *testing.T, optional bool) (*echoWorker, worker.Worker) {
	e := &echoWorker{sessions: worker.NewRegistry(worker.RegistryOptions{})}
	f := worker.Funcs{
		Properties: worker.Properties{
			Name: "Echo Worker", Description: "echoes", SupportedTypes: []string{"echo", "echo2"},
		},
		Sessions: e.sessions,
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			rep := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{})
			defer rep.Close(ctx)
			c, _ := worker.CallerFromContext(ctx)
			e.mu.Lock()
			e.callers = append(e.callers, c)
			e.mu.Unlock()
			if cfg.Manifest.Name() == "fail" {
				return "", errors.New("the app asked to fail")
			}
			s, err := e.sessions.CreateFromConfig(cfg, nil)
			if err != nil {
				return "", err
			}
			rep.Info("starting " + s.ID())
			s.Log(worker.LogStdout, "hello "+cfg.Manifest.Name())
			s.Log(worker.LogStderr, "a warning")
			if err := s.SetStatus(worker.StatusRunning); err != nil {
				return "", err
			}
			rep.Success("started")
			return s.ID(), nil
		},
		Stop: func(ctx context.Context, id string) error {
			e.mu.Lock()
			e.stops = append(e.stops, id)
			e.mu.Unlock()
			return e.sessions.StopSession(ctx, id, nil)
		},
	}
	if optional {
		f.Execute = func(ctx context.Context, req worker.ExecuteRequest) (any, error) {
			s, err := e.sessions.LookupFor(ctx, req.SessionID)
			if err != nil {
				return nil, err
			}
			s.Log(worker.LogStdout, "exec "+req.Script)
			return map[string]any{"status": "ok", "outputs": []any{strings.ToUpper(req.Script)}, "timeout": req.Timeout(time.Second).Seconds()}, nil
		}
		f.Compile = func(ctx context.Context, req worker.CompileRequest) (worker.CompileResult, error) {
			m := worker.Manifest{"compiled": true, "workspace": req.Config.Workspace}
			for k, v := range req.Manifest {
				m[k] = v
			}
			return worker.CompileResult{Manifest: m, Files: append(req.Files, worker.File{Path: "extra.txt", Content: "x"})}, nil
		}
		f.Shutdown = func(ctx context.Context) error {
			e.mu.Lock()
			e.shutdown++
			e.mu.Unlock()
			b := worker.Base{Sessions: e.sessions, Stopper: worker.StopFunc(func(ctx context.Context, id string) error {
				return e.sessions.StopSession(ctx, id, nil)
			})}
			return b.StopAll(ctx)
		}
	}
	w, err := worker.FromFuncs(f)
	if err != nil {
		t.Fatal(err)
	}
	return e, w
}

func startConfig(ws, cid, name string) map[string]any {
	return map[string]any{
		"id": ws + "/" + cid, "app_id": "app-" + cid, "workspace": ws, "client_id": cid,
		"server_url": "http://127.0.0.1:1", "token": "tok", "entry_point": "main.py",
		"manifest": map[string]any{"_rtype": "pydantic-model", "type": "echo", "name": name},
		"timeout":  10.0,
	}
}

// world is a server, a worker registered by a root client in "public" (as
// the embedded server registers its built-in workers), and clients.
type world struct {
	s       *server.Server
	wc      *rpc.Client
	id      string
	echo    *echoWorker
	w       worker.Worker
	a, b    *rpc.Client // anonymous users, each in its own workspace
	trusted *rpc.Client // root in public: what the apps controller is
}

func newWorld(t *testing.T, optional bool) *world {
	t.Helper()
	ctx := ctxT(t)
	wd := &world{s: testserver.Start(t, server.Config{})}
	wd.wc = testserver.Connect(t, wd.s, rpc.Config{Token: publicRootToken(t, wd.s), Workspace: "public", ClientID: "worker-client"})
	wd.echo, wd.w = newEchoWorker(t, optional)
	id, err := hyphaworker.Register(ctx, wd.wc, wd.w, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	wd.id = id
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hyphaworker.Shutdown(sctx, wd.wc, wd.w, id); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	wd.a = testserver.Connect(t, wd.s, rpc.Config{ClientID: "alice"})
	wd.b = testserver.Connect(t, wd.s, rpc.Config{ClientID: "bob"})
	wd.trusted = testserver.Connect(t, wd.s, rpc.Config{Token: publicRootToken(t, wd.s), Workspace: "public", ClientID: "controller"})
	return wd
}

func (wd *world) svc(t *testing.T, c *rpc.Client) *rpc.RemoteService {
	t.Helper()
	svc, err := c.GetService(ctxT(t), wd.id)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// publicRootToken is a root token for the "public" workspace, made the way
// the apps controller makes its own.
func publicRootToken(t *testing.T, s *server.Server) string {
	t.Helper()
	root := auth.RootUser()
	root.Scope.CurrentWorkspace = "public"
	root.CurrentWorkspace = "public"
	tok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wsOf(c *rpc.Client) string { return c.Info().Workspace }

func TestServiceShape(t *testing.T) {
	wd := newWorld(t, true)
	if want := "public/worker-client:echo-worker"; wd.id != want {
		t.Fatalf("service id = %q, want %q", wd.id, want)
	}
	svc := wd.svc(t, wd.a)
	if svc.Type != "server-app-worker" || svc.Name != "Echo Worker" || svc.Description != "echoes" {
		t.Fatalf("service = %+v", svc)
	}
	if diff := cmp.Diff([]any{"echo", "echo2"}, svc.Get("supported_types")); diff != "" {
		t.Fatalf("supported_types: %s", diff)
	}
	if svc.Get("use_local_url") != true {
		t.Fatalf("use_local_url = %v", svc.Get("use_local_url"))
	}
	if svc.Config["visibility"] != "public" || svc.Config["require_context"] != true {
		t.Fatalf("config = %v", svc.Config)
	}
	for _, fn := range []string{"start", "stop", "list_sessions", "get_session_info", "get_logs",
		"prepare_workspace", "close_workspace", "compile", "execute", "shutdown"} {
		if svc.Func(fn) == nil {
			t.Errorf("method %s missing", fn)
		}
	}
	// The listing finds it by type.
	list, err := wd.a.ListServices(ctxT(t), map[string]any{"type": "server-app-worker", "workspace": "public"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(list, func(s rpc.ServiceInfo) bool { return s.ID == wd.id }) {
		t.Fatalf("worker not listed: %+v", list)
	}
}

func TestOptionalMethodsOnlyWhenProvided(t *testing.T) {
	wd := newWorld(t, false)
	svc := wd.svc(t, wd.a)
	for _, fn := range []string{"compile", "execute", "shutdown"} {
		if svc.Func(fn) != nil {
			t.Errorf("method %s registered but not provided", fn)
		}
	}
	if svc.Func("start") == nil || svc.Func("get_logs") == nil {
		t.Fatal("required methods missing")
	}
}

func TestOverrides(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := ctxT(t)
	wc := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "w"})
	_, w := newEchoWorker(t, false)
	id, err := hyphaworker.Register(ctx, wc, w, hyphaworker.Options{
		ServiceID: "my-echo", Visibility: hyphaworker.Protected, AuthorizedWorkspaces: []string{"ws-x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(id, "/w:my-echo") {
		t.Fatalf("id = %q", id)
	}
	svc, err := wc.GetService(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Config["visibility"] != "protected" || fmt.Sprint(svc.Config["authorized_workspaces"]) != "[ws-x]" {
		t.Fatalf("config = %v", svc.Config)
	}
	if _, err := hyphaworker.Register(ctx, wc, w, hyphaworker.Options{ServiceID: "bad:id"}); err == nil {
		t.Fatal("a service id with ':' was accepted")
	}
	if _, err := hyphaworker.Register(ctx, wc, w, hyphaworker.Options{Visibility: "private"}); err == nil {
		t.Fatal("visibility private was accepted")
	}
	if err := hyphaworker.Shutdown(ctx, wc, w, id); err != nil {
		t.Fatal(err)
	}
}

func TestLifecycleShapes(t *testing.T) {
	wd := newWorld(t, true)
	ctx := ctxT(t)
	// The worker is registered in public: the apps controller (root in
	// public) drives it, on behalf of the end user's workspace ws.
	svc := wd.svc(t, wd.trusted)
	ws := wsOf(wd.a)

	var mu sync.Mutex
	var progress []string
	cfg := startConfig(ws, "c1", "hello-app")
	cfg["progress_callback"] = func(p map[string]any) {
		mu.Lock()
		progress = append(progress, fmt.Sprint(p["type"], ":", p["message"]))
		mu.Unlock()
	}
	id, err := svc.Call(ctx, "start", cfg, rpc.Kwargs{"context": map[string]any{"ws": ws}})
	if err != nil {
		t.Fatal(err)
	}
	if id != ws+"/c1" {
		t.Fatalf("start returned %v", id)
	}
	mu.Lock()
	gotProgress := slices.Clone(progress)
	mu.Unlock()
	if diff := cmp.Diff([]string{"info:starting " + ws + "/c1", "success:started"}, gotProgress); diff != "" {
		t.Fatalf("progress (-want +got):\n%s", diff)
	}
	// The worker saw the trusted caller, with the end user's workspace
	// from the explicit context.
	wd.echo.mu.Lock()
	c := wd.echo.callers[0]
	wd.echo.mu.Unlock()
	if !c.Trusted || c.Workspace != ws || c.From != "public/controller" || c.UserID() != "root" {
		t.Fatalf("caller = %+v", c)
	}

	list, err := svc.Call(ctx, "list_sessions", ws)
	if err != nil {
		t.Fatal(err)
	}
	items, _ := list.([]any)
	if len(items) != 1 {
		t.Fatalf("list_sessions = %v", list)
	}
	info := items[0].(map[string]any)
	for k, want := range map[string]any{"session_id": ws + "/c1", "app_id": "app-c1", "workspace": ws,
		"client_id": "c1", "status": "running", "app_type": "echo", "entry_point": "main.py"} {
		if info[k] != want {
			t.Errorf("session %s = %v, want %v", k, info[k], want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, info["created_at"].(string)); err != nil {
		t.Errorf("created_at: %v", err)
	}
	if md, _ := info["metadata"].(map[string]any); md["name"] != "hello-app" || md["_rtype"] != nil {
		t.Errorf("metadata = %v", info["metadata"])
	}

	got, err := svc.Call(ctx, "get_session_info", ws+"/c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.(map[string]any)["status"] != "running" {
		t.Fatalf("get_session_info = %v", got)
	}

	logs, err := svc.Call(ctx, "get_logs", ws+"/c1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"items": []any{
			map[string]any{"type": "stdout", "content": "hello hello-app"},
			map[string]any{"type": "stderr", "content": "a warning"},
		},
		"total": int64(2), "offset": int64(0), "limit": nil,
		"dropped": int64(0), "first_offset": int64(0), "next_offset": int64(2), "missed": int64(0), "status": "running",
		"log": []any{}, "error": []any{}, "stdout": []any{"hello hello-app"}, "stderr": []any{"a warning"},
	}
	if diff := cmp.Diff(want, logs); diff != "" {
		t.Fatalf("get_logs (-want +got):\n%s", diff)
	}
	// Positional and keyword forms.
	for _, args := range [][]any{
		{ws + "/c1", "stderr"},
		{ws + "/c1", rpc.Kwargs{"type": "stderr", "offset": 0, "limit": 5}},
		{rpc.Kwargs{"session_id": ws + "/c1", "type": "stderr"}},
	} {
		logs, err := svc.Call(ctx, "get_logs", args...)
		if err != nil {
			t.Fatal(err)
		}
		m := logs.(map[string]any)
		if m["total"] != int64(1) || len(m["items"].([]any)) != 1 {
			t.Fatalf("get_logs%v = %v", args, logs)
		}
	}
	if _, err := svc.Call(ctx, "get_logs", ws+"/c1", nil, "zero"); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("bad offset: %v", err)
	}

	res, err := svc.Call(ctx, "execute", ws+"/c1", "print(1)", map[string]any{"timeout": 3})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"status": "ok", "outputs": []any{"PRINT(1)"}, "timeout": 3.0}, res); diff != "" {
		t.Fatalf("execute: %s", diff)
	}

	comp, err := svc.Call(ctx, "compile", map[string]any{"type": "echo", "name": "x"},
		[]any{map[string]any{"name": "main.py", "content": "print(1)"}}, map[string]any{"workspace": ws})
	if err != nil {
		t.Fatal(err)
	}
	pair := comp.([]any)
	if m := pair[0].(map[string]any); m["compiled"] != true || m["workspace"] != ws {
		t.Fatalf("compile manifest = %v", pair[0])
	}
	if files := pair[1].([]any); len(files) != 2 || files[0].(map[string]any)["path"] != "main.py" {
		t.Fatalf("compile files = %v", pair[1])
	}

	if _, err := svc.Call(ctx, "stop", ws+"/c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Call(ctx, "stop", ws+"/c1"); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := svc.Call(ctx, "stop", ws+"/never-started"); err != nil {
		t.Fatalf("stop of an unknown session: %v", err)
	}
	_, err = svc.Call(ctx, "get_logs", ws+"/c1")
	if err == nil || !strings.Contains(err.Error(), "session not found: "+ws+"/c1") {
		t.Fatalf("get_logs after stop: %v", err)
	}
	if list, _ := svc.Call(ctx, "list_sessions", ws); len(list.([]any)) != 0 {
		t.Fatalf("list after stop = %v", list)
	}
}

func TestErrorsAreClear(t *testing.T) {
	wd := newWorld(t, false)
	ctx := ctxT(t)
	svc := wd.svc(t, wd.trusted)
	ws := wsOf(wd.a)
	for _, tc := range []struct {
		name string
		fn   string
		args []any
		want string
	}{
		{"config not a map", "start", []any{"nope"}, "start: invalid worker config: config: want a map, got string"},
		{"bad timeout", "start", []any{map[string]any{"id": ws + "/x", "timeout": "soon"}}, "timeout: want non-negative seconds, got string"},
		{"worker error", "start", []any{startConfig(ws, "f1", "fail")}, "start " + ws + "/f1: the app asked to fail"},
		{"no session id", "stop", nil, "stop: invalid worker config: session_id"},
		{"unknown session", "get_session_info", []any{ws + "/nope"}, "get_session_info: session not found: " + ws + "/nope"},
		{"bad workspace type", "list_sessions", []any{42}, "list_sessions: invalid worker config: workspace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Call(ctx, tc.fn, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s: err = %v, want it to contain %q", tc.fn, err, tc.want)
			}
		})
	}
}

func TestWorkspaceIsolation(t *testing.T) {
	mw := newMemberWorld(t)
	ctx := ctxT(t)
	home := mw.home
	st := mw.svc(t, mw.trusted)
	// The controller starts one session in the worker's workspace and one
	// in another workspace (a public-visibility worker serves both).
	idHome, idOther := home+"/h1", "ws-other/o1"
	for _, cfg := range []map[string]any{startConfig(home, "h1", "app-h"), startConfig("ws-other", "o1", "app-o")} {
		if _, err := st.Call(ctx, "start", cfg, rpc.Kwargs{"context": map[string]any{"ws": cfg["workspace"]}}); err != nil {
			t.Fatal(err)
		}
	}

	// A member (read) sees only its workspace's sessions, even when it
	// names another workspace or claims it in the explicit context.
	sr := mw.svc(t, mw.reader)
	claim := rpc.Kwargs{"context": map[string]any{"ws": "ws-other", "user": map[string]any{"id": "root"}}}
	for _, args := range [][]any{nil, {"ws-other"}, {"ws-other", claim}, {"", claim}} {
		list, err := sr.Call(ctx, "list_sessions", args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range list.([]any) {
			if it.(map[string]any)["workspace"] != home {
				t.Fatalf("member listed %v with args %v", it, args)
			}
		}
	}
	if list, _ := sr.Call(ctx, "list_sessions"); len(list.([]any)) != 1 {
		t.Fatalf("member list_sessions = %v", list)
	}
	sa := mw.svc(t, mw.admin)
	notFound := "session not found: " + idOther
	for _, call := range []struct {
		fn   string
		args []any
	}{
		{"get_session_info", []any{idOther}},
		{"get_session_info", []any{idOther, claim}},
		{"get_logs", []any{idOther}},
		{"execute", []any{idOther, "x"}},
		{"stop", []any{idOther}},
		{"stop", []any{idOther, claim}},
	} {
		_, err := sa.Call(ctx, call.fn, call.args...)
		if err == nil || !strings.Contains(err.Error(), notFound) {
			t.Errorf("admin member %s(%v): err = %v, want %q", call.fn, call.args, err, notFound)
		}
	}
	if _, err := sa.Call(ctx, "close_workspace", "ws-other"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("admin member close_workspace(ws-other): %v", err)
	}
	// The other workspace's session survived all that.
	if info, err := st.Call(ctx, "get_session_info", idOther); err != nil || info.(map[string]any)["status"] != "running" {
		t.Fatalf("ws-other's session: %v %v", info, err)
	}

	// The root user in another workspace may call the worker but is
	// confined to the workspace it is connected in.
	rootElsewhere := testserver.Connect(t, mw.s, rpc.Config{Token: testserver.RootToken, ClientID: "root-home"})
	sroot := mw.svc(t, rootElsewhere)
	if list, err := sroot.Call(ctx, "list_sessions"); err != nil || len(list.([]any)) != 0 {
		t.Fatalf("root in %s listed %v %v", wsOf(rootElsewhere), list, err)
	}
	if _, err := sroot.Call(ctx, "get_logs", idHome); err == nil {
		t.Fatal("root outside the session's workspace read its logs")
	}

	// The trusted caller (root in public, as the apps controller) sees all.
	list, err := st.Call(ctx, "list_sessions")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.([]any)) != 2 {
		t.Fatalf("trusted list_sessions = %v", list)
	}
	if list, _ := st.Call(ctx, "list_sessions", home); len(list.([]any)) != 1 {
		t.Fatalf("trusted list_sessions(home) = %v", list)
	}
	wd := mw.echo
	wd.mu.Lock()
	c := wd.callers[len(wd.callers)-1]
	wd.mu.Unlock()
	if !c.Trusted || c.Workspace != "ws-other" || c.From != "public/controller" {
		t.Fatalf("trusted caller = %+v", c)
	}
	if _, err := st.Call(ctx, "stop", idOther); err != nil {
		t.Fatalf("trusted stop: %v", err)
	}
	if _, err := st.Call(ctx, "get_session_info", idOther); err == nil {
		t.Fatal("the session survived the trusted stop")
	}
	// An admin member closes its own workspace.
	if _, err := sa.Call(ctx, "close_workspace"); err != nil {
		t.Fatal(err)
	}
	if list, _ := sa.Call(ctx, "list_sessions"); len(list.([]any)) != 0 {
		t.Fatalf("after close_workspace: %v", list)
	}
}

func TestTrustedCallerRule(t *testing.T) {
	root := rpc.UserInfo{ID: "root"}
	for _, tc := range []struct {
		name string
		cc   *rpc.CallContext
		want bool
	}{
		{"nil", nil, false},
		{"root in public", &rpc.CallContext{From: "public/server-apps", WS: "public", User: root}, true},
		{"manager (a relay, never a caller)", &rpc.CallContext{From: "*/manager-x", WS: "public", User: root}, false},
		{"root elsewhere", &rpc.CallContext{From: "ws-user-root/c", WS: "ws-user-root", User: root}, false},
		{"user in public", &rpc.CallContext{From: "public/c", WS: "public", User: rpc.UserInfo{ID: "alice"}}, false},
		{"anonymous root id", &rpc.CallContext{From: "public/c", WS: "public", User: rpc.UserInfo{ID: "root", IsAnonymous: true}}, false},
		{"ws and from disagree", &rpc.CallContext{From: "ws-a/c", WS: "public", User: root}, false},
	} {
		if got := hyphaworker.TrustedCaller(tc.cc); got != tc.want {
			t.Errorf("%s: TrustedCaller = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestShutdownByOwner(t *testing.T) {
	wd := newWorld(t, true)
	ctx := ctxT(t)
	if _, err := wd.svc(t, wd.trusted).Call(ctx, "start", startConfig(wsOf(wd.a), "s1", "x")); err != nil {
		t.Fatal(err)
	}
	// Root, connected anywhere, may shut the worker down.
	owner := testserver.Connect(t, wd.s, rpc.Config{Token: testserver.RootToken, ClientID: "owner"})
	if _, err := wd.svc(t, owner).Call(ctx, "shutdown"); err != nil {
		t.Fatal(err)
	}
	if wd.echo.sessions.Len() != 0 {
		t.Fatalf("%d sessions after shutdown", wd.echo.sessions.Len())
	}
}

func TestServe(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	wc := testserver.Connect(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public", ClientID: "serve-worker"})
	caller := testserver.Connect(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public", ClientID: "ctl"})
	echo, w := newEchoWorker(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- hyphaworker.Serve(ctx, wc, w, hyphaworker.Options{ServiceID: "served", Visibility: hyphaworker.Public, UseLocalURL: true})
	}()

	tctx := ctxT(t)
	id := "public/serve-worker:served"
	var svc *rpc.RemoteService
	for deadline := time.Now().Add(5 * time.Second); ; {
		var err error
		if svc, err = caller.GetService(tctx, id); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker never registered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := svc.Call(tctx, "start", startConfig("ws-x", "c9", "served-app")); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	echo.mu.Lock()
	stops := slices.Clone(echo.stops)
	echo.mu.Unlock()
	if diff := cmp.Diff([]string{"ws-x/c9"}, stops); diff != "" {
		t.Fatalf("stops: %s", diff)
	}
	if _, err := caller.GetService(tctx, id); err == nil {
		t.Fatal("service still registered after Serve returned")
	}
}

func TestServeReturnsWhenClientCloses(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	wc := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "closing", NoReconnect: true})
	_, w := newEchoWorker(t, false)
	errc := make(chan error, 1)
	go func() {
		errc <- hyphaworker.Serve(context.Background(), wc, w, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	}()
	time.Sleep(100 * time.Millisecond)
	wc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, rpc.ErrClosed) {
			t.Fatalf("Serve = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the client closed")
	}
}

// TestShutdownWithServerGone: Shutdown while the server cannot be reached
// (the client keeps reconnecting) gives up unregistering after a bound
// and still stops the sessions with time left, instead of spending the
// caller's whole deadline on the unregistration.
func TestShutdownWithServerGone(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	wc := testserver.Connect(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public", ClientID: "gone-worker"})
	stopped := make(chan error, 1)
	w, err := worker.FromFuncs(worker.Funcs{
		Properties: worker.Properties{Name: "gone", SupportedTypes: []string{"gone-app"}},
		Sessions:   worker.NewRegistry(worker.RegistryOptions{}),
		Start:      func(context.Context, worker.Config) (string, error) { return "", nil },
		Stop:       func(context.Context, string) error { return nil },
		Shutdown: func(ctx context.Context) error {
			stopped <- ctx.Err() // the sessions' stop must get a live context
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := hyphaworker.Register(ctxT(t), wc, w, hyphaworker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = hyphaworker.Shutdown(ctx, wc, w, id)
	if err == nil || !strings.Contains(err.Error(), "unregister "+id) {
		t.Fatalf("Shutdown with the server gone = %v, want the unregistration's error", err)
	}
	select {
	case cerr := <-stopped:
		if cerr != nil {
			t.Fatalf("the sessions were stopped with a finished context: %v", cerr)
		}
	default:
		t.Fatal("the sessions were not stopped")
	}
}
