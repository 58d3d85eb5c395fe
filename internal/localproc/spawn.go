package localproc

import (
	"os/exec"
	"runtime"
	"sync"
)

// Children are started from one OS thread that lives as long as the worker.
//
// Their parent-death signal (Pdeathsig, see sysProcAttr) fires when the
// thread that forked them exits, not when the process does. The Go runtime
// ends a thread when a goroutine locked to it returns, which signalUID does
// on purpose (its thread has dropped to a session's uid and must not run
// anything else). Had a session's process been forked from that thread, it
// would be killed at another session's end. Forking every child from a
// thread that is locked for good and never exits keeps Pdeathsig meaning
// "the worker process died".
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// startCmd is cmd.Start on the spawner thread.
func startCmd(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go spawnerLoop(spawner.reqs)
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// StartOnSpawner is cmd.Start on the spawner thread, for other processes a
// worker runs (a conda solver, say) whose parent-death signal must mean
// "the worker died", not "some thread of it ended".
func StartOnSpawner(cmd *exec.Cmd) error { return startCmd(cmd) }

// SpawnerFunction is the function of the spawner goroutine, which lives as
// long as the process: leak checks (goleak.IgnoreTopFunction) name it.
const SpawnerFunction = "github.com/hypha-go/hypha/internal/localproc.spawnerLoop"

func spawnerLoop(reqs <-chan spawnReq) {
	runtime.LockOSThread() // never unlocked: the thread lives with the process
	for r := range reqs {
		r.done <- r.cmd.Start()
	}
}

// runCmd is cmd.Run with the start on the spawner thread.
func runCmd(cmd *exec.Cmd) error {
	if err := startCmd(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}
