package process

import "github.com/hypha-go/hypha/internal/localproc"

// The local process machinery (per-session uids, supervisors, output
// pumping, stop with grace) lives in internal/localproc, shared with the
// other workers that run local processes. These names stay here for the
// programs and tests that use them through this package.

// MaybeSupervise runs the per-session supervisor and exits when the
// process was started as one; otherwise it returns at once. Every program
// that runs the process worker calls it first thing in main (and test
// binaries in TestMain). See localproc.MaybeSupervise.
func MaybeSupervise() { localproc.MaybeSupervise() }

// SpawnerFunction names the goroutine that starts every session process
// and lives as long as the program, for goleak.IgnoreTopFunction.
const SpawnerFunction = localproc.SpawnerFunction

// The default per-session uid range (see localproc.DefaultAppUIDBase).
const (
	DefaultAppUIDBase  = localproc.DefaultAppUIDBase
	DefaultAppUIDCount = localproc.DefaultAppUIDCount
)

// The shared app users, where per-session uids are not available.
const (
	DedicatedAppUser = localproc.DedicatedAppUser
	FallbackAppUser  = localproc.FallbackAppUser
)

// ErrAppUIDs marks a bad per-session uid range.
var ErrAppUIDs = localproc.ErrAppUIDs

// ParseUIDRange parses "START-END" (inclusive) or "START+COUNT".
func ParseUIDRange(s string) (base, count int, err error) { return localproc.ParseUIDRange(s) }
