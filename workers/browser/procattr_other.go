//go:build !linux

package browser

import "syscall"

// browserProcAttr: a process group of its own (see launch); there is no
// parent-death signal outside Linux, so a worker killed outright leaves its
// browser running there.
func browserProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
