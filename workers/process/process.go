// Package process is the built-in worker that runs an app's entry point in
// a local interpreter process: app type "python-eval" (upstream's name) with
// Python and "node-eval" with Node.js.
//
// start fetches the app's files into a fresh working directory, spawns the
// interpreter on the entry point in its own process group with a minimal
// environment (the HYPHA_* connection variables, PATH, HOME, LANG,
// NODE_PATH and the manifest's env) and returns as soon as the process
// runs. The session is then running; it becomes completed when the process
// exits with code 0 and failed otherwise. stdout and stderr are captured line
// by line into the session's logs. stop terminates the whole process group
// (SIGTERM, then SIGKILL after a grace period) and removes the working
// directory.
//
// Unlike upstream's python-eval worker, start does not block for the whole
// run: a long-lived app (one that connects back and serves) is the normal
// case for the server, which treats the app as started when its client
// registers a service.
//
// Security: when the worker runs as root, each session runs as its own
// unprivileged uid, leased from a range (Options.AppUIDBase/AppUIDCount;
// no account needed) for as long as the session or any of its processes
// lives, so that sessions cannot read, signal or trace each other. It runs
// in a working directory only that uid can read, with HOME set to it, no
// supplementary groups, and only descriptors 0, 1 and 2; the interpreters
// are checked at start-up to be runnable by a user that owns nothing.
// When the session ends, every process of its uid is killed (setsid
// escapees included). An explicit Options.AppUser runs every session as
// that one user instead (sessions can then reach each other). When the
// worker is not root it cannot change user: apps run as the worker's user
// and can read whatever it can (see docs/security.md). Either way the
// environment is built from scratch (no variable of the worker's own
// reaches an app except PATH and LANG). Whoever may call start on the
// worker service can run code on this host; keep the service protected
// (the default) or authorise workspaces explicitly.
package process

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/appfiles"
	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"
)

// The app types this worker runs.
const (
	TypePython = "python-eval"
	TypeNode   = "node-eval"
)

// Defaults for Options.
const (
	DefaultMaxSessions   = 100
	DefaultStopGrace     = localproc.DefaultStopGrace
	DefaultStartTimeout  = 60 * time.Second
	DefaultKeepFinished  = 5 * time.Minute
	DefaultMaxLineBytes  = localproc.DefaultMaxLineBytes
	DefaultMaxFileBytes  = 64 << 20
	DefaultMaxFiles      = 1000
	DefaultMaxTotalBytes = 128 << 20
)

// Options configures a Worker. Zero values mean the defaults.
type Options struct {
	// Python is the interpreter for python-eval apps (default "python3",
	// looked up in the worker's PATH).
	Python string
	// Node is the interpreter for node-eval apps (default "node").
	Node string
	// NodePath, when set, is passed to apps as NODE_PATH.
	NodePath string

	// AppUser, when set, is the one user (name or numeric uid) every
	// session runs as when the worker runs as root; sessions can then
	// read, signal and trace each other, which is logged as a warning.
	// Empty (the default) gives each session its own uid from
	// AppUIDBase/AppUIDCount (on Linux; elsewhere DedicatedAppUser when
	// that account exists, otherwise FallbackAppUser). A user with uid 0
	// is the same as RunAsWorkerUser. Ignored, with a warning, when the
	// worker is not root. The working directory parent (WorkDir), the
	// interpreters and NODE_PATH must be reachable by a user that owns
	// nothing there: the worker checks at start-up and says what to change.
	AppUser string
	// AppUIDBase and AppUIDCount are the range of uids (and gids: each
	// session's gid is its uid) leased to sessions, one per live session
	// (default DefaultAppUIDBase, DefaultAppUIDCount; see ParseUIDRange).
	// The range must hold no account, group or subordinate id range of the
	// host, and at least MaxSessions uids: the worker refuses to start
	// otherwise. Every process running as a uid of the range is the
	// worker's to kill.
	AppUIDBase, AppUIDCount int
	appUIDsSet              bool // one of the two was given
	// RunAsWorkerUser runs apps as the worker's own user even when it is
	// root: an explicit opt-out, logged as an error at start-up, since app
	// code can then read the server's secrets and data.
	RunAsWorkerUser bool
	// NoSupervisor starts apps directly instead of through a per-session
	// supervisor (see MaybeSupervise): a process an app detaches (setsid,
	// double fork) then survives a non-root worker, and whatever the app
	// started survives a worker killed with SIGKILL until a new worker
	// starts (root) or for ever (non-root). For comparisons only.
	NoSupervisor bool
	// NoPIDNamespace starts supervisors without a PID namespace of their
	// own (see docs/workers.md, "How sessions end"): they then find the
	// session's processes by their parent links (and uid), and an app
	// running as the worker's user can kill its supervisor. The worker
	// falls back to this by itself, with a warning, when the system
	// refuses the namespace.
	NoPIDNamespace bool

	// MaxSessions caps sessions (default DefaultMaxSessions). Finished
	// sessions kept for their logs are evicted, oldest first, to make room.
	MaxSessions int
	// StopGrace is how long stop waits after SIGTERM before SIGKILL
	// (default DefaultStopGrace).
	StopGrace time.Duration
	// StartTimeout bounds a start (fetching files and spawning) when the
	// config carries no timeout (default DefaultStartTimeout).
	StartTimeout time.Duration
	// KeepFinished is how long a session whose process exited by itself
	// stays listed with its logs before it is removed (default
	// DefaultKeepFinished, like the server's 300 s for python-eval).
	KeepFinished time.Duration

	// WorkDir is the parent of the per-session working directories
	// (default os.TempDir(), or /tmp when apps run as the app user and
	// the temp dir is out of its reach).
	WorkDir        string
	workDirDefault bool // WorkDir was empty
	// MaxLineBytes bounds one log entry of the app's output; a longer
	// line is split into several entries marked partial (nothing is
	// dropped), and an info entry says so.
	MaxLineBytes int
	// MaxFileBytes bounds one fetched file; MaxFiles the number of files
	// (and folders) of one session; MaxTotalBytes the bytes of all of a
	// session's files (default DefaultMaxTotalBytes, the server's default
	// install limit).
	MaxFileBytes  int64
	MaxFiles      int
	MaxTotalBytes int64
	// Logs caps each session's log store (default
	// worker.DefaultMaxLogEntries lines, worker.DefaultMaxLogBytes bytes).
	// A live follower (get_logs with a follower id) that falls behind
	// holds the app's output back instead of losing lines, unless
	// Logs.DropWhenBehind is set.
	Logs worker.LogLimits

	// HTTPClient fetches app files (default: a client with its own
	// transport). DisableSSL skips TLS verification for every fetch (the
	// CLI's --disable-ssl); a start config with disable_ssl does the same
	// for its own fetches.
	HTTPClient *http.Client
	DisableSSL bool

	// What the worker is called (Properties). Name defaults to "Process
	// Worker", whose slug "process-worker" is the default service id. How
	// it is registered (service id, visibility, local URL) is the host's
	// choice (hyphaworker.Options).
	Name        string
	Description string

	// Logger receives worker events; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.Node == "" {
		o.Node = "node"
	}
	o.appUIDsSet = o.AppUIDBase != 0 || o.AppUIDCount != 0
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
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.KeepFinished <= 0 {
		o.KeepFinished = DefaultKeepFinished
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
		o.workDirDefault = true
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if o.Name == "" {
		o.Name = "Process Worker"
	}
	if o.Description == "" {
		o.Description = "Runs python-eval and node-eval apps as local interpreter processes"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.NodePath = absPathList(o.NodePath)
	return o
}

// absPathList makes every entry of a PATH-style list absolute: apps run in
// their own working directory, where a relative entry would point elsewhere.
func absPathList(list string) string {
	if list == "" {
		return ""
	}
	parts := filepath.SplitList(list)
	for i, p := range parts {
		if a, err := filepath.Abs(p); err == nil && p != "" {
			parts[i] = a
		}
	}
	return strings.Join(parts, string(filepath.ListSeparator))
}

// Worker runs python-eval and node-eval apps as local processes. It embeds
// worker.Base for list_sessions, get_session_info, get_logs,
// prepare_workspace and close_workspace. Create it with New; release it with
// Shutdown.
type Worker struct {
	worker.Base
	opts     Options
	client   *http.Client // verifies TLS (unless opts.DisableSSL)
	insecure *http.Client // skips TLS verification

	ctx    context.Context // cancelled by Shutdown: aborts starts in flight
	cancel context.CancelFunc

	runner *localproc.Runner // spawns and ends the sessions' processes

	setupMu   sync.Mutex // guards the two fields below (see setup)
	setupDone *setupResult
	setupErr  error

	mu        sync.Mutex
	closed    bool
	inflight  sync.WaitGroup    // Start calls
	bg        sync.WaitGroup    // monitors
	retention *worker.Retention // finished sessions: listed for KeepFinished, then stopped
}

var (
	_ worker.Worker     = (*Worker)(nil)
	_ worker.Shutdowner = (*Worker)(nil)
)

// New returns a Worker.
func New(opts Options) *Worker {
	opts = opts.withDefaults()
	w := &Worker{opts: opts}
	w.Base = worker.Base{
		Sessions: worker.NewRegistry(worker.RegistryOptions{
			MaxSessions: opts.MaxSessions, Logs: opts.Logs, Logger: opts.Logger,
		}),
		Stopper: w,
	}
	w.retention = worker.NewRetention(w.Sessions, opts.KeepFinished, w.cleanup)
	if opts.HTTPClient != nil {
		w.client = opts.HTTPClient
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if opts.DisableSSL {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		w.client = &http.Client{Transport: tr}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	w.insecure = &http.Client{Transport: tr, Timeout: w.client.Timeout, CheckRedirect: w.client.CheckRedirect}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	lo := localproc.Options{
		AppUser: opts.AppUser, RunAsWorkerUser: opts.RunAsWorkerUser,
		NoSupervisor: opts.NoSupervisor, NoPIDNamespace: opts.NoPIDNamespace,
		MaxSessions: opts.MaxSessions, StopGrace: opts.StopGrace,
		MaxLineBytes: opts.MaxLineBytes, Logger: opts.Logger,
	}
	if opts.appUIDsSet {
		lo.AppUIDBase, lo.AppUIDCount = opts.AppUIDBase, opts.AppUIDCount
	}
	if !opts.workDirDefault {
		lo.WorkDir = opts.WorkDir
	}
	w.runner = localproc.New(lo)
	return w
}

// Options returns the options in effect (defaults applied).
func (w *Worker) Options() Options { return w.opts }

// Properties describes the worker for registration.
func (w *Worker) Properties() worker.Properties {
	return worker.Properties{
		Name:           w.opts.Name,
		Description:    w.opts.Description,
		SupportedTypes: []string{TypePython, TypeNode},
		RequireContext: true,
	}
}

// proc is a session's runtime state (its worker.Session handle).
type proc struct {
	mu      sync.Mutex
	ls      *localproc.Session // nil until the working directory exists
	workdir string
	uid     int  // this session's own uid; 0 when sessions share a user
	stopped bool // a stop took over: never spawn after this
	pid     int  // the app's process group id, 0 until spawned

	done      chan struct{} // closed once the monitor finished (logs drained, dir removed, status set)
	startDone chan struct{} // closed when Start has decided the initial status
}

// interpreter returns the interpreter for an app type.
func (w *Worker) interpreter(appType string) (string, error) {
	switch appType {
	case "":
		return "", fmt.Errorf("%w: manifest.type is empty (want %s or %s)", worker.ErrInvalidConfig, TypePython, TypeNode)
	case TypePython:
		return w.opts.Python, nil
	case TypeNode:
		return w.opts.Node, nil
	}
	return "", fmt.Errorf("%w: app type %q is not supported (want %s or %s)", worker.ErrInvalidConfig, appType, TypePython, TypeNode)
}

// Start fetches the app's files, spawns the interpreter and returns the
// session id as soon as the process runs.
func (w *Worker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return "", fmt.Errorf("%w: the process worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	defer w.inflight.Done()

	rep := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{Logger: w.opts.Logger})
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = rep.Close(cctx)
	}()
	fail := func(err error) (string, error) {
		rep.Error(err.Error())
		return "", err
	}

	if !localproc.Supported {
		return fail(fmt.Errorf("%w: process groups are not supported on this platform", worker.ErrWorkerNotAvailable))
	}
	appType := cfg.Manifest.Type()
	interp, err := w.interpreter(appType)
	if err != nil {
		return fail(err)
	}
	su, err := w.setup(ctx)
	if err != nil {
		return fail(err)
	}
	entry := cfg.EntryPoint
	if entry == "" {
		entry = cfg.Manifest.EntryPoint()
	}
	if entry == "" {
		return fail(fmt.Errorf("%w: no entry point (config.entry_point and manifest.entry_point are empty)", worker.ErrInvalidConfig))
	}
	files, err := appFiles(entry, cfg.Manifest, w.opts.MaxFiles)
	if err != nil {
		return fail(err)
	}
	if err := appfiles.CheckBaseURL(cfg.AppFilesBaseURL); err != nil {
		return fail(err)
	}
	choice := su.interp[appType]
	if choice.err != nil {
		return fail(choice.err)
	}
	interpPath := choice.path

	w.retention.MakeRoom(w.opts.MaxSessions)
	h := &proc{done: make(chan struct{}), startDone: make(chan struct{})}
	s, err := w.Sessions.CreateFromConfig(cfg, h)
	if err != nil {
		return fail(err)
	}
	// From here on, every failure must release what was made and Discard.
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = w.opts.StartTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stopWatch := context.AfterFunc(s.Context(), cancel) // a stop aborts the start
	defer stopWatch()
	shutdownWatch := context.AfterFunc(w.ctx, cancel)
	defer shutdownWatch()
	abort := func(err error) (string, error) {
		switch {
		case errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			err = fmt.Errorf("startup timed out after %s: %w", timeout, err)
		case s.Context().Err() != nil:
			err = fmt.Errorf("session stopped during start: %w", err)
		case w.ctx.Err() != nil:
			err = fmt.Errorf("%w: the process worker is shutting down", worker.ErrWorkerNotAvailable)
		}
		h.mu.Lock()
		ls := h.ls
		h.mu.Unlock()
		if ls != nil {
			ls.Close() // never started: its directory and uid go now
		}
		close(h.startDone)
		rep.Error(err.Error())
		return "", w.Sessions.Discard(s, err)
	}

	rep.Info(fmt.Sprintf("Preparing a working directory for %s session %s", appType, s.ID()))
	ls, err := w.runner.NewSession()
	if err != nil {
		return abort(err)
	}
	dir := ls.Dir()
	h.mu.Lock()
	h.ls, h.workdir, h.uid = ls, dir, ls.UID()
	stopped := h.stopped
	h.mu.Unlock()
	if stopped {
		// A stop came while the uid and directory were being made: it
		// found nothing to release.
		return abort(localproc.ErrStopped)
	}
	s.Log(worker.LogInfo, "working directory "+dir)
	u := ls.User()
	env, dropped := w.appEnv(cfg, appType, u, dir)
	for _, k := range dropped {
		s.Log(worker.LogInfo, fmt.Sprintf("env %s ignored: value is not a string", k))
	}

	client := w.client
	if cfg.DisableSSL {
		client = w.insecure
	}
	// Every file of the app, not only the entry point and the manifest's
	// list: a multi-file app imports its own modules.
	listed, err := w.listFiles(sctx, client, cfg.AppFilesBaseURL, cfg.Token)
	switch {
	case errors.Is(err, errNoListing):
		s.Log(worker.LogInfo, fmt.Sprintf("the file server gives no listing of the app's files (%v): fetching the entry point and the manifest's files only", err))
	case err != nil:
		return abort(err)
	default:
		files = mergeFiles(files, listed)
		if len(files) > w.opts.MaxFiles {
			return abort(fmt.Errorf("%w: the app has %d files, more than the limit of %d", worker.ErrInvalidConfig, len(files), w.opts.MaxFiles))
		}
	}
	rep.Info(fmt.Sprintf("Fetching %d app file(s)", len(files)))
	root, err := os.OpenRoot(dir)
	if err != nil {
		return abort(fmt.Errorf("open working directory: %w", err))
	}
	err = appfiles.Fetcher{
		Client: client, Base: cfg.AppFilesBaseURL, Token: cfg.Token,
		MaxFileBytes: w.opts.MaxFileBytes, Budget: appfiles.NewBudget(w.opts.MaxTotalBytes, "(max app bytes)"),
	}.Files(sctx, root, files)
	root.Close()
	if err != nil {
		return abort(err)
	}
	s.Log(worker.LogInfo, fmt.Sprintf("fetched %d file(s): %s", len(files), strings.Join(files, ", ")))
	if u.Switch {
		s.Log(worker.LogInfo, "running as "+u.Name)
	}
	if err := sctx.Err(); err != nil {
		return abort(err)
	}

	rep.Info(fmt.Sprintf("Starting %s %s", interp, files[0]))
	if err := w.spawn(s, h, interpPath, files[0], env); err != nil {
		return abort(err)
	}
	// The process runs. Report running unless a stop took over meanwhile,
	// in which case the stop kills the process and Start reports the stop.
	err = s.SetStatus(worker.StatusRunning)
	close(h.startDone)
	if err != nil {
		err = fmt.Errorf("session stopped during start: %w", err)
		rep.Error(err.Error())
		return "", err
	}
	rep.Success(fmt.Sprintf("Process started (pid %d)", h.pid))
	return s.ID(), nil
}

// appEnv builds the child's whole environment: PATH (the worker's, without
// the folders the app user cannot search, or a standard one), HOME (the
// worker's, or the working directory when apps run as the app user), LANG
// from the worker's environment, NODE_PATH from
// Options, PYTHONUNBUFFERED=1 for Python (so output reaches the logs line by
// line), then the manifest's env, then config.env (the server's
// additional_kwargs), then the HYPHA_* connection variables, which always
// win. Nothing else is inherited. It also returns the env keys ignored
// because their values are not strings.
func (w *Worker) appEnv(cfg worker.Config, appType string, u localproc.User, workdir string) ([]string, []string) {
	base := map[string]string{"PATH": w.runner.Path()}
	if w.opts.NodePath != "" {
		base["NODE_PATH"] = w.opts.NodePath
	}
	if appType == TypePython {
		base["PYTHONUNBUFFERED"] = "1"
	}
	return localproc.AppEnv(base, cfg, u, workdir)
}

// spawn starts the interpreter and the monitor. It refuses when a stop has
// already taken over the session.
func (w *Worker) spawn(s *worker.Session, h *proc, interp, entry string, env []string) error {
	w.mu.Lock()
	closed := w.closed
	if !closed {
		w.bg.Add(1) // the monitor
	}
	w.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: the process worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		w.bg.Done()
		return localproc.ErrStopped
	}
	// What the app writes before its follower's first call is held too.
	s.Logs().HoldForFirstFollower(0)
	ls := h.ls
	err := ls.Start(localproc.Command{
		Path: interp, Args: []string{interp, entry}, Env: env,
		Logs: s.Logs(), LogContext: s.Context(), // a stop ends the waiting (then the caps apply)
	})
	if err == nil {
		h.pid = ls.PID()
	}
	h.mu.Unlock()
	if err != nil {
		w.bg.Done()
		return err
	}
	s.Log(worker.LogInfo, fmt.Sprintf("started %s %s (pid %d)", filepath.Base(interp), entry, h.pid))
	go w.monitor(s, h, ls)
	return nil
}

// monitor waits until the session's processes have ended, their output is
// in the logs and the working directory is gone, then sets the final
// status.
func (w *Worker) monitor(s *worker.Session, h *proc, ls *localproc.Session) {
	defer w.bg.Done()
	<-ls.Done()
	ex := ls.Exit()

	h.mu.Lock()
	stopped := h.stopped
	h.mu.Unlock()
	<-h.startDone
	code := ex.Code
	if !stopped && code >= 0 {
		// The app's own verdict, for callers such as hypha run that
		// exit with it.
		s.SetExitCode(code)
	}
	switch {
	case stopped:
		s.Log(worker.LogInfo, "process stopped: "+ex.Desc)
	case ex.Err == nil && code == 0:
		s.Log(worker.LogInfo, "process exited with code 0")
		_ = s.SetStatus(worker.StatusCompleted)
	default:
		_ = s.Fail(fmt.Errorf("process %s", ex.Desc))
	}
	close(h.done)
	if !stopped {
		// Under the session's lock: a stop that begins now sees the
		// removal scheduled and cancels it (cleanup's Forget).
		h.mu.Lock()
		if !h.stopped {
			w.retention.Finished(s.ID())
		}
		h.mu.Unlock()
	}
}

// Stop stops a session: SIGTERM to its process group, SIGKILL after
// StopGrace, wait, remove the working directory. Unknown ids are not an
// error; concurrent stops wait for each other.
func (w *Worker) Stop(ctx context.Context, sessionID string) error {
	return w.Sessions.StopSession(ctx, sessionID, w.cleanup)
}

// cleanup releases one session's process and directory (run by
// Registry.StopSession with the session in status stopping).
func (w *Worker) cleanup(ctx context.Context, s *worker.Session) error {
	h, ok := worker.HandleOf[*proc](s)
	if !ok {
		return nil
	}
	h.mu.Lock()
	h.stopped = true
	pid, ls := h.pid, h.ls
	h.mu.Unlock()
	w.retention.Forget(s.ID())
	if ls == nil {
		// Start has not made the working directory yet (it sees the stop
		// and gives up) or failed.
		return nil
	}
	// Never spawned: Start is still fetching (it sees the stop through
	// the session context and gives up) or failed; Stop then releases the
	// directory and the uid. Spawned: SIGTERM, SIGKILL after the grace.
	if err := ls.Stop(ctx, s.Logs()); err != nil {
		return err
	}
	if pid == 0 {
		return nil
	}
	select {
	case <-h.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("process group %d: the session did not end after SIGKILL", pid)
	}
}

// Shutdown refuses new starts, aborts the ones in flight, stops every
// session and waits for all background work. Safe to call more than once.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	w.inflight.Wait() // starts end promptly: their contexts are cancelled
	err := w.StopAll(ctx)
	w.retention.Close()
	done := make(chan struct{})
	go func() { w.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("shutdown: %w", ctx.Err()))
	}
	w.client.CloseIdleConnections()
	w.insecure.CloseIdleConnections()
	if err == nil {
		w.runner.Close() // drops this worker's uid locks
	}
	return err
}
