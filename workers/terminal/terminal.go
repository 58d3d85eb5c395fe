// Package terminal is the built-in worker for app type "terminal": each
// session is a program (the manifest's startup_command, by default a
// shell) on a pseudo-terminal of its own, which clients drive through
// execute, write_terminal, read_terminal, resize_terminal,
// get_screen_content and attach (upstream's function names and shapes).
//
// A session is as confined as a process worker's (internal/localproc): its
// own unprivileged uid when the worker is root, a private working
// directory with the manifest's files, a minimal environment with the
// session's HYPHA_* variables, a per-session supervisor in a PID namespace
// of its own, so that nothing of it outlives stop. The terminal belongs to
// the session's uid.
//
// One goroutine reads each pty and hands every chunk, in order, to a
// screen model (a VT emulator, github.com/charmbracelet/x/vt), a bounded
// scrollback, the session's log (ANSI-stripped lines, type stdout), every
// attached viewer (each bounded; one that falls behind gets a repaint and
// a count of what it missed, never holding the pty back) and every execute
// waiting for its end marker (see execute.go). docs/workers.md, "Terminal
// worker", has the details and the differences from upstream.
package terminal

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"

	"github.com/hypha-go/hypha/internal/appfiles"
	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"
)

// Type is the app type this worker runs.
const Type = "terminal"

// Defaults for Options.
const (
	DefaultMaxSessions       = 50 // upstream's HYPHA_MAX_TERMINAL_SESSIONS default
	DefaultStopGrace         = 2 * time.Second
	DefaultStartTimeout      = 60 * time.Second
	DefaultKeepFinished      = 5 * time.Minute
	DefaultRows              = 24
	DefaultCols              = 80
	DefaultScrollbackBytes   = 1 << 20
	DefaultViewerBytes       = 4 << 20
	DefaultMaxViewers        = 16
	DefaultExecuteTimeout    = 30 * time.Second
	DefaultMaxExecuteTimeout = 30 * time.Minute
	DefaultMaxExecuteOutput  = 64 << 20
	DefaultMaxScriptBytes    = 1 << 20
	DefaultMaxLineBytes      = 16 << 10
	DefaultMaxFileBytes      = 64 << 20
	DefaultMaxFiles          = 1000
	DefaultMaxTotalBytes     = 128 << 20
	MaxRows, MaxCols         = 1000, 1000
)

// Options configures a Worker. Zero values mean the defaults.
type Options struct {
	// Shell is the program a session runs when its manifest has no
	// startup_command (default: $SHELL of the worker when it is an
	// absolute path that exists, else /bin/bash, else /bin/sh).
	Shell string

	// AppUser, AppUIDBase/AppUIDCount, RunAsWorkerUser, NoSupervisor and
	// NoPIDNamespace choose who sessions run as and how they are
	// supervised, exactly as for the process worker (see
	// internal/localproc.Options).
	AppUser                 string
	AppUIDBase, AppUIDCount int
	RunAsWorkerUser         bool
	NoSupervisor            bool
	NoPIDNamespace          bool

	// MaxSessions caps sessions (default DefaultMaxSessions).
	MaxSessions int
	// StopGrace is how long stop waits after the hang-up and SIGTERM
	// before SIGKILL (default DefaultStopGrace).
	StopGrace time.Duration
	// StartTimeout bounds a start when the config has no timeout.
	StartTimeout time.Duration
	// KeepFinished is how long a session whose program exited stays
	// listed with its logs and screen.
	KeepFinished time.Duration
	// WorkDir is the parent of the per-session working directories
	// (default os.TempDir()).
	WorkDir string

	// Rows and Cols are a new terminal's size (default 24x80).
	Rows, Cols int
	// ScrollbackBytes bounds the raw output kept per session for
	// read_terminal and for a viewer's first screen (default 1 MiB).
	ScrollbackBytes int
	// ViewerBytes bounds what one attached viewer may fall behind before
	// its queue is dropped and it gets a repaint (default 4 MiB).
	ViewerBytes int
	// MaxViewers bounds the viewers attached to one session at once
	// (default DefaultMaxViewers): with ViewerBytes, what viewers may hold.
	MaxViewers int
	// ExecuteTimeout is execute's timeout when config.timeout is absent
	// (default 30 s); MaxExecuteTimeout caps config.timeout (30 min).
	ExecuteTimeout, MaxExecuteTimeout time.Duration
	// MaxExecuteOutput bounds the output one execute keeps (default 64
	// MiB); MaxScriptBytes bounds its script (default 1 MiB).
	MaxExecuteOutput int
	MaxScriptBytes   int
	// MaxLineBytes bounds one log entry (a longer line is cut).
	MaxLineBytes int
	// MaxFileBytes, MaxFiles and MaxTotalBytes bound the files fetched
	// for a session (entry point and files_to_stage).
	MaxFileBytes  int64
	MaxFiles      int
	MaxTotalBytes int64
	// Logs caps each session's log store.
	Logs worker.LogLimits

	// HTTPClient fetches app files; DisableSSL skips TLS verification.
	HTTPClient *http.Client
	DisableSSL bool

	Name        string
	Description string
	// Logger receives worker events; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Shell == "" {
		o.Shell = defaultShell()
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
	if o.Rows <= 0 || o.Rows > MaxRows {
		o.Rows = DefaultRows
	}
	if o.Cols <= 0 || o.Cols > MaxCols {
		o.Cols = DefaultCols
	}
	if o.ScrollbackBytes <= 0 {
		o.ScrollbackBytes = DefaultScrollbackBytes
	}
	if o.ViewerBytes <= 0 {
		o.ViewerBytes = DefaultViewerBytes
	}
	if o.MaxViewers <= 0 {
		o.MaxViewers = DefaultMaxViewers
	}
	if o.ExecuteTimeout <= 0 {
		o.ExecuteTimeout = DefaultExecuteTimeout
	}
	if o.MaxExecuteTimeout <= 0 {
		o.MaxExecuteTimeout = DefaultMaxExecuteTimeout
	}
	if o.MaxExecuteOutput <= 0 {
		o.MaxExecuteOutput = DefaultMaxExecuteOutput
	}
	if o.MaxScriptBytes <= 0 {
		o.MaxScriptBytes = DefaultMaxScriptBytes
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
		o.Name = "Terminal Worker"
	}
	if o.Description == "" {
		o.Description = "Runs terminal apps: a shell or another program on a pseudo-terminal per session"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// defaultShell is the worker user's $SHELL when usable, else bash, else sh.
func defaultShell() string {
	if sh := os.Getenv("SHELL"); filepath.IsAbs(sh) {
		if fi, err := os.Stat(sh); err == nil && fi.Mode().IsRegular() {
			return sh
		}
	}
	for _, sh := range []string{"/bin/bash", "/usr/bin/bash"} {
		if _, err := os.Stat(sh); err == nil {
			return sh
		}
	}
	return "/bin/sh"
}

// MaybeSupervise must be called first thing in main (and TestMain) of a
// program that runs this worker: see localproc.MaybeSupervise.
func MaybeSupervise() { localproc.MaybeSupervise() }

// SpawnerFunction names the goroutine that lives as long as the process
// (for goleak.IgnoreTopFunction).
const SpawnerFunction = localproc.SpawnerFunction

// Worker runs terminal sessions. Create it with New; release it with
// Shutdown.
type Worker struct {
	worker.Base
	opts     Options
	client   *http.Client
	insecure *http.Client
	runner   *localproc.Runner

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	inflight  sync.WaitGroup
	bg        sync.WaitGroup
	retention *worker.Retention // finished sessions: listed for KeepFinished, then stopped
}

var (
	_ worker.Worker     = (*Worker)(nil)
	_ worker.Executor   = (*Worker)(nil)
	_ worker.Shutdowner = (*Worker)(nil)
	_ worker.Extender   = (*Worker)(nil)
)

// New returns a Worker.
func New(opts Options) *Worker {
	opts = opts.withDefaults()
	w := &Worker{opts: opts}
	w.Base = worker.Base{
		Sessions: worker.NewRegistry(worker.RegistryOptions{MaxSessions: opts.MaxSessions, Logs: opts.Logs, Logger: opts.Logger}),
		Stopper:  w,
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
	w.insecure = &http.Client{Transport: tr}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.runner = localproc.New(localproc.Options{
		AppUser: opts.AppUser, AppUIDBase: opts.AppUIDBase, AppUIDCount: opts.AppUIDCount,
		RunAsWorkerUser: opts.RunAsWorkerUser, NoSupervisor: opts.NoSupervisor, NoPIDNamespace: opts.NoPIDNamespace,
		MaxSessions: opts.MaxSessions, StopGrace: opts.StopGrace, WorkDir: opts.WorkDir,
		MaxLineBytes: opts.MaxLineBytes, Logger: opts.Logger,
	})
	return w
}

// Options returns the options in effect.
func (w *Worker) Options() Options { return w.opts }

// Properties describes the worker for registration.
func (w *Worker) Properties() worker.Properties {
	return worker.Properties{
		Name:           w.opts.Name,
		Description:    w.opts.Description,
		SupportedTypes: []string{Type},
		RequireContext: true,
	}
}

// session is a session's runtime state (its worker.Session handle).
type session struct {
	mu      sync.Mutex
	ls      *localproc.Session
	tty     *tty
	dialect string
	stopped bool
	pid     int

	execSem   chan struct{} // one execute at a time
	done      chan struct{} // the monitor finished
	startDone chan struct{}
}

// command returns the program and arguments of a session.
func (w *Worker) command(m worker.Manifest) ([]string, error) {
	raw, ok := m["startup_command"]
	if !ok || raw == nil {
		return []string{w.opts.Shell}, nil
	}
	var argv []string
	switch v := raw.(type) {
	case string:
		var err error
		if argv, err = splitCommand(v); err != nil {
			return nil, fmt.Errorf("%w: manifest.startup_command: %v", worker.ErrInvalidConfig, err)
		}
	case []any:
		for i, a := range v {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("%w: manifest.startup_command[%d]: want a string, got %T", worker.ErrInvalidConfig, i, a)
			}
			argv = append(argv, s)
		}
	default:
		return nil, fmt.Errorf("%w: manifest.startup_command: want a string or a list of strings, got %T", worker.ErrInvalidConfig, raw)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%w: manifest.startup_command is empty", worker.ErrInvalidConfig)
	}
	for _, a := range argv {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("%w: manifest.startup_command holds a NUL byte", worker.ErrInvalidConfig)
		}
	}
	return argv, nil
}

// Start prepares the working directory, starts the program on a new pty
// and returns once it runs.
func (w *Worker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return "", fmt.Errorf("%w: the terminal worker is shutting down", worker.ErrWorkerNotAvailable)
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
		return fail(fmt.Errorf("%w: terminals are not supported on this platform", worker.ErrWorkerNotAvailable))
	}
	if t := cfg.Manifest.Type(); t != Type {
		return fail(fmt.Errorf("%w: app type %q is not supported (want %s)", worker.ErrInvalidConfig, t, Type))
	}
	argv, err := w.command(cfg.Manifest)
	if err != nil {
		return fail(err)
	}
	files, err := stagedFiles(cfg, w.opts.MaxFiles)
	if err != nil {
		return fail(err)
	}
	if len(files) > 0 {
		if err := appfiles.CheckBaseURL(cfg.AppFilesBaseURL); err != nil {
			return fail(err)
		}
	}
	dialect := dialectOf(argv[0])
	if d := cfg.Manifest.String("execute_dialect"); d != "" {
		if d != DialectShell && d != DialectPython {
			return fail(fmt.Errorf("%w: manifest.execute_dialect %q (want %s or %s)", worker.ErrInvalidConfig, d, DialectShell, DialectPython))
		}
		dialect = d
	}
	if err := w.runner.Setup(ctx); err != nil {
		return fail(err)
	}
	path, err := w.lookPath(argv[0])
	if err != nil {
		return fail(err)
	}

	w.retention.MakeRoom(w.opts.MaxSessions)
	h := &session{dialect: dialect, execSem: make(chan struct{}, 1), done: make(chan struct{}), startDone: make(chan struct{})}
	s, err := w.Sessions.CreateFromConfig(cfg, h)
	if err != nil {
		return fail(err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = w.opts.StartTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer context.AfterFunc(s.Context(), cancel)()
	defer context.AfterFunc(w.ctx, cancel)()
	abort := func(err error) (string, error) {
		switch {
		case errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			err = fmt.Errorf("startup timed out after %s: %w", timeout, err)
		case s.Context().Err() != nil:
			err = fmt.Errorf("session stopped during start: %w", err)
		case w.ctx.Err() != nil:
			err = fmt.Errorf("%w: the terminal worker is shutting down", worker.ErrWorkerNotAvailable)
		}
		h.mu.Lock()
		ls := h.ls
		h.mu.Unlock()
		if ls != nil {
			ls.Close()
		}
		close(h.startDone)
		rep.Error(err.Error())
		return "", w.Sessions.Discard(s, err)
	}

	rep.Info(fmt.Sprintf("Starting terminal session %s", s.ID()))
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
	if len(files) > 0 {
		rep.Info(fmt.Sprintf("Preparing %d file(s)", len(files)))
		client := w.client
		if cfg.DisableSSL {
			client = w.insecure
		}
		if err := w.fetchFiles(sctx, client, dir, cfg, files); err != nil {
			return abort(err)
		}
		s.Log(worker.LogInfo, fmt.Sprintf("fetched %d file(s): %s", len(files), strings.Join(files, ", ")))
	}
	if err := sctx.Err(); err != nil {
		return abort(err)
	}
	env, dropped := w.appEnv(cfg, ls.User(), dir)
	for _, k := range dropped {
		s.Log(worker.LogInfo, fmt.Sprintf("env %s ignored: value is not a string", k))
	}
	rep.Info("Spawning terminal with command: " + strings.Join(argv, " "))
	if err := w.spawn(s, h, path, argv, env); err != nil {
		return abort(err)
	}
	err = s.SetStatus(worker.StatusRunning)
	close(h.startDone)
	if err != nil {
		err = fmt.Errorf("session stopped during start: %w", err)
		rep.Error(err.Error())
		return "", err
	}
	rep.Success(fmt.Sprintf("Terminal session %s started (pid %d)", s.ID(), h.pid))
	return s.ID(), nil
}

// lookPath resolves the program in the PATH sessions get.
func (w *Worker) lookPath(prog string) (string, error) {
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			return "", fmt.Errorf("%w: startup command %q: a program with a slash must be an absolute path", worker.ErrInvalidConfig, prog)
		}
		return prog, nil
	}
	for _, dir := range filepath.SplitList(w.runner.Path()) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: startup command %q: %w", worker.ErrInvalidConfig, prog, exec.ErrNotFound)
}

// appEnv builds the program's whole environment: PATH, HOME, LANG,
// TERM=xterm-256color, then manifest env, then config env, then the
// HYPHA_* connection variables, which always win.
func (w *Worker) appEnv(cfg worker.Config, u localproc.User, dir string) ([]string, []string) {
	return localproc.AppEnv(map[string]string{"PATH": w.runner.Path(), "TERM": "xterm-256color", "COLORTERM": "truecolor"}, cfg, u, dir)
}

// spawn opens the pty, starts the program on it, and the reader and the
// monitor.
func (w *Worker) spawn(s *worker.Session, h *session, path string, argv, env []string) error {
	w.mu.Lock()
	closed := w.closed
	if !closed {
		w.bg.Add(1)
	}
	w.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: the terminal worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	master, slave, err := pty.Open()
	if err != nil {
		w.bg.Done()
		return fmt.Errorf("open a pseudo-terminal: %w", err)
	}
	if err := pty.Setsize(master, &pty.Winsize{Rows: uint16(w.opts.Rows), Cols: uint16(w.opts.Cols)}); err != nil {
		master.Close()
		slave.Close()
		w.bg.Done()
		return fmt.Errorf("size the pseudo-terminal: %w", err)
	}
	if master, err = pollable(master); err != nil { // closes the old master
		slave.Close()
		w.bg.Done()
		return err
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		master.Close()
		slave.Close()
		w.bg.Done()
		return localproc.ErrStopped
	}
	ls := h.ls
	err = ls.Start(localproc.Command{Path: path, Args: argv, Env: env, Logs: s.Logs(), LogContext: s.Context(), TTY: slave})
	slave.Close() // the program holds its own copies
	if err != nil {
		h.mu.Unlock()
		master.Close()
		w.bg.Done()
		return err
	}
	// What the program writes meanwhile waits in the pty.
	t := newTTY(master, s.Logs(), w.opts.Rows, w.opts.Cols, w.opts.ScrollbackBytes, w.opts.ViewerBytes, w.opts.MaxLineBytes)
	h.pid, h.tty = ls.PID(), t
	t.start()
	h.mu.Unlock()
	s.Log(worker.LogInfo, fmt.Sprintf("Terminal session started with command: %s (pid %d)", strings.Join(argv, " "), h.pid))
	go w.monitor(s, h, ls, t)
	return nil
}

// monitor waits for the program's end, lets the reader drain what it
// wrote, closes the pty and sets the final status.
func (w *Worker) monitor(s *worker.Session, h *session, ls *localproc.Session, t *tty) {
	defer w.bg.Done()
	<-ls.Done()
	ex := ls.Exit()
	// Every process holding the terminal is gone (the supervisor killed
	// the session's subtree): the reader reaches the end by itself. A
	// bound guards against a descriptor leaked elsewhere.
	select {
	case <-t.readerDone:
	case <-time.After(5 * time.Second):
	}
	t.close()
	h.mu.Lock()
	stopped := h.stopped
	h.mu.Unlock()
	<-h.startDone
	if !stopped && ex.Code >= 0 {
		s.SetExitCode(ex.Code)
	}
	if n := t.screen.skippedBytes(); n > 0 {
		s.Log(worker.LogInfo, fmt.Sprintf("the screen model skipped %d bytes of output it could not keep up with (the screen shows what came after)", n))
	}
	if d := t.dropped.Load(); d > 0 {
		s.Log(worker.LogInfo, fmt.Sprintf("%d time(s) a viewer fell behind and was sent a repaint instead of the output it missed", d))
	}
	switch {
	case stopped:
		s.Log(worker.LogInfo, "terminal stopped: "+ex.Desc)
	case ex.Err == nil && ex.Code == 0:
		s.Log(worker.LogInfo, "terminal program exited with code 0")
		_ = s.SetStatus(worker.StatusCompleted)
	default:
		_ = s.Fail(fmt.Errorf("terminal program %s", ex.Desc))
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

// Stop stops a session: the terminal hangs up (the program gets SIGHUP, as
// when a terminal window closes), then SIGTERM to every process of the
// session and SIGKILL after StopGrace; the working directory is removed.
func (w *Worker) Stop(ctx context.Context, sessionID string) error {
	return w.Sessions.StopSession(ctx, sessionID, w.cleanup)
}

func (w *Worker) cleanup(ctx context.Context, s *worker.Session) error {
	h, ok := worker.HandleOf[*session](s)
	if !ok {
		return nil
	}
	h.mu.Lock()
	h.stopped = true
	pid, ls, t := h.pid, h.ls, h.tty
	h.mu.Unlock()
	w.retention.Forget(s.ID())
	if ls == nil {
		return nil
	}
	if t != nil {
		// A shell ignores SIGTERM but not a hang-up.
		_ = t.master.Close()
	}
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
		return fmt.Errorf("terminal session %s: the program did not end after SIGKILL", s.ID())
	}
}

// Shutdown refuses new starts, stops every session and waits for all
// background work.
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

// GetLogs is worker.Base's, plus type "screen": one item holding the
// rendered screen (on the wire the bare string, see LogsWire).
func (w *Worker) GetLogs(ctx context.Context, sessionID string, q worker.LogQuery) (worker.LogPage, error) {
	if q.Type != "screen" {
		return w.Base.GetLogs(ctx, sessionID, q)
	}
	s, err := w.Sessions.LookupFor(ctx, sessionID)
	if err != nil {
		return worker.LogPage{}, err
	}
	content := ""
	if h, ok := worker.HandleOf[*session](s); ok {
		h.mu.Lock()
		t := h.tty
		h.mu.Unlock()
		if t != nil {
			content = t.screenText()
		}
	}
	return worker.LogPage{
		Query: q, Items: []worker.LogEntry{{Type: "screen", Content: content}},
		Total: 1, NextOffset: 1, Status: string(s.Status()),
	}, nil
}

// LogsWire answers get_logs on the wire: type "screen" with the bare
// screen text, as upstream's terminal worker does (upstream's apps
// controller passes it to its clients unchanged; ours takes it back as a
// one-item page), every other query with the page.
func (w *Worker) LogsWire(page worker.LogPage) any {
	if page.Query.Type == "screen" && len(page.Items) == 1 {
		return page.Items[0].Content
	}
	return page.ToMap()
}

// Execute runs a script in a session's terminal (see execute.go).
func (w *Worker) Execute(ctx context.Context, req worker.ExecuteRequest) (any, error) {
	s, h, err := w.lookup(ctx, req.SessionID)
	if err != nil {
		return nil, err
	}
	return w.execute(ctx, s, h, req)
}

// lookup finds a session visible to the caller and its terminal.
func (w *Worker) lookup(ctx context.Context, id string) (*worker.Session, *session, error) {
	s, err := w.Sessions.LookupFor(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	h, ok := worker.HandleOf[*session](s)
	if !ok {
		return nil, nil, worker.SessionNotFound(id)
	}
	return s, h, nil
}

// terminalOf returns a session's terminal, or an error when it has none
// (still starting, or its program ended).
func (w *Worker) terminalOf(ctx context.Context, id string) (*worker.Session, *tty, error) {
	s, h, err := w.lookup(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	t := h.tty
	h.mu.Unlock()
	if t == nil {
		return nil, nil, fmt.Errorf("%w: session %s has no terminal yet (status %s)", worker.ErrInvalidConfig, id, s.Status())
	}
	return s, t, nil
}

// fetchFiles downloads the session's files into its working directory.
func (w *Worker) fetchFiles(ctx context.Context, client *http.Client, dir string, cfg worker.Config, files []string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open working directory: %w", err)
	}
	defer root.Close()
	return appfiles.Fetcher{
		Client: client, Base: cfg.AppFilesBaseURL, Token: cfg.Token,
		MaxFileBytes: w.opts.MaxFileBytes, Budget: appfiles.NewBudget(w.opts.MaxTotalBytes, "(max total bytes)"),
	}.Files(ctx, root, files)
}
