package browser

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/worker"
)

// LogConsole is the log type of the page's console messages ("[level] text");
// page errors (uncaught exceptions) are worker.LogError.
const LogConsole worker.LogType = "console"

// DefaultEntryPoint is the page compile produces for window apps.
const DefaultEntryPoint = "index.html"

// tab is a session's handle: one page in its own browser context.
type tab struct {
	b      *browserProc
	ctx    context.Context // chromedp context of the page
	cancel context.CancelFunc
	op     sync.Mutex    // one DevTools action at a time on the page
	pumped chan struct{} // closed when the console pump ended
	url    string        // the page's URL without the query (no token)
}

// pageURL is where a session's page is loaded from, and the same URL with
// the query left out for logs (the query carries the token).
func pageURL(cfg worker.Config) (full, shown string, err error) {
	switch t := cfg.Manifest.Type(); t {
	case TypeWebApp:
		entry := cfg.Manifest.EntryPoint()
		u, err := url.Parse(entry)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", "", fmt.Errorf("%w: a web-app needs an http(s) URL as entry_point, got %q", worker.ErrInvalidConfig, entry)
		}
		return u.String(), u.Scheme + "://" + u.Host + u.Path, nil
	case TypeWindow, TypeIframe, TypeWebWorker, TypeHypha, TypeWebPython:
		base, err := url.Parse(cfg.AppFilesBaseURL)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return "", "", fmt.Errorf("%w: app_files_base_url must be an http(s) URL, got %q", worker.ErrInvalidConfig, cfg.AppFilesBaseURL)
		}
		entry := cfg.EntryPoint
		if entry == "" {
			entry = cfg.Manifest.EntryPoint()
		}
		if entry == "" {
			entry = DefaultEntryPoint
		}
		if strings.Contains(entry, "..") || strings.HasPrefix(entry, "/") || strings.Contains(entry, "://") || strings.ContainsAny(entry, "?#\\") {
			return "", "", fmt.Errorf("%w: entry_point %q must be a relative file path", worker.ErrInvalidConfig, entry)
		}
		u := base.JoinPath(entry)
		// The page reads these as upstream's template does: from its query.
		q := url.Values{}
		q.Set("server_url", cfg.ServerURL)
		q.Set("workspace", cfg.Workspace)
		q.Set("client_id", cfg.ClientID)
		q.Set("app_id", cfg.AppID)
		if cfg.Token != "" {
			q.Set("token", cfg.Token)
		}
		shown = u.String()
		u.RawQuery = q.Encode()
		return u.String(), shown, nil
	default:
		return "", "", fmt.Errorf("%w: app type %q is not supported by the browser worker (supported: %s)", worker.ErrInvalidConfig, t, strings.Join(SupportedTypes, ", "))
	}
}

// Start opens a page for the app in a new browser context and waits until
// it has loaded.
func (w *Worker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return "", fmt.Errorf("%w: the browser worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	defer w.inflight.Done()

	rep := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{Logger: w.opts.Logger})
	defer func() { _ = rep.Close(context.WithoutCancel(ctx)) }()
	fail := func(err error) (string, error) {
		rep.Error(err.Error())
		return "", err
	}
	full, shown, err := pageURL(cfg)
	if err != nil {
		return fail(err)
	}
	var setup *webAppSetup
	if cfg.Manifest.Type() == TypeWebApp {
		u, _ := url.Parse(full)
		if setup, err = parseWebApp(cfg.Manifest, u); err != nil {
			return fail(err)
		}
	}
	if w.Sessions.Len() >= w.opts.MaxSessions {
		return fail(fmt.Errorf("%w: the browser worker runs its maximum of %d sessions", worker.ErrWorkerNotAvailable, w.opts.MaxSessions))
	}
	rep.Info("starting the browser")
	b, err := w.ensureBrowser(ctx)
	if err != nil {
		return fail(err)
	}
	h := &tab{b: b, pumped: make(chan struct{}), url: shown}
	s, err := w.Sessions.CreateFromConfig(cfg, h)
	if err != nil {
		return fail(err)
	}
	b.mu.Lock()
	b.sessions[s] = struct{}{}
	b.mu.Unlock()

	h.ctx, h.cancel = chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	// A stop (the session context) or the caller giving up aborts the load.
	lctx, lcancel := context.WithTimeout(h.ctx, w.opts.LoadTimeout)
	defer lcancel()
	defer context.AfterFunc(ctx, lcancel)()
	defer context.AfterFunc(s.Context(), lcancel)()
	// The page's first run must be on h.ctx itself: chromedp ties the page's
	// event loop to the context of that run. A load that is aborted closes
	// the page (the session fails then anyway).
	stopFirst := context.AfterFunc(lctx, h.cancel)
	pumping := false
	abort := func(err error) (string, error) {
		if !pumping {
			close(h.pumped)
		}
		_ = s.Fail(err)
		_ = w.Sessions.StopSession(context.WithoutCancel(ctx), s.ID(), w.cleanup)
		return fail(err)
	}
	h.op.Lock()
	err = chromedp.Do(h.ctx) // creates the browser context and its page
	h.op.Unlock()
	if err != nil {
		return abort(fmt.Errorf("%w: opening a page: %w", worker.ErrWorkerNotAvailable, err))
	}
	w.bg.Add(1)
	pumping = true
	go w.pumpConsole(s, h)
	if setup != nil {
		if err := w.beforeLoad(lctx, h, setup); err != nil {
			return abort(fmt.Errorf("%w: preparing the page: %w", worker.ErrWorkerNotAvailable, err))
		}
	}
	rep.Info("loading " + shown)
	h.op.Lock()
	err = chromedp.Do(lctx, chromedp.Navigate(full))
	h.op.Unlock()
	if err != nil {
		if lctx.Err() != nil && ctx.Err() == nil && s.Context().Err() == nil {
			err = fmt.Errorf("the page did not load within %s", w.opts.LoadTimeout)
		}
		return abort(fmt.Errorf("%w: loading %s: %w", worker.ErrWorkerNotAvailable, shown, err))
	}
	if setup != nil && setup.startup != "" {
		src, err := w.startupScript(lctx, cfg, setup.startup)
		if err == nil {
			h.op.Lock()
			_, err = chromedp.Run(lctx, evaluate(src))
			h.op.Unlock()
		}
		if err != nil {
			return abort(fmt.Errorf("%w: startup_script %s: %w", worker.ErrWorkerNotAvailable, setup.startup, err))
		}
		s.Log(worker.LogInfo, "startup_script ran: "+setup.startup)
	}
	if cfg.Manifest.Type() == TypeWebPython {
		// Start answers once Python runs the app: a script that raises
		// fails the start with its traceback.
		if err := waitPython(lctx, h); err != nil {
			s.Log(worker.LogError, err.Error())
			return abort(err)
		}
	}
	if !stopFirst() {
		return abort(fmt.Errorf("%w: loading %s: aborted", worker.ErrWorkerNotAvailable, shown))
	}
	if err := s.SetStatus(worker.StatusRunning); err != nil {
		return abort(err)
	}
	s.Log(worker.LogInfo, "page loaded: "+shown)
	rep.Success("page loaded")
	return s.ID(), nil
}

// pumpConsole copies the page's console into the session's logs until the
// page closes. The log store bounds what is kept; one message is truncated
// to MaxConsoleBytes.
func (w *Worker) pumpConsole(s *worker.Session, h *tab) {
	defer w.bg.Done()
	defer close(h.pumped)
	for m, err := range chromedp.Console(h.ctx) {
		if err != nil {
			return
		}
		text := truncate(m.Text, w.opts.MaxConsoleBytes)
		if m.IsException() {
			s.Log(worker.LogError, text)
			continue
		}
		level := string(m.Type)
		if m.Source != "" && m.Type == chromedp.ConsoleError {
			// A failed load (network, security) is an error of the page.
			s.Log(worker.LogError, "["+m.Source+"] "+text)
			continue
		}
		s.Log(LogConsole, "["+level+"] "+text)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf(" … [%d bytes truncated]", len(s)-cut)
}

// Stop closes the session's page and disposes of its browser context.
// Unknown ids are not an error.
func (w *Worker) Stop(ctx context.Context, sessionID string) error {
	return w.Sessions.StopSession(ctx, sessionID, w.cleanup)
}

func (w *Worker) cleanup(ctx context.Context, s *worker.Session) error {
	h, ok := worker.HandleOf[*tab](s)
	if !ok || h.cancel == nil {
		return nil
	}
	h.b.mu.Lock()
	delete(h.b.sessions, s)
	h.b.mu.Unlock()
	// Cancel waits for the page to close and the browser context to go.
	err := chromedp.Cancel(h.ctx)
	h.cancel()
	select {
	case <-h.pumped:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-h.b.lost:
		return nil // the browser is gone, and the page with it
	default:
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		// The page is closed for this worker either way (its context
		// ended); what failed is telling the browser, whose page may
		// already be gone (a crashed renderer). A stop still succeeds.
		w.opts.Logger.Warn("closing a session's page", "session", s.ID(), "err", err)
	}
	return nil
}
