package terminal

import (
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
)

// serveScript prints the numbered lines on the terminal and stays.
const serveScript = `i=1
while [ $i -le 30 ]; do printf 'line %d\n' $i; i=$((i+1)); done
exec sleep 600
`

// The worker conformance suite (worker/workertest) through the real
// adapter and server: the entry point is fetched into the session's
// working directory and run by the startup command on the session's pty;
// its lines reach the log as stdout.
func TestConformance(t *testing.T) {
	workertest.Run(t, workertest.Options{
		New: func(tb testing.TB) worker.Worker {
			return New(Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(tb)})
		},
		Serve: workertest.App{Type: Type, EntryPoint: "main.sh", Files: map[string]string{"main.sh": serveScript},
			Manifest: map[string]any{"startup_command": "sh main.sh"}},
		Complete: &workertest.App{Type: Type, EntryPoint: "ok.sh", Files: map[string]string{"ok.sh": "echo done\n"},
			Manifest: map[string]any{"startup_command": "sh ok.sh"}},
		Fail: &workertest.App{Type: Type, EntryPoint: "fail.sh", Files: map[string]string{"fail.sh": "exit 3\n"},
			Manifest: map[string]any{"startup_command": "sh fail.sh"}},
		IgnoreGoroutines: []string{SpawnerFunction},
	})
}
