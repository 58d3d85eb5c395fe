package process

import (
	"os/exec"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
)

// The worker conformance suite (worker/workertest), once per app type,
// through the real adapter and server, with real interpreters.

const pyServe = `import time
for i in range(1, 31):
    print("line %d" % i, flush=True)
time.sleep(600)
`

const nodeServe = `for (let i = 1; i <= 30; i++) console.log("line " + i);
setInterval(() => {}, 1 << 30);
`

func conformanceOptions(t *testing.T) workertest.Options {
	return workertest.Options{
		New: func(testing.TB) worker.Worker {
			return New(Options{WorkDir: testserver.SharedTempDir(t), StopGrace: 2e9, Logger: testserver.Logger(t)})
		},
		IgnoreGoroutines: []string{SpawnerFunction},
	}
}

func TestConformancePythonEval(t *testing.T) {
	needPython(t)
	o := conformanceOptions(t)
	o.Serve = workertest.App{Type: TypePython, EntryPoint: "main.py", Files: map[string]string{"main.py": pyServe}}
	o.Complete = &workertest.App{Type: TypePython, EntryPoint: "ok.py", Files: map[string]string{"ok.py": "print('done')\n"}}
	o.Fail = &workertest.App{Type: TypePython, EntryPoint: "fail.py", Files: map[string]string{"fail.py": "import sys\nsys.exit(3)\n"}}
	workertest.Run(t, o)
}

func TestConformanceNodeEval(t *testing.T) {
	_, err := exec.LookPath("node")
	testserver.NeedOrSkip(t, err == nil, "node")
	o := conformanceOptions(t)
	o.Serve = workertest.App{Type: TypeNode, EntryPoint: "main.js", Files: map[string]string{"main.js": nodeServe}}
	o.Complete = &workertest.App{Type: TypeNode, EntryPoint: "ok.js", Files: map[string]string{"ok.js": "console.log('done')\n"}}
	o.Fail = &workertest.App{Type: TypeNode, EntryPoint: "fail.js", Files: map[string]string{"fail.js": "process.exit(3)\n"}}
	workertest.Run(t, o)
}
