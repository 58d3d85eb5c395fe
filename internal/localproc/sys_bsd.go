//go:build unix && !linux

package localproc

import "syscall"

// sysProcAttr puts the child in its own process group and runs it as the
// app user when u says so. There is no parent-death signal outside Linux.
func sysProcAttr(u runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if u.switchUser {
		a.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}
	}
	return a
}

// closeInheritedFDs marks descriptors 3..1023 close-on-exec (see the Linux
// version for why).
func closeInheritedFDs() {
	for fd := 3; fd < 1024; fd++ {
		syscall.CloseOnExec(fd)
	}
}

// ttyProcAttr is sysProcAttr for a program on a terminal: a session of its
// own with descriptor 0 as its controlling terminal.
func ttyProcAttr(u runAs) *syscall.SysProcAttr {
	a := sysProcAttr(u)
	a.Setpgid = false
	a.Setsid, a.Setctty, a.Ctty = true, true, 0
	return a
}
