package localproc

import (
	"os"
	"sync/atomic"
	"syscall"
)

// SupervisorArg is the argument that makes the running binary act as a
// session supervisor (see MaybeSupervise); it shows in the supervisors'
// command lines ("hypha-supervisor __hypha_supervise").
const SupervisorArg = "__hypha_supervise"

// supervisorHook is set once the program has called MaybeSupervise: only
// then may the worker re-execute its own binary as a supervisor.
var supervisorHook atomic.Bool

// MaybeSupervise runs the per-session supervisor and exits when the
// process was started as one by a Runner; otherwise it returns at once and
// records that the running binary can be re-executed as a supervisor.
// Every program that runs a worker using this package calls it first
// thing in main (and test binaries in TestMain); workers/process forwards
// it as process.MaybeSupervise. Without it, sessions run without a
// supervisor, and a process an app detaches (setsid, double fork) can
// outlive its session when the worker does not run as root or is killed
// (Setup logs a warning).
//
// The supervisor (Linux only) is a child subreaper between the worker and
// the app: processes the app leaves behind are reparented to it, and it
// kills its whole subtree when the app's main process ends, when the
// worker stops the session, or when the worker dies (its parent-death
// signal), then removes the working directory if the worker could not.
// See docs/workers.md ("How sessions end").
func MaybeSupervise() {
	if len(os.Args) >= 2 && os.Args[1] == SupervisorArg {
		os.Exit(superviseMain())
	}
	supervisorHook.Store(true)
}

// supervisorConfig is what the worker tells a supervisor, as JSON on
// descriptor 3.
type supervisorConfig struct {
	Path string   `json:"path"` // the interpreter
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"` // the working directory, removed if the worker dies
	// SwitchUser runs the app as UID/GID with no supplementary groups.
	SwitchUser bool `json:"switch_user"`
	UID        int  `json:"uid"`
	GID        int  `json:"gid"`
	// KillUID: the uid is the session's own; every process of it is the
	// session's (setsid escapees of another subtree included).
	KillUID bool `json:"kill_uid"`
	// TTY: the app's stdin (also its stdout and stderr) is a terminal,
	// which becomes its controlling terminal: the app leads a session of
	// its own (setsid) instead of only a process group.
	TTY bool `json:"tty"`
	// PIDNamespace: the supervisor is the first process (pid 1) of a PID
	// namespace of its own (in a user namespace of its own too when the
	// worker is not root). Nothing of the session can then signal it, and
	// the kernel kills every process of the session when it ends, however
	// it ends.
	PIDNamespace bool `json:"pid_namespace"`
}

// Signals from the worker to its supervisor. The supervisor learns that
// the worker is gone from its lifeline, a pipe whose write end only the
// worker holds (end of file when the worker dies), not from a signal:
// that works across PID namespaces, and nobody can fake it.
const (
	supStop = syscall.SIGTERM // SIGTERM to the whole subtree; the end when the app exits
	supKill = syscall.SIGINT  // SIGKILL to the whole subtree now
)

// appExit is how an app's main process ended.
type appExit struct {
	code int    // exit code; -1 when killed by a signal or unknown
	desc string // "exited with code N", "ended: signal: killed", ...
	err  error  // set when the end could not be observed
}
