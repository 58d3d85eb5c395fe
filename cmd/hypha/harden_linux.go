//go:build linux

package main

import (
	"log/slog"
	"syscall"
)

// harden makes the process non-dumpable: processes of the same user
// (app code, when the server is not root) can then neither ptrace it nor
// read its /proc/<pid>/environ, mem, maps or fd, which hold or lead to the
// secrets in its memory. It also disables core dumps of it.
func harden(log *slog.Logger) {
	if !ownsProcess {
		return
	}
	const prSetDumpable = 4
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); e != 0 {
		log.Warn("could not make the process non-dumpable: processes of the same user can read its memory", "err", e.Error())
	}
}
