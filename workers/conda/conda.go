// Package conda is the built-in worker that runs Python apps in cached
// conda environments with a Jupyter kernel: app type
// "conda-jupyter-kernel" (upstream's name).
//
// start builds (or reuses) the environment the manifest asks for
// (internal/condaenv: micromamba, mamba or conda, or a pip-only virtual
// environment; the solver's output streams to the progress callback and
// the session log), stages the entry point and the manifest's
// files_to_stage into a fresh working directory, starts an ipykernel from
// the environment as the session's own uid under the per-session
// supervisor (internal/localproc), spoken to with the Jupyter messaging
// protocol (internal/jupyter), and runs the entry point in it with the
// HYPHA_* connection variables set. A failing entry point fails the start
// with its traceback. The session then runs until it is stopped or its
// kernel dies (the session becomes failed); execute runs more code in the
// same kernel, whose state persists, and returns upstream's
// {status, outputs, error}.
//
// Security is the process worker's (workers/process): each session runs as
// its own uid when the worker is root, in a working directory only that
// uid can read, with an environment built from scratch; the cached
// environments are readable but not writable by the apps. execute is a
// read_write function on the session (worker/hyphaworker.Admit) and is
// confined to the caller's workspace. Whoever may call start can run code
// on this host: keep the service protected or in public behind the apps
// controller.
package conda

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
	"github.com/hypha-go/hypha/internal/condaenv"
	"github.com/hypha-go/hypha/internal/jupyter"
	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"
)

// Type is the app type this worker runs (upstream's name).
const Type = "conda-jupyter-kernel"

// LogProgress is the log type of the environment manager's output.
const LogProgress worker.LogType = "progress"

// Defaults for Options.
const (
	DefaultMaxSessions    = 100
	DefaultStopGrace      = localproc.DefaultStopGrace
	DefaultStartTimeout   = 60 * time.Second
	DefaultBuildTimeout   = 30 * time.Minute
	DefaultExecuteTimeout = 30 * time.Second
	DefaultKeepFinished   = 5 * time.Minute
	DefaultMaxLineBytes   = localproc.DefaultMaxLineBytes
	DefaultMaxFileBytes   = 64 << 20
	DefaultMaxFiles       = 1000
	DefaultMaxTotalBytes  = 128 << 20
	DefaultEntryPoint     = "main.py"
)

// Sentinel errors.
var (
	// ErrKernelDead is wrapped by the error of an execute whose kernel
	// has died; the session is failed by then.
	ErrKernelDead = errors.New("the session's kernel is dead")
	// ErrEntryPoint is wrapped by the start error of an app whose entry
	// point raised in the kernel; the error holds the traceback.
	ErrEntryPoint = errors.New("the entry point failed")
)

// Options configures a Worker. Zero values mean the defaults.
type Options struct {
	// CondaPath is the environment manager to use (micromamba, mamba or
	// conda, by path or name); empty means the first of micromamba, mamba,
	// conda found on PATH.
	CondaPath string
	// CacheDir holds the cached environments (default: the user's cache
	// folder, hypha/conda-envs; /var/cache/hypha/conda-envs when apps run
	// as other users, which must be able to read it).
	CacheDir string
	// MaxEnvs and MaxAge bound the cache (defaults condaenv.DefaultMaxEnvs
	// and condaenv.DefaultMaxAge); environments in use are never evicted.
	MaxEnvs int
	MaxAge  time.Duration
	// NoPipVenv turns off the pip-only fast path: every environment is
	// built by the manager, as upstream does.
	NoPipVenv bool
	// PipFindLinks and PipNoIndex are handed to pip on the pip-only path
	// (offline installs from a folder of wheels).
	PipFindLinks []string
	PipNoIndex   bool
	// CompilePip are the pip packages compile adds to every manifest, as
	// upstream adds hypha-rpc (default ["hypha-rpc"]; set NoCompilePip to
	// add none).
	CompilePip   []string
	NoCompilePip bool

	// Who sessions run as; see workers/process.Options for each.
	AppUser                 string
	AppUIDBase, AppUIDCount int
	RunAsWorkerUser         bool
	NoSupervisor            bool
	NoPIDNamespace          bool

	// MaxSessions caps sessions (default DefaultMaxSessions).
	MaxSessions int
	// StopGrace is how long stop waits for the kernel to shut down, and
	// then after SIGTERM, before SIGKILL (default DefaultStopGrace).
	StopGrace time.Duration
	// StartTimeout bounds the kernel's start and the entry point's run
	// when the config carries no timeout (default DefaultStartTimeout).
	// BuildTimeout bounds building an environment (default
	// DefaultBuildTimeout): solvers take minutes.
	StartTimeout time.Duration
	BuildTimeout time.Duration
	// ExecuteTimeout is execute's timeout when its config gives none
	// (default DefaultExecuteTimeout, upstream's 30 s).
	ExecuteTimeout time.Duration
	// KeepFinished is how long a session whose kernel died stays listed
	// with its logs (default DefaultKeepFinished).
	KeepFinished time.Duration

	// WorkDir is the parent of the per-session working directories
	// (default os.TempDir()).
	WorkDir string
	// MaxLineBytes bounds one log entry; longer lines are split.
	MaxLineBytes int
	// MaxFileBytes bounds one staged file; MaxFiles the files and folders
	// of one session; MaxTotalBytes the bytes of all of them.
	MaxFileBytes  int64
	MaxFiles      int
	MaxTotalBytes int64
	// MaxOutputBytes bounds the outputs of one execute (default
	// jupyter.DefaultMaxOutputBytes).
	MaxOutputBytes int64
	// Logs caps each session's log store.
	Logs worker.LogLimits

	// HTTPClient fetches app files; DisableSSL skips TLS verification.
	HTTPClient *http.Client
	DisableSSL bool

	// Name defaults to "Conda Worker", whose slug is the default service id.
	Name        string
	Description string

	// Logger receives worker events; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.BuildTimeout <= 0 {
		o.BuildTimeout = DefaultBuildTimeout
	}
	if o.ExecuteTimeout <= 0 {
		o.ExecuteTimeout = DefaultExecuteTimeout
	}
	if o.KeepFinished <= 0 {
		o.KeepFinished = DefaultKeepFinished
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
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = jupyter.DefaultMaxOutputBytes
	}
	if o.CompilePip == nil && !o.NoCompilePip {
		o.CompilePip = []string{condaenv.HyphaRPC}
	}
	if o.NoCompilePip {
		o.CompilePip = nil
	}
	if o.Name == "" {
		o.Name = "Conda Worker"
	}
	if o.Description == "" {
		o.Description = "Runs conda-jupyter-kernel apps: Python in cached conda environments with a Jupyter kernel (execute)"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Worker runs conda-jupyter-kernel apps. It embeds worker.Base for
// list_sessions, get_session_info, get_logs, prepare_workspace and
// close_workspace. Create it with New; release it with Shutdown.
type Worker struct {
	worker.Base
	opts     Options
	client   *http.Client
	insecure *http.Client

	ctx    context.Context // cancelled by Shutdown: aborts starts in flight
	cancel context.CancelFunc

	runner *localproc.Runner

	setupMu   sync.Mutex
	setupDone bool
	setupErr  error
	manager   *condaenv.Manager // nil: none found (pip-only specs still build)
	cache     *condaenv.Cache

	mu        sync.Mutex
	closed    bool
	inflight  sync.WaitGroup    // Start and Execute calls
	bg        sync.WaitGroup    // monitors
	retention *worker.Retention // finished sessions: listed for KeepFinished, then stopped
}

var (
	_ worker.Worker     = (*Worker)(nil)
	_ worker.Compiler   = (*Worker)(nil)
	_ worker.Executor   = (*Worker)(nil)
	_ worker.Shutdowner = (*Worker)(nil)
)

// New returns a Worker. Nothing is checked before Check or the first Start.
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
	w.runner = localproc.New(localproc.Options{
		AppUser: opts.AppUser, AppUIDBase: opts.AppUIDBase, AppUIDCount: opts.AppUIDCount,
		RunAsWorkerUser: opts.RunAsWorkerUser, NoSupervisor: opts.NoSupervisor, NoPIDNamespace: opts.NoPIDNamespace,
		MaxSessions: opts.MaxSessions, StopGrace: opts.StopGrace, WorkDir: opts.WorkDir,
		MaxLineBytes: opts.MaxLineBytes, Logger: opts.Logger,
	})
	return w
}

// Options returns the options in effect (defaults applied).
func (w *Worker) Options() Options { return w.opts }

// Properties describes the worker for registration.
func (w *Worker) Properties() worker.Properties {
	name := w.opts.Name
	return worker.Properties{
		Name:           name,
		Description:    w.opts.Description,
		SupportedTypes: []string{Type},
		RequireContext: true,
	}
}

// Check decides, once, who sessions run as, finds the environment manager
// and prepares the cache; Start calls it on first use. It fails with an
// error wrapping condaenv.ErrNoManager when no manager is found (the
// embedded server then does not register the worker), or when sessions
// cannot run at all.
func (w *Worker) Check(ctx context.Context) error {
	w.setupMu.Lock()
	defer w.setupMu.Unlock()
	if w.setupDone {
		return w.setupErr
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := w.doSetup(ctx)
	if ctx.Err() != nil {
		return fmt.Errorf("%w: conda worker setup: %w", worker.ErrWorkerNotAvailable, ctx.Err())
	}
	w.setupDone, w.setupErr = true, err
	switch {
	case errors.Is(err, condaenv.ErrNoManager):
		// Expected on a machine without conda: the host says it once.
		w.opts.Logger.Debug("the conda worker cannot run apps", "err", err)
	case err != nil:
		w.opts.Logger.Error("the conda worker cannot run apps", "err", err)
	}
	return err
}

func (w *Worker) doSetup(ctx context.Context) error {
	// The manager first: without one the worker is not hosted at all, and
	// the runner's setup (uid pool, leftovers of a dead worker) is skipped.
	m, err := condaenv.Detect(ctx, condaenv.Options{CondaPath: w.opts.CondaPath})
	if err != nil {
		return fmt.Errorf("%w: %w", worker.ErrWorkerNotAvailable, err)
	}
	if err := w.runner.Setup(ctx); err != nil {
		return err
	}
	w.manager = &m
	dir := w.opts.CacheDir
	if dir == "" {
		dir = defaultCacheDir(w.runner.User().Switch)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs // the cache keys its prefixes by absolute path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: conda cache dir: %w", worker.ErrWorkerNotAvailable, err)
	}
	if err := w.runner.CheckReachable(dir, 0o5); err != nil {
		return fmt.Errorf("%w: conda cache dir %s is out of reach of the apps' user (%v): pass --cache-dir with a folder every user can read",
			worker.ErrWorkerNotAvailable, dir, err)
	}
	w.cache = &condaenv.Cache{
		Dir: dir, MaxEnvs: w.opts.MaxEnvs, MaxAge: w.opts.MaxAge,
		Logger:  w.opts.Logger.With("component", "conda-cache"),
		Manager: w.manager,
		Pip: condaenv.PipOptions{
			Disabled: w.opts.NoPipVenv, FindLinks: w.opts.PipFindLinks, NoIndex: w.opts.PipNoIndex,
		},
	}
	w.opts.Logger.Info("conda worker ready", "manager", m.Name, "path", m.Path, "version", m.Version,
		"cache", dir, "apps_run_as", w.runner.User().Name)
	return nil
}

// defaultCacheDir is the user's cache folder, or a system one when apps
// run as other users (root's home is out of their reach).
func defaultCacheDir(switchUser bool) string {
	if switchUser {
		return "/var/cache/hypha/conda-envs"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "hypha", "conda-envs")
	}
	return filepath.Join(os.TempDir(), "hypha-conda-envs")
}

// Manager is the environment manager found by Check (nil before, or when
// none was found).
func (w *Worker) Manager() *condaenv.Manager {
	w.setupMu.Lock()
	defer w.setupMu.Unlock()
	return w.manager
}

// CacheDir is the cache in use (empty before Check).
func (w *Worker) CacheDir() string {
	w.setupMu.Lock()
	defer w.setupMu.Unlock()
	if w.cache == nil {
		return ""
	}
	return w.cache.Dir
}

// AppUser describes who sessions run as.
func (w *Worker) AppUser(ctx context.Context) (string, error) {
	if err := w.Check(ctx); err != nil {
		return "", err
	}
	return w.runner.User().Name, nil
}

// kernelSession is a session's runtime state (its worker.Session handle).
type kernelSession struct {
	mu      sync.Mutex
	ls      *localproc.Session // nil until the working directory exists
	kernel  *jupyter.Kernel    // nil until the kernel answered
	env     condaenv.Env
	stopped bool // a stop took over
	out     *outputLog

	done      chan struct{} // closed once the monitor finished
	startDone chan struct{} // closed when Start decided the initial status
}

// Start builds or reuses the environment, stages the files, starts the
// kernel and runs the entry point in it. It returns once the entry point
// has run; the session is then running.
func (w *Worker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return "", fmt.Errorf("%w: the conda worker is shutting down", worker.ErrWorkerNotAvailable)
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
	if t := cfg.Manifest.Type(); t != Type {
		return fail(fmt.Errorf("%w: app type %q is not supported (want %s)", worker.ErrInvalidConfig, t, Type))
	}
	spec, err := specOf(cfg.Manifest)
	if err != nil {
		return fail(err)
	}
	entry := cfg.EntryPoint
	if entry == "" {
		entry = cfg.Manifest.EntryPoint()
	}
	if entry == "" {
		entry = DefaultEntryPoint
	}
	entry, err = safePath("entry point", entry)
	if err != nil {
		return fail(err)
	}
	stage, err := parseStage(cfg.Manifest["files_to_stage"], w.opts.MaxFiles)
	if err != nil {
		return fail(err)
	}
	if err := appfiles.CheckBaseURL(cfg.AppFilesBaseURL); err != nil {
		return fail(err)
	}
	if err := w.Check(ctx); err != nil {
		return fail(err)
	}

	w.retention.MakeRoom(w.opts.MaxSessions)
	h := &kernelSession{done: make(chan struct{}), startDone: make(chan struct{})}
	s, err := w.Sessions.CreateFromConfig(cfg, h)
	if err != nil {
		return fail(err)
	}
	h.out = newOutputLog(s.Context(), s.Logs(), w.opts.MaxLineBytes)
	// A stop or a shutdown aborts the start.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.Context(), cancel)()
	defer context.AfterFunc(w.ctx, cancel)()
	abort := func(err error) (string, error) {
		switch {
		case s.Context().Err() != nil:
			err = fmt.Errorf("session stopped during start: %w", err)
		case w.ctx.Err() != nil:
			err = fmt.Errorf("%w: the conda worker is shutting down", worker.ErrWorkerNotAvailable)
		}
		h.mu.Lock()
		ls, k, env := h.ls, h.kernel, h.env
		h.kernel, h.env = nil, condaenv.Env{}
		h.mu.Unlock()
		if k != nil {
			_ = k.Shutdown(context.WithoutCancel(sctx))
		}
		if ls != nil {
			_ = ls.Stop(context.WithoutCancel(sctx), s.Logs())
		}
		env.Release()
		close(h.startDone)
		s.Log(worker.LogError, err.Error())
		rep.Error(err.Error())
		return "", w.Sessions.Discard(s, err)
	}

	// 1. The environment, built once per spec and reused.
	rep.Info(fmt.Sprintf("Starting conda environment session %s", s.ID()))
	rep.Info(fmt.Sprintf("Checking for a cached environment (%s)", describeSpec(spec)))
	bctx, bcancel := context.WithTimeout(sctx, w.opts.BuildTimeout)
	env, err := w.cache.Get(bctx, spec, func(line string) {
		s.Logs().Append(LogProgress, clipLine(line, w.opts.MaxLineBytes))
		rep.Info(clipLine(line, 500))
	})
	bcancel()
	if err != nil {
		if errors.Is(bctx.Err(), context.DeadlineExceeded) && sctx.Err() == nil {
			err = fmt.Errorf("building the environment took longer than %s: %w", w.opts.BuildTimeout, err)
		}
		if errors.Is(err, condaenv.ErrInvalidSpec) {
			err = fmt.Errorf("%w: %w", worker.ErrInvalidConfig, err)
		}
		return abort(err)
	}
	h.mu.Lock()
	h.env = env
	h.mu.Unlock()
	s.Log(worker.LogInfo, fmt.Sprintf("environment %s (%s)", env.Prefix, env.Manager))
	rep.Success(fmt.Sprintf("Environment ready: %s (%s)", env.Prefix, env.Manager))
	if err := w.runner.CheckReachable(env.Python, 0o5); err != nil {
		return abort(fmt.Errorf("%w: the environment's python is out of reach of the apps' user: %v", worker.ErrWorkerNotAvailable, err))
	}

	// 2. The working directory and the app's files.
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = w.opts.StartTimeout
	}
	tctx, tcancel := context.WithTimeout(sctx, timeout)
	defer tcancel()
	timedOut := func(err error) error {
		if errors.Is(tctx.Err(), context.DeadlineExceeded) && sctx.Err() == nil {
			return fmt.Errorf("startup timed out after %s: %w", timeout, err)
		}
		return err
	}
	ls, err := w.runner.NewSession()
	if err != nil {
		return abort(err)
	}
	h.mu.Lock()
	h.ls = ls
	stopped := h.stopped
	h.mu.Unlock()
	if stopped {
		return abort(localproc.ErrStopped)
	}
	dir := ls.Dir()
	s.Log(worker.LogInfo, "working directory "+dir)
	client := w.client
	if cfg.DisableSSL {
		client = w.insecure
	}
	code, err := w.stageFiles(tctx, s, rep, client, dir, cfg, entry, stage)
	if err != nil {
		return abort(timedOut(err))
	}

	// 3. The kernel, as the session's user, under its supervisor.
	rep.Info("Starting Jupyter kernel...")
	u := ls.User()
	if u.Switch {
		s.Log(worker.LogInfo, "running as "+u.Name)
	}
	env2, dropped := w.kernelEnv(cfg, env, u, dir)
	for _, k := range dropped {
		s.Log(worker.LogInfo, fmt.Sprintf("env %s ignored: value is not a string", k))
	}
	// What the kernel prints before a follower's first call is held too.
	s.Logs().HoldForFirstFollower(0)
	k, err := jupyter.Start(tctx, jupyter.Options{
		Python:         env.Python,
		Env:            env2,
		Dir:            dir,
		ConnDir:        dir,
		Launcher:       sessionLauncher(ls, s),
		Logger:         w.opts.Logger.With("session", s.ID()),
		MaxOutputBytes: w.opts.MaxOutputBytes,
		ShutdownGrace:  w.opts.StopGrace,
	})
	if err != nil {
		return abort(timedOut(fmt.Errorf("start the Jupyter kernel: %w", err)))
	}
	h.mu.Lock()
	h.kernel = k
	stopped = h.stopped
	h.mu.Unlock()
	if stopped {
		return abort(localproc.ErrStopped)
	}
	w.mu.Lock()
	w.bg.Add(1)
	w.mu.Unlock()
	go w.monitor(s, h, ls, k)
	rep.Success("Jupyter kernel started")
	s.Log(worker.LogInfo, fmt.Sprintf("kernel started (pid %d)", ls.PID()))

	// 4. The entry point, in the kernel.
	rep.Info(fmt.Sprintf("Running %s in the kernel...", entry))
	res, err := k.Execute(tctx, code, h.out.write)
	h.out.flush()
	if err != nil {
		return abort(timedOut(fmt.Errorf("run %s: %w", entry, err)))
	}
	if res.Status != "ok" {
		return abort(entryPointError(entry, res.Error))
	}
	err = s.SetStatus(worker.StatusRunning)
	close(h.startDone)
	if err != nil {
		err = fmt.Errorf("session stopped during start: %w", err)
		rep.Error(err.Error())
		return "", err
	}
	rep.Success(fmt.Sprintf("Conda environment session %s started", s.ID()))
	return s.ID(), nil
}

// entryPointError is the start's error for an entry point that raised:
// the exception and its traceback (without terminal colours), bounded.
func entryPointError(entry string, e *jupyter.ErrorInfo) error {
	if e == nil {
		return fmt.Errorf("%w: %s failed in the kernel", ErrEntryPoint, entry)
	}
	tb := clipLine(stripANSI(strings.Join(e.Traceback, "\n")), 8<<10)
	return fmt.Errorf("%w: %s raised %s: %s\n%s", ErrEntryPoint, entry, e.Ename, e.Evalue, tb)
}

// stageFiles fetches the entry point and files_to_stage into dir and
// returns the entry point's code.
func (w *Worker) stageFiles(ctx context.Context, s *worker.Session, rep *worker.Reporter, client *http.Client, dir string, cfg worker.Config, entry string, items []stageItem) (string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("open working directory: %w", err)
	}
	defer root.Close()
	st := &stager{
		fetch: appfiles.Fetcher{
			Client: client, Base: cfg.AppFilesBaseURL, Token: cfg.Token,
			MaxFileBytes: w.opts.MaxFileBytes, Budget: appfiles.NewBudget(w.opts.MaxTotalBytes, "(max total bytes)"),
		},
		root: root, maxFiles: w.opts.MaxFiles,
	}
	rep.Info("Fetching the application script...")
	code, err := st.file(ctx, entry, entry, true)
	if err != nil {
		return "", err
	}
	if len(items) > 0 {
		rep.Info(fmt.Sprintf("Preparing %d files/folders from the app's files...", len(items)))
	}
	for _, it := range items {
		if it.dir {
			n, err := st.folder(ctx, it.src, it.dst)
			if err != nil {
				return "", fmt.Errorf("stage %s/: %w", it.src, err)
			}
			s.Log(worker.LogInfo, fmt.Sprintf("staged folder %s/ as %s/ (%d files)", it.src, it.dst, n))
			continue
		}
		if it.src == entry && it.dst == entry {
			continue
		}
		if _, err := st.file(ctx, it.src, it.dst, false); err != nil {
			return "", err
		}
		s.Log(worker.LogInfo, fmt.Sprintf("staged %s as %s", it.src, it.dst))
	}
	return string(code), nil
}

// kernelEnv builds the kernel's whole environment: PATH (the environment's
// bin first, then the worker's PATH without what the apps' user cannot
// search), HOME (the working directory when apps run as another user),
// LANG, IPYTHONDIR in the working directory, then the manifest's env, then
// config.env, then the HYPHA_* connection variables, which always win.
func (w *Worker) kernelEnv(cfg worker.Config, env condaenv.Env, u localproc.User, dir string) ([]string, []string) {
	m := map[string]string{
		"PATH":                           filepath.Join(env.Prefix, "bin") + string(filepath.ListSeparator) + w.runner.Path(),
		"CONDA_PREFIX":                   env.Prefix,
		"IPYTHONDIR":                     filepath.Join(dir, ".ipython"),
		"PYDEVD_DISABLE_FILE_VALIDATION": "1",
		// A parent handle keeps ipykernel from printing its terminal
		// banner (with the connection file's path) into the logs; 1 also
		// keeps its parent poller off: the supervisor ties the kernel's
		// life to the session's.
		"JPY_PARENT_PID": "1",
	}
	return localproc.AppEnv(m, cfg, u, dir)
}

// monitor waits until the kernel's processes have ended (by themselves, or
// because the kernel stopped answering, or a stop), releases the
// environment and sets the final status.
func (w *Worker) monitor(s *worker.Session, h *kernelSession, ls *localproc.Session, k *jupyter.Kernel) {
	defer w.bg.Done()
	select {
	case <-ls.Exited():
	case <-k.Done():
		// Dead by its heartbeat, or shut down by a stop: its processes go.
		h.mu.Lock()
		stopped := h.stopped
		h.mu.Unlock()
		if !stopped {
			ls.Kill()
		}
	}
	<-ls.Done()
	scx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = k.Shutdown(scx) // closes the client's sockets; the process is gone
	cancel()
	ex := ls.Exit()
	h.mu.Lock()
	stopped := h.stopped
	env := h.env
	h.env = condaenv.Env{}
	h.mu.Unlock()
	env.Release()
	<-h.startDone
	if !stopped {
		why := "the kernel " + ex.Desc
		if err := k.Err(); err != nil && !errors.Is(err, jupyter.ErrClosed) {
			why = fmt.Sprintf("%s (%v)", why, err)
		}
		_ = s.Fail(fmt.Errorf("%w: %s", ErrKernelDead, why))
	} else {
		s.Log(worker.LogInfo, "kernel stopped: "+ex.Desc)
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

// Stop stops a session: the kernel is asked to shut down, then every
// process of the session gets SIGTERM and SIGKILL after the grace; the
// working directory goes and the environment is released. Unknown ids are
// not an error.
func (w *Worker) Stop(ctx context.Context, sessionID string) error {
	return w.Sessions.StopSession(ctx, sessionID, w.cleanup)
}

func (w *Worker) cleanup(ctx context.Context, s *worker.Session) error {
	h, ok := worker.HandleOf[*kernelSession](s)
	if !ok {
		return nil
	}
	h.mu.Lock()
	h.stopped = true
	ls, k := h.ls, h.kernel
	h.mu.Unlock()
	w.retention.Forget(s.ID())
	if ls == nil {
		// Start is still building the environment (it sees the stop
		// through the session context and releases what it holds).
		return nil
	}
	if k != nil {
		sctx, cancel := context.WithTimeout(ctx, w.opts.StopGrace+2*time.Second)
		if err := k.Shutdown(sctx); err != nil && !errors.Is(err, jupyter.ErrKernelDead) && !errors.Is(err, jupyter.ErrClosed) {
			s.Log(worker.LogInfo, "kernel shutdown: "+err.Error())
		}
		cancel()
	}
	if err := ls.Stop(ctx, s.Logs()); err != nil {
		return err
	}
	if k == nil {
		return nil // Start releases the rest
	}
	select {
	case <-h.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("session %s: the kernel did not end after SIGKILL", s.ID())
	}
}

// Shutdown refuses new starts, aborts the ones in flight, stops every
// session and waits for all background work. Safe to call more than once.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	w.inflight.Wait()
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
		w.runner.Close()
	}
	return err
}
