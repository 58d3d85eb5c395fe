package bench

import (
	"os"
	"testing"

	"github.com/hypha-go/hypha/workers/process"
)

// The sessions benchmark runs the process worker: its sessions run under
// supervisors, which are this test binary re-executed.
func TestMain(m *testing.M) {
	process.MaybeSupervise()
	os.Exit(m.Run())
}
