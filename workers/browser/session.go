package browser

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"path"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
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
	b       *browserProc
	ctx     context.Context // chromedp context of the page
	cancel  context.CancelFunc
	op      sync.Mutex     // one DevTools action at a time on the page
	pumps   sync.WaitGroup // the console pumps of the page and its web workers
	pumped  chan struct{}  // closed when every pump ended
	url     string         // the page's URL without the query (no token)
	release func()         // gives back the session's slot of MaxSessions (idempotent)
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
		// Upstream's app-files URL answers with a redirect to a presigned
		// S3 URL unless use_proxy=true, and the S3 object is served as a
		// download (the page load is aborted). Our server ignores it.
		q.Set("use_proxy", "true")
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
	release, err := w.reserve()
	if err != nil {
		return fail(err)
	}
	rep.Info("starting the browser")
	b, err := w.ensureBrowser(ctx)
	if err != nil {
		release()
		return fail(err)
	}
	h := &tab{b: b, pumped: make(chan struct{}), url: shown, release: release}
	s, err := w.Sessions.CreateFromConfig(cfg, h)
	if err != nil {
		release()
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
	// Subscribed before the page loads, so that no early message is
	// missed; the web workers the page starts are attached as they come
	// (chromedp sets the page to auto-attach them).
	msgs := chromedp.Console(h.ctx)
	attached := chromedp.Events(h.ctx, target.AttachedToTarget)
	pumping = true
	h.pumps.Add(2)
	w.bg.Add(3)
	go w.pumpConsole(s, h, msgs)
	go w.attachWorkers(s, h, attached)
	go func() {
		defer w.bg.Done()
		h.pumps.Wait()
		close(h.pumped)
	}()
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

// pumpConsole copies the console of the page (or of one of its web
// workers) into the session's logs until the target closes. The log store
// bounds what is kept; one message is truncated to MaxConsoleBytes.
func (w *Worker) pumpConsole(s *worker.Session, h *tab, msgs iter.Seq2[chromedp.ConsoleMessage, error]) {
	defer w.bg.Done()
	defer h.pumps.Done()
	for m, err := range msgs {
		if err != nil {
			return
		}
		if m.Source == "network" && path.Base(strings.SplitN(m.URL, "?", 2)[0]) == "favicon.ico" {
			// A page of the app's own asks for an icon the app has not
			// got: noise, not an error of the app.
			continue
		}
		if m.Source == "worker" {
			// The page's browser log repeats a web worker's console
			// (every level as info or warning); the worker's own
			// session, attached by attachWorkers, reports it as it is.
			continue
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

// attachWorkers follows the web workers the page starts (a web-worker
// app's script runs in one): each is attached with a session of its own,
// whose console is pumped into the session's logs like the page's. Enabling
// the worker's Runtime domain replays what it logged before the attach.
func (w *Worker) attachWorkers(s *worker.Session, h *tab, attached iter.Seq2[target.EventAttachedToTarget, error]) {
	defer w.bg.Done()
	defer h.pumps.Done()
	n := 0
	for ev, err := range attached {
		if err != nil {
			return
		}
		if ev.TargetInfo == nil || ev.TargetInfo.Type != "worker" {
			continue
		}
		if n >= maxWebWorkers {
			if n == maxWebWorkers {
				s.Log(worker.LogInfo, fmt.Sprintf("more than %d web workers: the console of the others is not captured", maxWebWorkers))
				n++
			}
			continue
		}
		n++
		// Detached, not closed, when the page goes: the worker is the
		// page's, this session only watches it.
		wctx, cancel := chromedp.NewContext(h.ctx, chromedp.WithTargetID(ev.TargetInfo.TargetID), chromedp.WithDetachOnCancel())
		// Console attaches first and subscribes after, so what the
		// worker logged before (replayed when the attach enabled the
		// Runtime domain) came too early; enabling it again replays it
		// to the subscription.
		msgs := chromedp.Console(wctx)
		_ = chromedp.Do(wctx, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			if _, err := cdp.Call(ctx, t, runtime.Disable, cdp.Empty{}); err != nil {
				return chromedp.Void{}, err
			}
			_, err := cdp.Call(ctx, t, runtime.Enable, cdp.Empty{})
			return chromedp.Void{}, err
		})
		h.pumps.Add(1)
		w.bg.Add(1)
		go func() {
			defer cancel()
			w.pumpConsole(s, h, msgs)
		}()
	}
}

// maxWebWorkers bounds the web workers of one page whose console is
// captured (each costs a DevTools session and a goroutine).
const maxWebWorkers = 16

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
	if !ok {
		return nil
	}
	defer h.release()
	if h.cancel == nil {
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
