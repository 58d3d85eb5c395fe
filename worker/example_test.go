package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hypha-go/hypha/worker"
)

// EchoWorker is a worker in the class style: it embeds worker.Base, which
// answers list_sessions, get_session_info, get_logs, prepare_workspace and
// close_workspace from its registry, and adds Properties, Start and Stop.
type EchoWorker struct {
	worker.Base
}

func NewEchoWorker() *EchoWorker {
	w := &EchoWorker{}
	w.Base = worker.Base{Sessions: worker.NewRegistry(worker.RegistryOptions{}), Stopper: w}
	return w
}

func (w *EchoWorker) Properties() worker.Properties {
	return worker.Properties{
		Name:           "Echo Worker",
		Description:    "Echoes the app name into its logs",
		SupportedTypes: []string{"echo"},
		RequireContext: true,
	}
}

func (w *EchoWorker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	// Progress never blocks Start, even if the remote callback is slow.
	progress := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{})
	defer progress.Close(ctx)

	s, err := w.Sessions.CreateFromConfig(cfg, nil)
	if err != nil {
		return "", err
	}
	progress.Info("Starting session " + s.ID())
	if cfg.Manifest.Name() == "" {
		err := errors.New("manifest has no name")
		progress.Error(err.Error())
		return "", w.Sessions.Discard(s, err)
	}
	s.Log(worker.LogStdout, "hello from "+cfg.Manifest.Name())
	if err := s.SetStatus(worker.StatusRunning); err != nil {
		return "", err // stopped while starting
	}
	progress.Success("Session started")
	return s.ID(), nil
}

func (w *EchoWorker) Stop(ctx context.Context, sessionID string) error {
	return w.Sessions.StopSession(ctx, sessionID, func(ctx context.Context, s *worker.Session) error {
		s.Log(worker.LogInfo, "bye") // release the session's resources here
		return nil
	})
}

// printProgress stands in for the remote progress_callback the adapter
// wraps into Config.ProgressFunc.
func printProgress(ctx context.Context, p worker.Progress) error {
	fmt.Printf("progress %s: %s\n", p.Type, p.Message)
	return nil
}

func Example_baseWorker() {
	ctx := context.Background()
	w := NewEchoWorker()

	// What the adapter does with a start() call.
	cfg, err := worker.ConfigFromMap(map[string]any{
		"id":        "ws-user-1/_rapp_quiet-owl__rlb",
		"app_id":    "hello",
		"workspace": "ws-user-1",
		"client_id": "_rapp_quiet-owl__rlb",
		"manifest":  map[string]any{"_rtype": "pydantic-model", "type": "echo", "name": "Hello"},
		"timeout":   30.0,
	})
	if err != nil {
		panic(err)
	}
	cfg.ProgressFunc = printProgress
	id, err := w.Start(ctx, cfg)
	if err != nil {
		panic(err)
	}

	info, _ := w.GetSessionInfo(ctx, id)
	fmt.Println(info.SessionID, info.Status, info.AppType)
	page, _ := w.GetLogs(ctx, id, worker.LogQuery{})
	fmt.Println(page.ToMap()["items"])

	// Another workspace cannot see the session.
	other := worker.WithCaller(ctx, worker.Caller{Workspace: "ws-user-2"})
	_, err = w.GetSessionInfo(other, id)
	fmt.Println(err)

	fmt.Println(w.Stop(ctx, id), w.Stop(ctx, id)) // idempotent
	// Output:
	// progress info: Starting session ws-user-1/_rapp_quiet-owl__rlb
	// progress success: Session started
	// ws-user-1/_rapp_quiet-owl__rlb running echo
	// [map[content:hello from Hello type:stdout]]
	// session not found: ws-user-1/_rapp_quiet-owl__rlb
	// <nil> <nil>
}

func Example_funcs() {
	ctx := context.Background()
	sessions := worker.NewRegistry(worker.RegistryOptions{})

	w, err := worker.FromFuncs(worker.Funcs{
		Properties: worker.Properties{Name: "Upper Worker", SupportedTypes: []string{"upper"}},
		Sessions:   sessions, // backs list_sessions, get_session_info, get_logs, close_workspace
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			s, err := sessions.CreateFromConfig(cfg, nil)
			if err != nil {
				return "", err
			}
			return s.ID(), s.SetStatus(worker.StatusRunning)
		},
		Stop: func(ctx context.Context, sessionID string) error {
			return sessions.StopSession(ctx, sessionID, nil)
		},
		Execute: func(ctx context.Context, req worker.ExecuteRequest) (any, error) {
			s, err := sessions.LookupFor(ctx, req.SessionID)
			if err != nil {
				return nil, err
			}
			out := strings.ToUpper(req.Script)
			s.Log(worker.LogStdout, out)
			return map[string]any{"status": "ok", "outputs": []any{out}}, nil
		},
	})
	if err != nil {
		panic(err)
	}

	id, _ := w.Start(ctx, worker.Config{ID: "ws/c1", Workspace: "ws", ClientID: "c1"})
	if exec, ok := worker.AsExecutor(w); ok {
		res, _ := exec.Execute(ctx, worker.ExecuteRequest{SessionID: id, Script: "hello"})
		fmt.Println(res)
	}
	_, canCompile := worker.AsCompiler(w)
	fmt.Println("compile:", canCompile)

	page, _ := w.GetLogs(ctx, id, worker.LogQuery{Type: worker.LogStdout})
	fmt.Println(page.ToMap())

	fmt.Println(w.CloseWorkspace(ctx, "ws"), sessions.Len())
	// Output:
	// map[outputs:[HELLO] status:ok]
	// compile: false
	// map[dropped:0 first_offset:0 items:[map[content:HELLO type:stdout]] limit:<nil> missed:0 next_offset:1 offset:0 status:running total:1]
	// <nil> 0
}
