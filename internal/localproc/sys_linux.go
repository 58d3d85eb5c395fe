//go:build linux

package localproc

import (
	"os"
	"strconv"
	"syscall"
)

// sysProcAttr puts the child in its own process group (so a stop can signal
// everything it spawned), runs it as the app user when u says so, and asks
// the kernel to SIGKILL it if the worker dies without stopping it.
// Pdeathsig fires when the forking OS thread exits: every child is forked
// from the spawner thread (spawn.go), which never exits, so this means
// "when the worker process dies". It reaches only the direct child; grandchildren are
// reached through the process group by Stop and Shutdown. (The kernel clears
// the parent-death signal on a change of user; Go sets it after setuid, so
// it holds for the app user too.)
func sysProcAttr(u runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if u.switchUser {
		// Groups empty: no supplementary groups (setgroups(0)).
		a.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}
	}
	return a
}

// closeInheritedFDs marks every descriptor above 2 close-on-exec, so that
// an app gets only stdin, stdout and stderr. Go opens its own descriptors
// close-on-exec, but the worker may have inherited open ones from whoever
// started it (a shell redirection, a service manager, a secrets pipe).
func closeInheritedFDs() {
	const closeRangeCloexec = 1 << 2 // CLOSE_RANGE_CLOEXEC, Linux 5.11
	const sysCloseRange = 436
	if _, _, e := syscall.Syscall(sysCloseRange, 3, uintptr(^uint32(0)), closeRangeCloexec); e == 0 {
		return
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// ttyProcAttr is sysProcAttr for a program on a terminal: a session of its
// own (whose group is its own too) with descriptor 0, the terminal, as its
// controlling terminal.
func ttyProcAttr(u runAs) *syscall.SysProcAttr {
	a := sysProcAttr(u)
	a.Setpgid = false
	a.Setsid, a.Setctty, a.Ctty = true, true, 0
	return a
}
