package browser

import (
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
)

// servePage logs the numbered lines to the console and stays open. A page
// never ends by itself, so the suite's Complete and Fail apps are not given.
const servePage = `<!doctype html><html><body><script>
for (let i = 1; i <= 30; i++) console.log("line " + i);
</script></body></html>`

// The worker conformance suite (worker/workertest) through the real adapter
// and server, with the real Chromium: the page's console lines are the
// numbered lines (type console, "[log] line N"), and the page is loaded by
// URL with the token in its query.
func TestConformance(t *testing.T) {
	needChromium(t)
	workertest.Run(t, workertest.Options{
		New: func(tb testing.TB) worker.Worker {
			return New(Options{Logger: testserver.Logger(tb)})
		},
		Serve:        workertest.App{Type: TypeWindow, EntryPoint: "index.html", Files: map[string]string{"index.html": servePage}},
		LogType:      LogConsole,
		LinePrefix:   "[log] ",
		TokenInQuery: true,
	})
}
