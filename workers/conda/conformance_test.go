package conda

import (
	"testing"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
)

// The worker conformance suite (worker/workertest) through the real
// adapter and server, with real kernels on environments made by the fake
// conda. A conda session never completes by itself; one fails when its
// kernel dies.
func TestConformance(t *testing.T) {
	conda := fakeConda(t)
	cache := testserver.SharedTempDir(t)
	workertest.Run(t, workertest.Options{
		New: func(tb testing.TB) worker.Worker {
			return New(Options{CondaPath: conda, CacheDir: cache, WorkDir: testserver.SharedTempDir(t), NoPipVenv: true,
				StopGrace: 2e9, Logger: testserver.Logger(t)})
		},
		Serve: workertest.App{Type: Type, EntryPoint: "main.py", Files: map[string]string{
			"main.py": "for i in range(1, 31):\n    print('line %d' % i)\n",
		}},
		Fail: &workertest.App{Type: Type, EntryPoint: "fail.py", Files: map[string]string{
			// The entry point returns; the kernel dies a moment later.
			"fail.py": "import os, threading\nthreading.Timer(0.5, os._exit, (3,)).start()\n",
		}},
		IgnoreGoroutines: []string{localproc.SpawnerFunction},
	})
}
