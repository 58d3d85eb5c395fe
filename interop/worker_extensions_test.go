package interop

import (
	"context"
	"errors"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// termExtWorker is a Go worker with terminal-like extension methods:
// write_terminal (read_write), peek and attach (read; attach streams what
// the session printed and what is written to it).
type termExtWorker struct {
	sessions *worker.Registry
	mu       sync.Mutex
	input    map[string][]string
	ended    chan error // the context error of every attach generator, once it ends
}

func newTermExtWorker(t *testing.T) (*termExtWorker, worker.Worker) {
	t.Helper()
	tw := &termExtWorker{sessions: worker.NewRegistry(worker.RegistryOptions{}), input: map[string][]string{}, ended: make(chan error, 8)}
	w, err := worker.FromFuncs(worker.Funcs{
		Properties: worker.Properties{Name: "Term Ext Worker", SupportedTypes: []string{"term"}},
		Sessions:   tw.sessions,
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			s, err := tw.sessions.CreateFromConfig(cfg, nil)
			if err != nil {
				return "", err
			}
			s.Log(worker.LogStdout, "$ ")
			return s.ID(), s.SetStatus(worker.StatusRunning)
		},
		Stop: func(ctx context.Context, id string) error { return tw.sessions.StopSession(ctx, id, nil) },
		Extensions: []worker.Extension{
			{Name: "write_terminal", Session: true, Permission: worker.PermissionReadWrite, Params: []string{"session_id", "data"},
				Func: func(ctx context.Context, id, data string) error {
					s, err := tw.sessions.LookupFor(ctx, id)
					if err != nil {
						return err
					}
					tw.mu.Lock()
					tw.input[id] = append(tw.input[id], data)
					tw.mu.Unlock()
					s.Log(worker.LogStdout, data)
					return nil
				}},
			{Name: "peek", Session: true, Permission: worker.PermissionRead,
				Func: func(ctx context.Context, id string) (map[string]any, error) {
					if _, err := tw.sessions.LookupFor(ctx, id); err != nil {
						return nil, err
					}
					tw.mu.Lock()
					defer tw.mu.Unlock()
					in := make([]any, 0, len(tw.input[id]))
					for _, s := range tw.input[id] {
						in = append(in, s)
					}
					return map[string]any{"session_id": id, "input": in}, nil
				}},
			{Name: "attach", Session: true, Permission: worker.PermissionRead,
				Func: func(ctx context.Context, id string) (iter.Seq2[string, error], error) {
					s, err := tw.sessions.LookupFor(ctx, id)
					if err != nil {
						return nil, err
					}
					return func(yield func(string, error) bool) {
						defer func() { tw.ended <- context.Cause(ctx) }()
						_, _ = s.Logs().Follow(ctx, 0, func(e worker.LogEntry) error {
							if !yield(e.Content, nil) {
								return errors.New("stopped")
							}
							return nil
						})
					}, nil
				}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tw, w
}

// TestJSWorkerExtensions: the npm client calls a Go worker's extension
// methods through the adapter as a member of the worker's workspace:
// a plain call, a typed answer, and an async iteration over a generator
// that the JS loop's break closes (the Go generator then ends). A
// read-only member's write, an anonymous client's read and a session of
// another workspace are refused with errors that say why, and the refused
// write changed nothing.
func TestJSWorkerExtensions(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	url := s.URL()
	ctx := ctxTimeout(t, 2*time.Minute)
	home := "ws-user-alice"
	tok := func(id string, grants map[string]auth.Permission) string {
		v, err := s.Issuer().Generate(&auth.UserInfo{ID: id, Scope: auth.Scope{CurrentWorkspace: home, Workspaces: grants}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	wc := goConnect(t, url, rpc.Config{Token: tok("alice", nil), ClientID: "alice-worker"})
	tw, w := newTermExtWorker(t)
	h, err := hyphaworker.Host(ctx, wc, w, hyphaworker.Options{Visibility: hyphaworker.Public})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Close(cctx)
	})
	root := auth.RootUser() // in public, as the apps controller connects
	root.Scope.CurrentWorkspace, root.CurrentWorkspace = "public", "public"
	rootTok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctl := goConnect(t, url, rpc.Config{Token: rootTok, Workspace: "public", ClientID: "controller"})
	svc, err := ctl.GetService(ctx, h.ServiceID)
	if err != nil {
		t.Fatal(err)
	}
	sids := map[string]string{}
	for _, ws := range []string{home, "ws-other"} {
		cfg := worker.Config{ID: ws + "/t1", Workspace: ws, ClientID: "t1", AppID: "term", Manifest: worker.Manifest{"type": "term"}}
		if sids[ws], err = hyphaworker.Remote(svc).Start(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	mine, foreign := sids[home], sids["ws-other"]

	writer := jsRun(t, "worker_extensions", url, map[string]any{
		"token": tok("writer", map[string]auth.Permission{home: auth.ReadWrite}), "workspace": home, "client_id": "js-writer",
		"service_id": h.ServiceID,
		"steps": []any{
			map[string]any{"fn": "write_terminal", "args": []any{mine, "ls\n"}},
			map[string]any{"fn": "peek", "args": []any{mine}},
			map[string]any{"fn": "attach", "args": []any{mine}, "stream": 2},
			map[string]any{"fn": "peek", "args": []any{foreign}},
		},
	})
	expect(t, "writer write_terminal", at(writer, "steps", 0, "result"), nil)
	expect(t, "writer peek", mustJSON(at(writer, "steps", 1, "result")), mustJSON(map[string]any{"session_id": mine, "input": []any{"ls\n"}}))
	expect(t, "writer attach", mustJSON(at(writer, "steps", 2)), mustJSON(map[string]any{"items": []any{"$ ", "ls\n"}, "ended": false}))
	expectContains(t, "writer peek of another workspace's session", str(writer, "steps", 3, "error", "$error"), "peek: session not found: "+foreign)
	select {
	case cause := <-tw.ended:
		if cause == nil {
			t.Fatal("the attach generator ended with its context live")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the JS loop's break did not end the Go generator")
	}

	reader := jsRun(t, "worker_extensions", url, map[string]any{
		"token": tok("reader", map[string]auth.Permission{home: auth.Read}), "workspace": home, "client_id": "js-reader",
		"service_id": h.ServiceID,
		"steps": []any{
			map[string]any{"fn": "write_terminal", "args": []any{mine, "rm -rf ~\n"}},
			map[string]any{"fn": "attach", "args": []any{mine}, "stream": 1},
		},
	})
	expectContains(t, "reader write_terminal", str(reader, "steps", 0, "error", "$error"),
		"write_terminal: permission denied: write_terminal needs read_write permission on workspace "+home)
	expect(t, "reader attach", mustJSON(at(reader, "steps", 1)), mustJSON(map[string]any{"items": []any{"$ "}, "ended": false}))

	anon := jsRun(t, "worker_extensions", url, map[string]any{
		"client_id": "js-anon", "service_id": h.ServiceID,
		"steps": []any{map[string]any{"fn": "peek", "args": []any{mine}}},
	})
	expectContains(t, "anonymous peek", str(anon, "steps", 0, "error", "$error"), "peek: permission denied: the worker serves members of workspace "+home)

	tw.mu.Lock()
	got := slices.Clone(tw.input[mine])
	tw.mu.Unlock()
	if !slices.Equal(got, []string{"ls\n"}) {
		t.Fatalf("the terminal's input = %q; the refused write must not be there", got)
	}
}
