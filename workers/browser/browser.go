// Package browser is the browser worker: web apps run in headless Chromium,
// driven over the DevTools protocol (chromedp). One Chromium process serves
// the whole worker; every session gets its own browser context (separate
// cookies, storage and cache) with one page in it.
//
// App types: "window" and "iframe" (the app's script inside a page that
// connects back with the JavaScript hypha-rpc client served by our server),
// "web-worker" (the script in a Web Worker the page starts), "web-python"
// (Python in Pyodide, also served by our server), "hypha" (an ImJoy-style
// source) and "web-app" (an external URL); execute (JavaScript in the page,
// Python in a web-python page), take_screenshot and console logs.
package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/worker"
)

// App types this worker runs.
const (
	TypeWindow    = "window"
	TypeIframe    = "iframe"
	TypeWebWorker = "web-worker"
	TypeWebApp    = "web-app"
)

// SupportedTypes lists them.
var SupportedTypes = []string{TypeWindow, TypeIframe, TypeWebWorker, TypeWebPython, TypeHypha, TypeWebApp}

// Sentinel errors.
var (
	// ErrNoBrowser: no Chromium executable was found.
	ErrNoBrowser = fmt.Errorf("%w: no Chromium found (install Debian's chromium with `apt-get install chromium`, or give the path of a Chromium/Chrome executable)", worker.ErrWorkerNotAvailable)
	// ErrBrowserDied: the browser process ended under a running session.
	ErrBrowserDied = errors.New("the browser process ended")
	// ErrScript: a script given to execute threw or could not be evaluated.
	ErrScript = errors.New("script error")
)

// CandidatePaths are tried in order when Options.ChromiumPath is empty: an
// absolute path is used if it exists, a bare name is looked up on PATH.
var CandidatePaths = []string{"/usr/bin/chromium", "chromium-headless-shell", "chromium", "chromium-browser"}

// Options configure a Worker. The zero value is usable.
type Options struct {
	Name        string // default "Browser Worker"
	Description string
	// ChromiumPath is the browser executable; empty means the first of
	// CandidatePaths that exists.
	ChromiumPath string
	// MaxSessions caps concurrent sessions (default 20): those starting,
	// running or stopping. A session failed by a browser crash has no page
	// any more and no longer counts; it stays (with its logs) until
	// stopped, up to MaxSessions more such sessions.
	MaxSessions int
	// Logs bounds each session's log store.
	Logs worker.LogLimits
	// LoadTimeout bounds a page load at start (default 60s).
	LoadTimeout time.Duration
	// ExecuteTimeout is execute's default timeout (default 60s); the
	// config's "timeout" (seconds) overrides it.
	ExecuteTimeout time.Duration
	// MaxConsoleBytes truncates one console message (default 8 KiB).
	MaxConsoleBytes int
	// Sandbox keeps Chromium's sandbox on even when running as root (where
	// it cannot work in most containers, so it is off for root by default).
	Sandbox bool
	// IgnoreCertErrors accepts any TLS certificate (pages and the startup
	// script's download): the worker's --disable-ssl.
	IgnoreCertErrors bool
	Logger           *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = "Browser Worker"
	}
	if o.Description == "" {
		o.Description = "Runs web apps (window, iframe, web-worker, web-python, hypha, web-app) in headless Chromium"
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 20
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 60 * time.Second
	}
	if o.ExecuteTimeout <= 0 {
		o.ExecuteTimeout = 60 * time.Second
	}
	if o.MaxConsoleBytes <= 0 {
		o.MaxConsoleBytes = 8 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// FindChromium resolves the browser executable: path if given (it must
// exist), else the first of CandidatePaths found. The error wraps
// ErrNoBrowser and says what to install.
func FindChromium(path string) (string, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrNoBrowser, path, err)
		}
		return p, nil
	}
	for _, c := range CandidatePaths {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBrowser
}

// Worker is the browser worker.
type Worker struct {
	worker.Base
	opts Options

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	live     int          // sessions holding a slot of MaxSessions (see tab.release)
	browser  *browserProc // nil: none running (never started, died or shut down)
	inflight sync.WaitGroup
	bg       sync.WaitGroup
}

var (
	_ worker.Worker     = (*Worker)(nil)
	_ worker.Compiler   = (*Worker)(nil)
	_ worker.Executor   = (*Worker)(nil)
	_ worker.Shutdowner = (*Worker)(nil)
	_ worker.Extender   = (*Worker)(nil)
)

// New returns a Worker. The browser starts with the first session.
func New(opts Options) *Worker {
	opts = opts.withDefaults()
	w := &Worker{opts: opts}
	w.Base = worker.Base{
		// The registry's own cap bounds the entries, failed ones kept for
		// their logs included; Start enforces MaxSessions on live ones.
		Sessions: worker.NewRegistry(worker.RegistryOptions{MaxSessions: 2 * opts.MaxSessions, Logs: opts.Logs, Logger: opts.Logger}),
		Stopper:  w,
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// Properties describes the worker for registration.
func (w *Worker) Properties() worker.Properties {
	return worker.Properties{
		Name: w.opts.Name, Description: w.opts.Description,
		SupportedTypes: SupportedTypes,
	}
}

// Options returns the options in effect (defaults applied).
func (w *Worker) Options() Options { return w.opts }

// ChromiumPath is the browser executable sessions use ("" when none is
// found).
func (w *Worker) ChromiumPath() string {
	p, _ := FindChromium(w.opts.ChromiumPath)
	return p
}

// Check reports whether a browser executable is found.
func (w *Worker) Check(context.Context) error {
	_, err := FindChromium(w.opts.ChromiumPath)
	return err
}

// browserProc is one running Chromium.
type browserProc struct {
	ctx     context.Context // chromedp browser context (the first tab)
	cancel  context.CancelFunc
	acancel context.CancelFunc
	dataDir string
	pid     int
	lost    <-chan struct{} // closed when the connection to the process drops

	mu       sync.Mutex
	sessions map[*worker.Session]struct{}
	closing  bool
}

// launch starts a Chromium process with its own profile directory.
func (w *Worker) launch(ctx context.Context) (*browserProc, error) {
	path, err := FindChromium(w.opts.ChromiumPath)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hypha-browser-")
	if err != nil {
		return nil, fmt.Errorf("browser profile directory: %w", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.DisableGPU,
		chromedp.Flag("use-mock-keychain", true),
		// Chromium starts two crash handlers (chrome_crashpad_handler)
		// that leave its process group and outlive it by a second or so,
		// with their database in the user's configuration directory, not
		// in the profile. With that directory inside the profile they
		// write nothing to the user's home and carry the profile's path
		// on their command line, so close kills them with the rest.
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(dir, "config")),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Killed with the worker (chromedp's own default on Linux),
			// and in a process group of its own: a Ctrl-C in the
			// terminal of `hypha run` or `hypha server` goes to the
			// foreground group and must not kill the browser under its
			// sessions before they are stopped.
			cmd.SysProcAttr = browserProcAttr()
		}),
	)
	if w.opts.IgnoreCertErrors {
		opts = append(opts, chromedp.IgnoreCertErrors)
	}
	if os.Geteuid() == 0 && !w.opts.Sandbox {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, acancel := chromedp.NewExecAllocator(w.ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &browserProc{ctx: bctx, cancel: bcancel, acancel: acancel, dataDir: dir, sessions: map[*worker.Session]struct{}{}}
	// The first run starts the process; ctx bounds the wait only.
	stop := context.AfterFunc(ctx, bcancel)
	err = chromedp.Do(bctx)
	stop()
	if err != nil {
		b.close()
		return nil, fmt.Errorf("%w: starting %s: %w", worker.ErrWorkerNotAvailable, path, err)
	}
	c := chromedp.FromContext(bctx)
	b.lost = c.Browser.LostConnection
	if p := c.Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	w.opts.Logger.Info("browser started", "path", path, "pid", b.pid)
	return b, nil
}

// close ends the process and removes its profile.
func (b *browserProc) close() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.cancel()
	b.acancel()
	// Chromium's helper processes (zygote, renderers, GPU, network) may
	// outlive the main process for a moment, or for good when it was
	// killed; each carries the profile directory, unique to this browser,
	// on its command line.
	for range 50 {
		if procs := processesWith(b.dataDir); len(procs) == 0 {
			break
		} else {
			for _, pid := range procs {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.RemoveAll(b.dataDir)
}

// processesWith lists the pids whose command line contains s.
func processesWith(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		// A zombie has an empty command line and is not counted.
		if strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ensureBrowser returns the running browser, launching one if none runs.
func (w *Worker) ensureBrowser(ctx context.Context) (*browserProc, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("%w: the browser worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	if b := w.browser; b != nil {
		select {
		case <-b.lost:
		default:
			return b, nil
		}
	}
	b, err := w.launch(ctx)
	if err != nil {
		return nil, err
	}
	w.browser = b
	w.bg.Add(1)
	go w.watch(b)
	return b, nil
}

// watch fails the sessions of b when its process dies unexpectedly, and
// forgets it so that the next start launches a fresh browser.
func (w *Worker) watch(b *browserProc) {
	defer w.bg.Done()
	<-b.lost
	b.mu.Lock()
	closing := b.closing
	var victims []*worker.Session
	for s := range b.sessions {
		victims = append(victims, s)
	}
	b.mu.Unlock()
	w.mu.Lock()
	if w.browser == b {
		w.browser = nil
	}
	w.mu.Unlock()
	if closing {
		return
	}
	w.opts.Logger.Warn("browser process ended unexpectedly", "pid", b.pid, "sessions", len(victims))
	for _, s := range victims {
		s.Log(worker.LogError, "the browser process ended; the session is lost")
		_ = s.Fail(fmt.Errorf("%w (pid %d) while the session was running", ErrBrowserDied, b.pid))
		// Its page is gone with the browser: the session no longer holds
		// a slot, so the worker can start new ones before someone stops
		// the failed ones.
		if h, ok := worker.HandleOf[*tab](s); ok {
			h.release()
		}
	}
	b.close()
}

// reserve takes a slot of MaxSessions for a new session; release gives it
// back.
func (w *Worker) reserve() (release func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.live >= w.opts.MaxSessions {
		return nil, fmt.Errorf("%w: the browser worker runs its maximum of %d sessions", worker.ErrWorkerNotAvailable, w.opts.MaxSessions)
	}
	w.live++
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			w.live--
			w.mu.Unlock()
		})
	}, nil
}

// LiveSessions is the number of sessions holding a slot of MaxSessions.
func (w *Worker) LiveSessions() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live
}

// BrowserPID is the pid of the running Chromium, 0 when none runs.
func (w *Worker) BrowserPID() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.browser == nil {
		return 0
	}
	return w.browser.pid
}

// Shutdown refuses new starts, stops every session and closes the browser.
// Safe to call more than once.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	b := w.browser
	if b != nil {
		// Whatever ends now ends by the shutdown, not by a crash.
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
	}
	w.mu.Unlock()
	w.cancel() // aborts starts in flight
	w.inflight.Wait()
	err := w.StopAll(ctx)
	w.mu.Lock()
	w.browser = nil
	w.mu.Unlock()
	if b != nil {
		b.close()
	}
	done := make(chan struct{})
	go func() { w.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("shutdown: %w", ctx.Err()))
	}
	return err
}
