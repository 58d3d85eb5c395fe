// Package localproc runs the processes of worker sessions on the local
// host, for every built-in worker that runs local programs (the process,
// conda and terminal workers, and the MCP proxy's stdio servers). It owns what such a worker
// must get right and should not write twice:
//
//   - who a session's processes run as: a uid of the session's own when the
//     worker is root (leased from a range, see Options.AppUIDBase), one app
//     user, or the worker's own user (see Runner.Setup);
//   - a private working directory per session, locked while the session
//     lives and removed when it ends;
//   - spawning through a per-session supervisor (MaybeSupervise): the first
//     process of a PID namespace of its own, with lifeline pipes, so that
//     nothing of a session outlives it however it ends, started from one OS
//     thread that lives as long as the worker;
//   - a minimal set of descriptors (0, 1, 2), a process group, the
//     environment exactly as the worker builds it;
//   - the output, line by line, into the session's worker.LogStore, with
//     back-pressure instead of loss while a follower reads;
//   - stop with a grace period (SIGTERM to every process of the session,
//     SIGKILL after the grace), and the app's own exit code.
//
// The package is internal: its users are the workers of this module, and
// the supervisor is a private protocol between this package and the
// program's own binary (re-executed with an argument only MaybeSupervise
// understands), which must stay free to change with each security fix. A
// worker of another module keeps its own process handling, or runs the
// process worker.
//
// Typical use (see workers/process):
//
//	r := localproc.New(localproc.Options{StopGrace: 5 * time.Second})
//	if err := r.Setup(ctx); err != nil { ... }    // once, at start-up
//	s, err := r.NewSession()                       // uid lease + working dir
//	// ... put the session's files into s.Dir() ...
//	err = s.Start(localproc.Command{Path: p, Args: args, Env: env, Logs: store, LogContext: sctx})
//	<-s.Done()                                     // or s.Stop(ctx)
//	exit := s.Exit()                               // the app's own code
package localproc

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hypha-go/hypha/worker"
)

// Defaults for Options.
const (
	DefaultStopGrace    = 5 * time.Second
	DefaultMaxLineBytes = 16 << 10
	DefaultMaxSessions  = 100
)

// Supported reports whether this platform runs sessions at all (process
// groups are needed).
const Supported = supported

// Options configures a Runner. Zero values mean the defaults.
type Options struct {
	// AppUser, when set, is the one user (name or numeric uid) every
	// session runs as when the worker runs as root; sessions can then
	// read, signal and trace each other, which is logged as a warning.
	// Empty (the default) gives each session its own uid from
	// AppUIDBase/AppUIDCount (on Linux; elsewhere DedicatedAppUser when
	// that account exists, otherwise FallbackAppUser). A user with uid 0
	// is the same as RunAsWorkerUser. Ignored, with a warning, when the
	// worker is not root.
	AppUser string
	// AppUIDBase and AppUIDCount are the range of uids (and gids: each
	// session's gid is its uid) leased to sessions, one per live session
	// (default DefaultAppUIDBase, DefaultAppUIDCount; see ParseUIDRange).
	// The first uid of the range is kept for start-up probes (Probe). The
	// range must hold no account, group or subordinate id range of the
	// host, and at least MaxSessions+1 uids: Setup refuses otherwise.
	// Every process running as a uid of the range is the runner's to kill.
	AppUIDBase, AppUIDCount int
	// RunAsWorkerUser runs sessions as the worker's own user even when it
	// is root: an explicit opt-out, logged as an error.
	RunAsWorkerUser bool
	// NoSupervisor starts sessions directly instead of through a
	// per-session supervisor (see MaybeSupervise). For comparisons only.
	NoSupervisor bool
	// NoPIDNamespace starts supervisors without a PID namespace of their
	// own; the runner falls back to this by itself, with a warning, when
	// the system refuses the namespace.
	NoPIDNamespace bool
	// MaxSessions is how many sessions may live at once (default
	// DefaultMaxSessions): the uid range must hold as many.
	MaxSessions int
	// StopGrace is how long Session.Stop waits after SIGTERM before
	// SIGKILL (default DefaultStopGrace).
	StopGrace time.Duration
	// WorkDir is the parent of the per-session working directories
	// (default os.TempDir(), or /tmp when sessions run as another user
	// and the temp dir is out of its reach).
	WorkDir string
	// MaxLineBytes bounds one log entry of a session's output; a longer
	// line is split into several entries marked partial (nothing is
	// dropped), and an info entry says so (default DefaultMaxLineBytes).
	MaxLineBytes int
	// Logger receives the runner's events; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, bool, bool) {
	uidsSet := o.AppUIDBase != 0 || o.AppUIDCount != 0
	if o.AppUIDBase == 0 {
		o.AppUIDBase = DefaultAppUIDBase
	}
	if o.AppUIDCount == 0 {
		o.AppUIDCount = DefaultAppUIDCount
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	workDirDefault := o.WorkDir == ""
	if workDirDefault {
		o.WorkDir = os.TempDir()
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, uidsSet, workDirDefault
}

// User is who a session's processes run as.
type User struct {
	// Switch: the processes run as UID/GID with no supplementary groups;
	// false means the worker's own user.
	Switch   bool
	UID, GID int
	// Name describes the user for logs and errors, e.g. "app user nobody
	// (uid 65534)" or "the per-session app uids 2000000000-2000065535".
	Name string
}

func (u runAs) export() User { return User{Switch: u.switchUser, UID: u.uid, GID: u.gid, Name: u.name} }

// Runner starts and ends the processes of sessions. Create it with New,
// call Setup once before the first session, and Close it once every
// session has ended.
type Runner struct {
	opts           Options
	appUIDsSet     bool // AppUIDBase or AppUIDCount was given
	workDirDefault bool // WorkDir was empty

	setupMu   sync.Mutex
	setupDone bool
	setupErr  error
	user      runAs    // see User
	uids      *uidPool // nil when sessions share a user
	workDir   string
	path      string

	pidNSRefused atomic.Bool // the system refused supervisors a PID namespace
}

// New returns a Runner; nothing is checked or started before Setup.
func New(opts Options) *Runner {
	o, uidsSet, wdDefault := opts.withDefaults()
	return &Runner{opts: o, appUIDsSet: uidsSet, workDirDefault: wdDefault}
}

// Options returns the options in effect (defaults applied).
func (r *Runner) Options() Options { return r.opts }

// Setup decides, once, who sessions run as, and prepares for it: the uid
// pool (which first kills what sessions of an earlier run of a dead
// worker left running, and removes their files), the working directory
// parent (checked to be reachable by the sessions' user), the PATH
// sessions get (the worker's, without the folders that user cannot
// search), and the removal of working directories nobody holds. Later
// calls return the first result. It fails only when no session can run
// (an unknown app user, a bad uid range, a working directory out of
// reach); such errors wrap worker.ErrWorkerNotAvailable.
func (r *Runner) Setup(ctx context.Context) error {
	r.setupMu.Lock()
	defer r.setupMu.Unlock()
	if r.setupDone {
		return r.setupErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: local process setup: %w", worker.ErrWorkerNotAvailable, err)
	}
	r.setupErr = r.doSetup()
	r.setupDone = true
	return r.setupErr
}

func (r *Runner) doSetup() error {
	log := r.opts.Logger
	u, perSession, err := r.appUser()
	if err != nil {
		return err
	}
	r.user, r.workDir = u, r.opts.WorkDir
	if perSession {
		r.uids = newUIDPool(r.opts.AppUIDBase+1, r.opts.AppUIDCount-1, r.opts.WorkDir, log)
	}
	switch {
	case r.Supervised():
		log.Debug("each app session runs under a supervisor that ends all of its processes")
	case canSupervise && !r.opts.NoSupervisor:
		log.Warn("app sessions run without a supervisor (the program does not call process.MaybeSupervise): " +
			"a process an app detaches can outlive its session")
	}
	r.path = os.Getenv("PATH")
	if r.path == "" {
		r.path = StandardPath
	}
	if u.switchUser {
		if perSession {
			log.Info("each app session runs as its own unprivileged uid", "app_uids", rangeName(r.opts.AppUIDBase, r.opts.AppUIDCount))
		} else {
			log.Info("app sessions run as an unprivileged user", "app_user", u.name)
		}
		err := reachable(r.workDir, u, 0o1)
		if err != nil && r.workDirDefault && r.workDir != "/tmp" && reachable("/tmp", u, 0o1) == nil {
			// A private TMPDIR is common; /tmp is there for everyone.
			log.Info("the temp dir is out of reach of the app users: app working directories go to /tmp",
				"temp_dir", r.workDir, "app_user", u.name, "reason", err.Error())
			r.workDir, err = "/tmp", nil
		}
		if err != nil {
			return fmt.Errorf("%w: the working directory parent %s is out of reach of %s: %v; choose another --work-dir (HYPHA_WORK_DIR)",
				worker.ErrWorkerNotAvailable, r.opts.WorkDir, u.name, err)
		}
		// Entries the app user cannot search would only make its own
		// lookups fail later with a confusing "permission denied".
		r.path = filterPath(r.path, u)
	}
	// Working directories of this user whose worker and supervisor were
	// both killed (those of range uids: newUIDPool).
	if n := removeUnlockedWorkDirs(r.workDir, os.Geteuid(), log); n > 0 {
		log.Info("removed the working directories of app sessions of an earlier run", "dir", r.workDir, "entries", n)
	}
	return nil
}

// ready reports whether Setup succeeded.
func (r *Runner) ready() bool {
	r.setupMu.Lock()
	defer r.setupMu.Unlock()
	return r.setupDone && r.setupErr == nil
}

// User is who sessions run as (after a successful Setup). With
// per-session uids it is the first uid of the range, which stands for "a
// user that owns nothing here": Probe and CheckReachable use it.
func (r *Runner) User() User { return r.user.export() }

// PerSessionUIDs reports whether each session gets a uid of its own.
func (r *Runner) PerSessionUIDs() bool { return r.uids != nil }

// WorkDir is the parent of the sessions' working directories (after
// Setup: it may differ from Options.WorkDir).
func (r *Runner) WorkDir() string { return r.workDir }

// Path is the PATH sessions should get (after Setup).
func (r *Runner) Path() string { return r.path }

// Supervised reports whether sessions run under a supervisor: the
// platform has them, the program called MaybeSupervise, and
// Options.NoSupervisor is not set.
func (r *Runner) Supervised() bool {
	return canSupervise && supervisorHook.Load() && !r.opts.NoSupervisor
}

// CheckReachable checks that the sessions' user can reach path with the
// permission bits need (0o4 read, 0o2 write, 0o1 execute/search), every
// folder above it searchable; the error names the first obstacle. With the
// worker's own user it checks nothing.
func (r *Runner) CheckReachable(path string, need uint32) error {
	if !r.user.switchUser {
		return nil
	}
	return reachable(path, r.user, need)
}

// Probe runs a program as the sessions' user, in "/" with a minimal
// environment, and returns why it failed: the first obstacle to reach it,
// or its exit with the start of its stderr. A worker calls it at start-up
// to check that the programs its sessions run are runnable by a user that
// owns nothing (an interpreter under root's home is not).
func (r *Runner) Probe(ctx context.Context, path string, args ...string) error {
	return probe(ctx, path, args, r.user)
}

// NextUID is the uid the next session would try first (0 without
// per-session uids): tests place a stray process on it.
func (r *Runner) NextUID() int {
	if r.uids == nil {
		return 0
	}
	leasedUIDs.Lock()
	defer leasedUIDs.Unlock()
	return r.uids.base + leasedUIDs.next[r.uids.base]%r.uids.count
}

// Close releases what the runner holds for the host (its uid locks).
// Call it once every session has ended.
func (r *Runner) Close() {
	r.setupMu.Lock()
	defer r.setupMu.Unlock()
	if r.uids != nil {
		r.uids.close()
	}
}
