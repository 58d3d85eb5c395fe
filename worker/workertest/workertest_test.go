package workertest_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memoryWorker runs "apps" in memory: a session of type mem-serve prints
// its numbered lines and runs until stopped; mem-complete completes and
// mem-fail fails at once. It is the smallest worker that passes the suite.
func memoryWorker(lines int) worker.Worker {
	reg := worker.NewRegistry(worker.RegistryOptions{})
	w, err := worker.FromFuncs(worker.Funcs{
		Properties: worker.Properties{
			Name: "Memory Worker", SupportedTypes: []string{"mem-serve", "mem-complete", "mem-fail"}, RequireContext: true,
		},
		Sessions: reg,
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			rep := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{})
			defer rep.Close(ctx)
			rep.Info("starting " + cfg.ID)
			s, err := reg.CreateFromConfig(cfg, nil)
			if err != nil {
				return "", err
			}
			switch cfg.Manifest.Type() {
			case "mem-serve":
				for i := 1; i <= lines; i++ {
					s.Log(worker.LogStdout, "line "+strconv.Itoa(i))
				}
				if err := s.SetStatus(worker.StatusRunning); err != nil {
					return "", err
				}
			case "mem-complete":
				if err := s.SetStatus(worker.StatusRunning); err != nil {
					return "", err
				}
				s.SetExitCode(0)
				_ = s.SetStatus(worker.StatusCompleted)
			default:
				if err := s.SetStatus(worker.StatusRunning); err != nil {
					return "", err
				}
				_ = s.Fail(errors.New("the app failed"))
			}
			rep.Success("started")
			return s.ID(), nil
		},
		Stop: func(ctx context.Context, id string) error { return reg.StopSession(ctx, id, nil) },
	})
	if err != nil {
		panic(err)
	}
	return w
}

func TestMemoryWorkerConforms(t *testing.T) {
	workertest.Run(t, workertest.Options{
		New:      func(testing.TB) worker.Worker { return memoryWorker(30) },
		Serve:    workertest.App{Type: "mem-serve", EntryPoint: "main"},
		Complete: &workertest.App{Type: "mem-complete", EntryPoint: "main"},
		Fail:     &workertest.App{Type: "mem-fail", EntryPoint: "main"},
	})
}
