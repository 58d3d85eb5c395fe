package localproc

import (
	"fmt"
	"os"
	"os/exec"
)

// child is a session's app as the worker sees it: either started directly
// by the worker (directChild) or through a per-session supervisor
// (supervisedChild, Linux, see MaybeSupervise).
type child interface {
	// pid is the app's main process, leader of its own process group.
	pid() int
	// terminate asks every process of the session to end (SIGTERM).
	terminate()
	// kill ends every process of the session now (SIGKILL).
	kill()
	// wait returns once the app's main process ended and whatever it left
	// in its process group (or, supervised, in its whole subtree) was
	// killed. It is called once.
	wait() appExit
}

// directChild is the app started by the worker itself: a stop reaches its
// process group (and, with a uid of its own, every process of the uid);
// a process that left the group survives a non-root worker, and only the
// main process dies with the worker (Pdeathsig).
type directChild struct {
	cmd *exec.Cmd
	uid int // the session's own uid, 0 when it has none
}

func (c *directChild) pid() int { return c.cmd.Process.Pid }

func (c *directChild) terminate() {
	_ = signalGroup(c.pid(), sigTerm)
	if c.uid > 0 {
		// Also the processes that left the group: the uid is the
		// session's alone.
		_ = signalUID(c.uid, sigTerm)
	}
}

func (c *directChild) kill() { _ = signalGroup(c.pid(), sigKill) }

func (c *directChild) wait() appExit {
	werr := c.cmd.Wait()
	// Children left in the group would be orphans: kill them now. The group
	// id cannot be reused while any member is alive.
	_ = signalGroup(c.pid(), sigKill)
	ps := c.cmd.ProcessState
	if ps == nil {
		return appExit{code: -1, desc: describeExit(ps, werr), err: werr}
	}
	return appExit{code: ps.ExitCode(), desc: describeExit(ps, werr)}
}

// startDirect starts the app as the worker's own child.
func startDirect(cmd *exec.Cmd, uid int) (child, error) {
	if err := startCmd(cmd); err != nil {
		return nil, err
	}
	return &directChild{cmd: cmd, uid: uid}, nil
}

// describeExit renders an exit: "exited with code N" or "killed by signal X".
func describeExit(ps *os.ProcessState, err error) string {
	if ps == nil {
		return fmt.Sprintf("failed: %v", err)
	}
	if code := ps.ExitCode(); code >= 0 {
		return fmt.Sprintf("exited with code %d", code)
	}
	return "ended: " + ps.String() // e.g. "signal: killed"
}
