//go:build linux && (386 || arm)

package process

import "syscall"

// sysSetresuid is the setresuid with 32-bit uids.
const sysSetresuid = syscall.SYS_SETRESUID32
