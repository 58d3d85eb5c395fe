//go:build !unix

package localproc

import (
	"errors"
	"io/fs"
	"syscall"
)

const canSwitchUser = false

func owner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

func closeInheritedFDs() {}

// The process worker needs process groups; elsewhere New works but Start
// fails with ErrWorkerNotAvailable.
const supported = false

var (
	sigTerm = syscall.Signal(15)
	sigKill = syscall.Signal(9)
)

func sysProcAttr(runAs) *syscall.SysProcAttr { return nil }

func signalGroup(pgid int, sig syscall.Signal) error {
	return errors.New("process groups are not supported on this platform")
}

func ttyProcAttr(runAs) *syscall.SysProcAttr { return nil }
