//go:build linux

package condaenv

import "syscall"

// solverAttr: its own process group, and SIGKILL when the worker dies.
func solverAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
