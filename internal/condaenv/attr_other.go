//go:build !linux

package condaenv

import "syscall"

// solverAttr: its own process group (no parent-death signal here).
func solverAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
