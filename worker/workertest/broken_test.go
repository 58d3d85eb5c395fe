package workertest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
)

// brokenEnv selects, in a child test process, the broken worker that
// TestBrokenWorker runs the suite on.
const brokenEnv = "WORKERTEST_BROKEN"

// TestSuiteCatchesBrokenWorkers runs the suite, in a child process of the
// test binary, on workers that each break one rule, and checks that the
// suite fails them in the subtest that owns that rule (and says why).
func TestSuiteCatchesBrokenWorkers(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in the child process")
	}
	for _, c := range []struct {
		broken, subtest, says string
	}{
		{"stop-unknown-fails", "idempotent-stop", "stop of an unknown session"},
		{"leaks-goroutine", "no-leaks", "goroutines left"},
		{"leaks-process", "no-leaks", "processes started during the suite"},
		{"keeps-closed-workspace", "close-workspace", "listed after close_workspace"},
	} {
		t.Run(c.broken, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestBrokenWorker$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+c.broken)
			out, err := cmd.CombinedOutput()
			s := string(out)
			if err == nil {
				t.Fatalf("the suite passed a worker that %s:\n%s", c.broken, s)
			}
			if !strings.Contains(s, "--- FAIL: TestBrokenWorker/"+c.subtest) || !strings.Contains(s, c.says) {
				t.Fatalf("want a failure of subtest %s saying %q:\n%s", c.subtest, c.says, s)
			}
		})
	}
}

// TestBrokenWorker runs the suite on the broken worker named by brokenEnv
// (only in the child process of TestSuiteCatchesBrokenWorkers).
func TestBrokenWorker(t *testing.T) {
	broken := os.Getenv(brokenEnv)
	if broken == "" {
		t.Skip("run by TestSuiteCatchesBrokenWorkers")
	}
	inner := memoryWorker(30)
	var stray *exec.Cmd
	f := worker.Funcs{
		Properties: inner.Properties(),
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			switch broken {
			case "leaks-goroutine":
				go func() { select {} }()
			case "leaks-process":
				if stray == nil {
					stray = exec.Command("sleep", "300")
					_ = stray.Start()
				}
			}
			return inner.Start(ctx, cfg)
		},
		Stop: func(ctx context.Context, id string) error {
			if broken == "stop-unknown-fails" && strings.HasSuffix(id, "/no-such-session") {
				return errors.New("no such session")
			}
			return inner.Stop(ctx, id)
		},
		ListSessions:     inner.ListSessions,
		GetSessionInfo:   inner.GetSessionInfo,
		GetLogs:          inner.GetLogs,
		PrepareWorkspace: inner.PrepareWorkspace,
		CloseWorkspace: func(ctx context.Context, ws string) error {
			if broken == "keeps-closed-workspace" {
				return nil
			}
			return inner.CloseWorkspace(ctx, ws)
		},
	}
	w, err := worker.FromFuncs(f)
	if err != nil {
		t.Fatal(err)
	}
	workertest.Run(t, workertest.Options{
		New:   func(testing.TB) worker.Worker { return w },
		Serve: workertest.App{Type: "mem-serve", EntryPoint: "main"},
		// Short: the stray process of leaks-process is waited for this long.
		Timeout: 3 * time.Second,
	})
	if stray != nil {
		_ = stray.Process.Kill()
		_ = stray.Wait()
	}
}
