package browser

import "syscall"

// browserProcAttr: Chromium dies with the worker and has a process group
// of its own (see launch).
func browserProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
