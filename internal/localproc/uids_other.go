//go:build !linux

package localproc

import (
	"errors"
	"log/slog"
	"syscall"
)

// Outside Linux there is no /proc to find a uid's processes: a root worker
// runs every session as the one app user (see appUser).
const perSessionUIDs = false

func uidProcs(int) []int { return nil }

func signalUID(int, syscall.Signal) error { return errors.New("not supported on this platform") }

type uidLocker struct{}

func openUIDLocker(*slog.Logger) uidLocker { return uidLocker{} }
func (uidLocker) tryLock(int) bool         { return true }
func (uidLocker) unlock(int)               {}
func (uidLocker) close()                   {}

func removeUIDFiles(func(int) bool, *slog.Logger) int { return 0 }

func rangeProcUIDs(int, int) []int { return nil }

func removeStaleWorkDirs(string, func(int) bool, *slog.Logger) int { return 0 }
