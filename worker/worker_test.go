package worker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPropertiesValidate(t *testing.T) {
	ok := Properties{Name: "My Worker", SupportedTypes: []string{"t"}}
	tests := []struct {
		name    string
		mod     func(p *Properties)
		wantErr string
	}{
		{"minimal", func(p *Properties) {}, ""},
		{"no name", func(p *Properties) { p.Name = "" }, "name is empty"},
		{"no types", func(p *Properties) { p.SupportedTypes = nil }, "supports no app types"},
		{"empty type", func(p *Properties) { p.SupportedTypes = []string{""} }, "empty app type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.mod(&p)
			err := p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if !ok.SupportsType("t") || ok.SupportsType("c") {
		t.Error("SupportsType")
	}
}

// classWorker is the embedding style used in the tests.
type classWorker struct {
	Base
	stopped []string
}

func (w *classWorker) Properties() Properties {
	return Properties{Name: "class", SupportedTypes: []string{"t"}}
}

func (w *classWorker) Start(ctx context.Context, cfg Config) (string, error) {
	s, err := w.Sessions.CreateFromConfig(cfg, nil)
	if err != nil {
		return "", err
	}
	return s.ID(), s.SetStatus(StatusRunning)
}

func (w *classWorker) Stop(ctx context.Context, id string) error {
	return w.Sessions.StopSession(ctx, id, func(context.Context, *Session) error {
		w.stopped = append(w.stopped, id)
		return nil
	})
}

func (w *classWorker) Execute(ctx context.Context, req ExecuteRequest) (any, error) {
	return "ran " + req.Script, nil
}

func newClassWorker() *classWorker {
	w := &classWorker{}
	w.Base = Base{Sessions: newTestRegistry(RegistryOptions{}), Stopper: w}
	return w
}

func startN(t *testing.T, w Worker, ids ...string) {
	t.Helper()
	for _, id := range ids {
		ws, cid, _ := strings.Cut(id, "/")
		if _, err := w.Start(context.Background(), Config{ID: id, Workspace: ws, ClientID: cid}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBaseWorker(t *testing.T) {
	w := newClassWorker()
	var _ Worker = w
	ctx := context.Background()
	startN(t, w, "ws-a/c1", "ws-a/c2", "ws-b/c3")

	infos, err := w.ListSessions(ctx, "ws-a")
	if err != nil || len(infos) != 2 {
		t.Fatalf("ListSessions = %v, %v", infos, err)
	}
	info, err := w.GetSessionInfo(ctx, "ws-a/c1")
	if err != nil || info.Status != StatusRunning {
		t.Fatalf("GetSessionInfo = %+v, %v", info, err)
	}
	w.Sessions.mustLookup(t, "ws-a/c1").Log(LogStdout, "hi")
	page, err := w.GetLogs(ctx, "ws-a/c1", LogQuery{})
	if err != nil || page.Total != 1 {
		t.Fatalf("GetLogs = %v, %v", page, err)
	}

	userB := WithCaller(ctx, Caller{Workspace: "ws-b"})
	if _, err := w.GetSessionInfo(userB, "ws-a/c1"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("foreign GetSessionInfo err = %v", err)
	}
	if _, err := w.GetLogs(userB, "ws-a/c1", LogQuery{}); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("foreign GetLogs err = %v", err)
	}
	if infos, _ := w.ListSessions(userB, "ws-a"); len(infos) != 0 {
		t.Errorf("foreign ListSessions = %v", infos)
	}
	// A foreign caller closing ws-a stops nothing.
	if err := w.CloseWorkspace(userB, "ws-a"); err != nil || w.Sessions.Len() != 3 {
		t.Errorf("foreign CloseWorkspace: %v, len %d", err, w.Sessions.Len())
	}

	if err := w.PrepareWorkspace(ctx, "ws-a"); err != nil {
		t.Error(err)
	}
	if err := w.CloseWorkspace(ctx, "ws-a"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"ws-a/c1", "ws-a/c2"}, w.stopped); d != "" {
		t.Errorf("stopped (-want +got):\n%s", d)
	}
	if err := w.StopAll(ctx); err != nil || w.Sessions.Len() != 0 {
		t.Errorf("StopAll: %v, len %d", err, w.Sessions.Len())
	}

	if e, ok := AsExecutor(w); !ok {
		t.Error("AsExecutor(class worker with Execute) = false")
	} else if got, _ := e.Execute(ctx, ExecuteRequest{Script: "x"}); got != "ran x" {
		t.Errorf("Execute = %v", got)
	}
	if _, ok := AsCompiler(w); ok {
		t.Error("AsCompiler(class worker without Compile) = true")
	}
}

func (r *Registry) mustLookup(t *testing.T, id string) *Session {
	t.Helper()
	s, err := r.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBaseEdgeCases(t *testing.T) {
	ctx := context.Background()
	var empty Base
	if infos, err := empty.ListSessions(ctx, "ws"); err != nil || infos == nil || len(infos) != 0 {
		t.Errorf("nil Sessions ListSessions = %#v, %v", infos, err)
	}
	if _, err := empty.GetSessionInfo(ctx, "ws/x"); !errors.Is(err, ErrSessionNotFound) {
		t.Error(err)
	}
	if _, err := empty.GetLogs(ctx, "ws/x", LogQuery{}); !errors.Is(err, ErrSessionNotFound) {
		t.Error(err)
	}
	if err := empty.CloseWorkspace(ctx, "ws"); err != nil {
		t.Error(err)
	}

	noStopper := Base{Sessions: newTestRegistry(RegistryOptions{})}
	mustCreate(t, noStopper.Sessions, "ws/c1")
	if err := noStopper.CloseWorkspace(ctx, "ws"); !errors.Is(err, ErrWorker) || !strings.Contains(err.Error(), "no Stopper") {
		t.Errorf("CloseWorkspace without Stopper err = %v", err)
	}

	failing := Base{Sessions: newTestRegistry(RegistryOptions{}), Stopper: StopFunc(func(ctx context.Context, id string) error {
		return errors.New("cannot stop " + id)
	})}
	mustCreate(t, failing.Sessions, "ws/c1")
	mustCreate(t, failing.Sessions, "ws/c2")
	err := failing.CloseWorkspace(ctx, "ws")
	if err == nil || !strings.Contains(err.Error(), "cannot stop ws/c1") || !strings.Contains(err.Error(), "cannot stop ws/c2") {
		t.Errorf("CloseWorkspace must try every session and join errors, got %v", err)
	}
}

func TestFromFuncs(t *testing.T) {
	ctx := context.Background()
	props := Properties{Name: "f", SupportedTypes: []string{"t"}}
	start := func(context.Context, Config) (string, error) { return "", nil }
	stop := func(context.Context, string) error { return nil }

	if _, err := FromFuncs(Funcs{Properties: props, Start: start}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("missing Stop: %v", err)
	}
	if _, err := FromFuncs(Funcs{Start: start, Stop: stop}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("invalid properties: %v", err)
	}

	w, err := FromFuncs(Funcs{Properties: props, Start: start, Stop: stop})
	if err != nil {
		t.Fatal(err)
	}
	if w.Properties().Name != "f" {
		t.Error("Properties")
	}
	for name, ok := range map[string]bool{
		MethodCompile:  func() bool { _, ok := AsCompiler(w); return ok }(),
		MethodExecute:  func() bool { _, ok := AsExecutor(w); return ok }(),
		MethodShutdown: func() bool { _, ok := AsShutdowner(w); return ok }(),
	} {
		if ok {
			t.Errorf("%s reported without a func", name)
		}
	}
	if _, err := w.(Executor).Execute(ctx, ExecuteRequest{}); !errors.Is(err, ErrNotSupported) || err.Error() != "not supported by this worker: execute" {
		t.Errorf("unsupported Execute err = %v", err)
	}
	if _, err := w.GetSessionInfo(ctx, "ws/x"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("no registry GetSessionInfo: %v", err)
	}

	// With a registry and optional funcs.
	reg := newTestRegistry(RegistryOptions{})
	var stopped []string
	w, err = FromFuncs(Funcs{
		Properties: props,
		Sessions:   reg,
		Start: func(ctx context.Context, cfg Config) (string, error) {
			s, err := reg.CreateFromConfig(cfg, nil)
			if err != nil {
				return "", err
			}
			return s.ID(), s.SetStatus(StatusRunning)
		},
		Stop: func(ctx context.Context, id string) error {
			stopped = append(stopped, id)
			return reg.StopSession(ctx, id, nil)
		},
		Compile: func(ctx context.Context, req CompileRequest) (CompileResult, error) {
			return CompileResult{Manifest: req.Manifest, Files: req.Files}, nil
		},
		Execute:  func(ctx context.Context, req ExecuteRequest) (any, error) { return req.Script, nil },
		Shutdown: func(ctx context.Context) error { return nil },
		GetLogs: func(ctx context.Context, id string, q LogQuery) (LogPage, error) {
			return LogPage{Query: q, Total: 42}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	startN(t, w, "ws/c1", "ws/c2", "other/c3")
	if infos, _ := w.ListSessions(ctx, "ws"); len(infos) != 2 {
		t.Errorf("ListSessions = %v", infos)
	}
	if info, err := w.GetSessionInfo(ctx, "ws/c1"); err != nil || info.Status != StatusRunning {
		t.Errorf("GetSessionInfo = %+v, %v", info, err)
	}
	if page, _ := w.GetLogs(ctx, "ws/c1", LogQuery{}); page.Total != 42 {
		t.Error("GetLogs func not used")
	}
	if err := w.CloseWorkspace(ctx, "ws"); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"ws/c1", "ws/c2"}, stopped); d != "" {
		t.Errorf("CloseWorkspace stopped (-want +got):\n%s", d)
	}
	c, ok := AsCompiler(w)
	if !ok {
		t.Fatal("AsCompiler = false")
	}
	if res, err := c.Compile(ctx, CompileRequest{Manifest: Manifest{"type": "t"}}); err != nil || res.Manifest.Type() != "t" {
		t.Errorf("Compile = %+v, %v", res, err)
	}
	if _, ok := AsExecutor(w); !ok {
		t.Error("AsExecutor = false")
	}
	if s, ok := AsShutdowner(w); !ok || s.Shutdown(ctx) != nil {
		t.Error("AsShutdowner")
	}
}

func TestFuncsOverrides(t *testing.T) {
	ctx := context.Background()
	var called []string
	note := func(name string) { called = append(called, name) }
	w, err := FromFuncs(Funcs{
		Properties: Properties{Name: "f", SupportedTypes: []string{"t"}},
		Start:      func(context.Context, Config) (string, error) { note("start"); return "id", nil },
		Stop:       func(context.Context, string) error { note("stop"); return nil },
		ListSessions: func(context.Context, string) ([]SessionInfo, error) {
			note("list")
			return nil, nil
		},
		GetSessionInfo: func(context.Context, string) (SessionInfo, error) {
			note("info")
			return SessionInfo{}, nil
		},
		PrepareWorkspace: func(context.Context, string) error { note("prepare"); return nil },
		CloseWorkspace:   func(context.Context, string) error { note("close"); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Start(ctx, Config{})
	_ = w.Stop(ctx, "id")
	_, _ = w.ListSessions(ctx, "ws")
	_, _ = w.GetSessionInfo(ctx, "id")
	_ = w.PrepareWorkspace(ctx, "ws")
	_ = w.CloseWorkspace(ctx, "ws")
	if d := cmp.Diff([]string{"start", "stop", "list", "info", "prepare", "close"}, called); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := w.(Compiler).Compile(ctx, CompileRequest{}); !errors.Is(err, ErrNotSupported) {
		t.Error(err)
	}
	if err := w.(Shutdowner).Shutdown(ctx); !errors.Is(err, ErrNotSupported) {
		t.Error(err)
	}
	if !w.(MethodSupporter).SupportsMethod("get_logs") {
		t.Error("non-optional methods are always supported")
	}
}
