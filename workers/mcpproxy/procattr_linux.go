package mcpproxy

import "syscall"

// procAttr: a process group of its own (so close kills the server and its
// children), and SIGKILL when the worker's thread that started it dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
