package process

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// publicRoot connects a root client in "public", as the server's apps
// controller and its built-in workers are.
func publicRoot(t *testing.T, s *server.Server, clientID string) *rpc.Client {
	t.Helper()
	root := auth.RootUser()
	root.Scope.CurrentWorkspace = "public"
	root.CurrentWorkspace = "public"
	tok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testserver.Connect(t, s, rpc.Config{Token: tok, Workspace: "public", ClientID: clientID})
}

// registered starts a server, registers a process worker in public and
// returns it with the worker service as the controller sees it.
func registered(t *testing.T, opts Options) (*Registered, *rpc.RemoteService) {
	t.Helper()
	s := testserver.Start(t, server.Config{})
	wc := publicRoot(t, s, "process-worker")
	if opts.WorkDir == "" {
		opts.WorkDir = testserver.SharedTempDir(t)
	}
	reg, err := Register(ctxT(t), wc, opts, hyphaworker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := reg.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctl := publicRoot(t, s, "server-apps")
	svc, err := ctl.GetService(ctxT(t), reg.ServiceID)
	if err != nil {
		t.Fatal(err)
	}
	return reg, svc
}

// wireConfig is the start config exactly as the server sends it.
func wireConfig(base, ws, cid, appType, entry string) map[string]any {
	return map[string]any{
		"id": ws + "/" + cid, "app_id": "app-" + cid, "workspace": ws, "client_id": cid,
		"server_url": "http://127.0.0.1:9", "app_files_base_url": base, "token": testToken,
		"entry_point": entry, "artifact_id": ws + "/app-" + cid, "timeout": 20.0, "disable_ssl": false,
		"manifest": map[string]any{"_rtype": "pydantic-model", "type": appType, "entry_point": entry,
			"name": cid, "version": "0.1.0", "files": nil},
	}
}

func userContext(ws string) rpc.Kwargs {
	return rpc.Kwargs{"context": map[string]any{"ws": ws, "user": map[string]any{"id": "alice", "is_anonymous": false}}}
}

func TestControllerPath(t *testing.T) {
	needPython(t)
	as := newAppServer(t, map[string]string{
		"main.py": "import os\nprint('hello', os.environ['HYPHA_CLIENT_ID'])\n",
		"bad.py":  "raise SystemExit(7)\n",
	})
	reg, svc := registered(t, Options{})
	if reg.ServiceID != "public/process-worker:process-worker" {
		t.Fatalf("service id = %q", reg.ServiceID)
	}
	if diff := cmp.Diff([]any{TypePython, TypeNode}, svc.Get("supported_types")); diff != "" {
		t.Fatalf("supported_types: %s", diff)
	}
	if svc.Type != "server-app-worker" || svc.Get("use_local_url") != false || svc.Func("shutdown") == nil || svc.Func("compile") != nil {
		t.Fatalf("service = %+v", svc.Members())
	}
	ctx := ctxT(t)

	var mu sync.Mutex
	var progress []string
	cfg := wireConfig(as.base(), "ws-user-alice", "_rapp_quiet-owl__rlb", TypePython, "main.py")
	cfg["progress_callback"] = func(p map[string]any) {
		mu.Lock()
		progress = append(progress, fmt.Sprintf("%v: %v", p["type"], p["message"]))
		mu.Unlock()
	}
	id, err := svc.Call(ctx, "start", cfg, userContext("ws-user-alice"))
	if err != nil {
		t.Fatal(err)
	}
	if id != "ws-user-alice/_rapp_quiet-owl__rlb" {
		t.Fatalf("start returned %v", id)
	}
	mu.Lock()
	got := strings.Join(progress, "\n")
	mu.Unlock()
	for _, want := range []string{"info: Preparing a working directory", "info: Fetching 2 app file(s)", // every file the server lists
		"info: Starting python3 main.py", "success: Process started (pid "} {
		if !strings.Contains(got, want) {
			t.Errorf("progress lacks %q:\n%s", want, got)
		}
	}
	waitRemoteStatus(t, svc, id.(string), "completed")
	logs, err := svc.Call(ctx, "get_logs", id, rpc.Kwargs{"type": "stdout", "offset": 0, "limit": nil})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"items": []any{map[string]any{"type": "stdout", "content": "hello _rapp_quiet-owl__rlb"}},
		"total": int64(1), "offset": int64(0), "limit": nil,
		"dropped": int64(0), "first_offset": int64(0), "next_offset": int64(1), "missed": int64(0), "status": "completed"}
	if diff := cmp.Diff(want, logs); diff != "" {
		t.Fatalf("get_logs (-want +got):\n%s", diff)
	}
	if _, err := svc.Call(ctx, "stop", id); err != nil {
		t.Fatal(err)
	}

	// A failing app: start succeeds (the process ran), the status says why.
	bad, err := svc.Call(ctx, "start", wireConfig(as.base(), "ws-user-alice", "bad", TypePython, "bad.py"), userContext("ws-user-alice"))
	if err != nil {
		t.Fatal(err)
	}
	info := waitRemoteStatus(t, svc, bad.(string), "failed")
	if info["error"] != "process exited with code 7" {
		t.Fatalf("info = %v", info)
	}
	// A start that cannot happen is a clear error.
	_, err = svc.Call(ctx, "start", wireConfig(as.base(), "ws-user-alice", "nf", TypePython, "nope.py"), userContext("ws-user-alice"))
	if err == nil || !strings.Contains(err.Error(), "start ws-user-alice/nf: fetch nope.py: HTTP 404") {
		t.Fatalf("missing entry point: %v", err)
	}
	_, err = svc.Call(ctx, "start", wireConfig(as.base(), "ws-user-alice", "ev", TypePython, "../x.py"), userContext("ws-user-alice"))
	if err == nil || !strings.Contains(err.Error(), `file path "../x.py" leaves the working directory`) {
		t.Fatalf("unsafe entry point: %v", err)
	}
}

func waitRemoteStatus(t *testing.T, svc *rpc.RemoteService, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := svc.Call(ctxT(t), "get_session_info", id)
		if err != nil {
			t.Fatal(err)
		}
		info := v.(map[string]any)
		if info["status"] == want {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %v, want %s", info["status"], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHundredSessions starts and stops 100 sessions through RPC; no process
// may survive (checked in /proc) and no goroutine (goleak in TestMain).
func TestHundredSessions(t *testing.T) {
	as := newAppServer(t, map[string]string{"main.sh": "sleep 60 &\nwait\n"})
	reg, svc := registered(t, Options{Python: "sh", StopGrace: 2 * time.Second})
	ctx := ctxT(t)
	const n = 100
	ids := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(10)
	for i := range n {
		g.Go(func() error {
			v, err := svc.Call(gctx, "start", wireConfig(as.base(), "ws-many", fmt.Sprint("c", i), TypePython, "main.sh"), userContext("ws-many"))
			if err != nil {
				return err
			}
			ids[i] = v.(string)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var groups []int
	for _, id := range ids {
		groups = append(groups, procOf(t, reg.Worker, id).pid)
	}
	list, err := svc.Call(ctx, "list_sessions", "ws-many")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.([]any)) != n {
		t.Fatalf("%d sessions listed", len(list.([]any)))
	}
	_, err = svc.Call(ctx, "start", wireConfig(as.base(), "ws-many", "one-too-many", TypePython, "main.sh"), userContext("ws-many"))
	if err == nil || !strings.Contains(err.Error(), "session limit reached (100)") {
		t.Fatalf("101st session: %v", err)
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(10)
	for _, id := range ids {
		g.Go(func() error {
			_, err := svc.Call(gctx, "stop", id)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, groups, groups)
	noChildren(t)
	if reg.Worker.Sessions.Len() != 0 {
		t.Fatalf("%d sessions left", reg.Worker.Sessions.Len())
	}
}
