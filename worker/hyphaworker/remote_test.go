package hyphaworker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// TestRemoteDrivesAdapter: the typed client and the adapter are the two
// ends of one contract. A worker.Config sent through Remote arrives at the
// Go worker as the same worker.Config, with the caller context, progress,
// session info, log pages, compile and the not-found error coming back
// typed. The trusted client (root in public) stands for the controller.
func TestRemoteDrivesAdapter(t *testing.T) {
	wd := newWorld(t, true)
	ctx := ctxT(t)
	rw := hyphaworker.Remote(wd.svc(t, wd.trusted))

	if p := rw.Properties(); p.Name != "Echo Worker" || len(p.SupportedTypes) != 2 {
		t.Fatalf("properties = %+v", p)
	}
	if o := rw.Options(); o.Visibility != hyphaworker.Public || !o.UseLocalURL || o.ServiceID != "echo-worker" {
		t.Fatalf("registration read back = %+v", o)
	}
	if _, ok := worker.AsCompiler(rw); !ok || !rw.Has(worker.MethodGetSessionInfo) {
		t.Fatal("the remote worker does not report its methods")
	}

	var mu sync.Mutex
	var progress []worker.Progress
	cfg := worker.Config{
		ID: "ws-x/c1", AppID: "app-c1", Workspace: "ws-x", ClientID: "c1", ServerURL: "http://127.0.0.1:1",
		Token: "tok", EntryPoint: "main.py", ArtifactID: "ws-x/app-c1", Timeout: 10 * time.Second,
		Manifest: worker.Manifest{"type": "echo", "name": "remote"},
		Extra:    map[string]any{"env": map[string]any{"A": "1"}},
		ProgressFunc: func(_ context.Context, p worker.Progress) error {
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
			return nil
		},
	}
	cctx := worker.WithCaller(ctx, worker.Caller{Workspace: "ws-x", User: map[string]any{"id": "alice"}})
	id, err := rw.Start(cctx, cfg)
	if err != nil || id != "ws-x/c1" {
		t.Fatalf("start = %q, %v", id, err)
	}
	if _, err := wd.echo.sessions.Lookup(id); err != nil {
		t.Fatal(err)
	}
	wd.echo.mu.Lock()
	last := wd.echo.callers[len(wd.echo.callers)-1]
	wd.echo.mu.Unlock()
	// The trusted client's call. The adapter declares require_context, so
	// Remote sends no explicit context (docs/compatibility.md, "Worker
	// calls on the wire"): the worker sees the server-stamped caller.
	if !last.Trusted || last.From != "public/controller" || last.Workspace != "public" {
		t.Fatalf("caller at the worker = %+v", last)
	}
	testWaitFor(t, "the progress messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) >= 2
	})

	info, err := rw.GetSessionInfo(cctx, id)
	if err != nil || info.Status != worker.StatusRunning || info.AppType != "echo" || info.CreatedAt.IsZero() {
		t.Fatalf("session info = %+v, %v", info, err)
	}
	page, err := rw.GetLogs(cctx, id, worker.LogQuery{Type: worker.LogStdout})
	if err != nil || len(page.Items) != 1 || page.Items[0].Content != "hello remote" {
		t.Fatalf("logs = %+v, %v", page, err)
	}
	if list, err := rw.ListSessions(cctx, "ws-x"); err != nil || len(list) != 1 || list[0].SessionID != id {
		t.Fatalf("list = %+v, %v", list, err)
	}
	res, err := rw.Compile(cctx, worker.CompileRequest{Manifest: worker.Manifest{"type": "echo"},
		Files: []worker.File{{Path: "main.py", Content: "print(1)", Format: "text"}}, Config: worker.CompileConfig{Workspace: "ws-x"}})
	if err != nil || res.Manifest["compiled"] != true || res.Manifest["workspace"] != "ws-x" || len(res.Files) != 2 {
		t.Fatalf("compile = %+v, %v", res, err)
	}

	if err := rw.Stop(cctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.GetSessionInfo(cctx, "ws-x/nope"); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("unknown session: err = %v, want ErrSessionNotFound", err)
	}
}

// TestRemoteConfigArrivesAsSent: the worker.Config the controller fills is
// the worker.Config a Go worker receives, field for field.
func TestRemoteConfigArrivesAsSent(t *testing.T) {
	wd := newWorld(t, false)
	ctx := ctxT(t)
	got := make(chan worker.Config, 1)
	reg := worker.NewRegistry(worker.RegistryOptions{})
	w, err := worker.FromFuncs(worker.Funcs{
		Properties: worker.Properties{Name: "Recorder", SupportedTypes: []string{"rec"}},
		Sessions:   reg,
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			got <- cfg
			return cfg.ID, nil
		},
		Stop: func(ctx context.Context, id string) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := hyphaworker.Register(ctx, wd.wc, w, hyphaworker.Options{Visibility: hyphaworker.Public})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := wd.trusted.GetService(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sent := worker.Config{
		ID: "ws-x/c2", AppID: "app", Workspace: "ws-x", ClientID: "c2", ServerURL: "http://127.0.0.1:1",
		AppFilesBaseURL: "http://127.0.0.1:1/ws-x/artifacts/app/files", Token: "tok", EntryPoint: "main.py",
		ArtifactID: "ws-x/app", Timeout: 1500 * time.Millisecond, DisableSSL: true,
		Manifest: worker.Manifest{"type": "rec", "name": "n", "nested": map[string]any{"k": int64(1)}},
		Extra:    map[string]any{"env": map[string]any{"A": "1"}},
	}
	if _, err := hyphaworker.Remote(svc).Start(worker.WithCaller(ctx, worker.Caller{Workspace: "ws-x"}), sent); err != nil {
		t.Fatal(err)
	}
	recv := <-got
	recv.ProgressCallback, recv.ProgressFunc = nil, nil
	if d := cmp.Diff(sent, recv, cmp.Comparer(func(a, b worker.ProgressFunc) bool { return (a == nil) == (b == nil) })); d != "" {
		t.Fatalf("config (-sent +received):\n%s", d)
	}
}

func testWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
