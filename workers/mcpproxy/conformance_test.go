package mcpproxy

import (
	"testing"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
)

// The worker conformance suite (worker/workertest) through the real
// adapter and server: the app is one stdio MCP server (this test binary)
// that prints the suite's numbered lines on stderr, which the proxy logs
// as stderr entries prefixed with the server's name.
func TestConformance(t *testing.T) {
	spec := stdioSpec()
	spec["env"].(map[string]any)["MCPPROXY_TEST_LINES"] = "30"
	workertest.Run(t, workertest.Options{
		New: func(tb testing.TB) worker.Worker {
			return New(Options{AllowStdio: true, Logger: testserver.Logger(tb)})
		},
		Serve: workertest.App{Type: AppType, EntryPoint: "source", Files: map[string]string{"source": "{}"},
			Manifest: map[string]any{"mcpServers": map[string]any{"local": spec}}},
		AppToken:         true,
		LogType:          worker.LogStderr,
		LinePrefix:       "local: ",
		IgnoreGoroutines: []string{localproc.SpawnerFunction},
	})
}
