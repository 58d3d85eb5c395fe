//go:build linux && !(386 || arm)

package localproc

import "syscall"

// sysSetresuid is the setresuid with 32-bit uids.
const sysSetresuid = syscall.SYS_SETRESUID
