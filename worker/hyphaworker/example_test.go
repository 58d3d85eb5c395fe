package hyphaworker_test

import (
	"context"
	"os"
	"os/signal"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// A worker made of functions, served until Ctrl+C; then every session is
// stopped and the service unregistered.
func ExampleServe() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	sessions := worker.NewRegistry(worker.RegistryOptions{})
	w, err := worker.FromFuncs(worker.Funcs{
		Properties: worker.Properties{Name: "Hello Worker", SupportedTypes: []string{"hello"}},
		Sessions:   sessions,
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			s, err := sessions.CreateFromConfig(cfg, nil)
			if err != nil {
				return "", err
			}
			s.Log(worker.LogStdout, "hello "+cfg.Manifest.Name())
			return s.ID(), s.SetStatus(worker.StatusRunning)
		},
		Stop: func(ctx context.Context, id string) error { return sessions.StopSession(ctx, id, nil) },
	})
	if err != nil {
		panic(err)
	}
	client, err := rpc.Connect(ctx, rpc.Config{
		ServerURL: os.Getenv("HYPHA_SERVER_URL"), Token: os.Getenv("HYPHA_TOKEN"), Workspace: os.Getenv("HYPHA_WORKSPACE"),
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	if err := hyphaworker.Serve(ctx, client, w, hyphaworker.Options{Visibility: hyphaworker.Protected}); err != nil {
		panic(err)
	}
}
