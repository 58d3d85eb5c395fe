package apps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

// Starting an app, step by step (startApp):
//
//  1. appToStart: the caller may run it, it exists, is enabled and typed;
//  2. planStart: timeout, readiness and additional_kwargs (arguments beat
//     the manifest's startup_config);
//  3. runningInstance: an instance that already runs the current files is
//     returned (unless the app runs several, or this is install's trial);
//  4. pickWorker: the worker for the app's type;
//  5. newSession: the session's ids, token and worker.Config;
//  6. admitSession: the per-workspace limit, and the session is recorded;
//  7. launch: the worker's start, then waiting until the app is ready;
//  8. failStart or startedLocked: the outcome recorded.

// appToStart is an installed app about to be started.
type appToStart struct {
	ws, alias, appType string
	manifest           map[string]any // a copy
	daemon, singleton  bool
	staged             bool // its staged version (staged.go)
}

// startPlan is how one start proceeds.
type startPlan struct {
	timeout    time.Duration
	wfs        any // wait_for_service as given (for the log)
	additional map[string]any
	ready      readiness
	inactive   time.Duration // stop_after_inactive (inactivity.go)
}

// waitsFor is the service the start waits for, "" when none.
func (p startPlan) waitsFor() string {
	if p.ready.detached {
		return ""
	}
	return p.ready.service
}

// startApp starts an app of workspace ws for the caller.
func (c *Controller) startApp(ctx context.Context, cl *caller, ws string, o startOptions) (map[string]any, error) {
	pg := o.progress
	app, err := c.appToStart(cl, ws, o.appID, o.stage)
	if err != nil {
		return nil, err
	}
	plan, err := planStart(app, o)
	if err != nil {
		return nil, err
	}
	if !o.fresh {
		if rec, err := c.runningInstance(ctx, app, pg); rec != nil || err != nil {
			return rec, err
		}
	}

	pg.send("info", fmt.Sprintf("Initializing %s worker...", app.appType))
	wk, err := c.pickWorker(ctx, cl, ws, app.appType, app.alias, o.workerID, o.selectionMode)
	if err != nil {
		return nil, err
	}
	s, cfg, err := c.newSession(cl, app, plan, wk, o)
	if err != nil {
		wk.release()
		return nil, err
	}
	w, err := c.admitSession(s, plan, pg)
	if err != nil {
		wk.release()
		return nil, err
	}
	// From here the session owns the worker's reference (s.release).
	if w != nil {
		defer func() {
			c.mu.Lock()
			delete(c.waiters, s.id)
			c.mu.Unlock()
		}()
	}

	pg.send("info", fmt.Sprintf("Starting %s application...", app.appType))
	c.log.Info("starting app", "app_id", app.alias, "session", s.id, "worker", wk.id, "wait_for_service", plan.wfs)
	endedAtStart, timedOut, err := c.launch(ctx, s, cfg, plan, w, pg)
	if err != nil {
		return nil, c.failStart(s, app.alias, err, timedOut, pg)
	}

	c.mu.Lock()
	if c.sessions[s.id] != s || isEnded(s.status) {
		c.mu.Unlock()
		return nil, fmt.Errorf("Failed to start app '%s', error: the session ended while starting (its worker disconnected or it was stopped)", app.alias)
	}
	services, defaultSvc := c.startedLocked(s, plan, w, endedAtStart)
	gone := s.appGone && !isEnded(s.status)
	rec := s.record()
	c.mu.Unlock()

	if w != nil {
		pg.send("info", "Updating application manifest...")
		c.saveServices(ws, app.alias, app.staged, services, defaultSvc)
	}
	if gone {
		// The app's client came and went during the start.
		c.clientGone(s.id)
	}
	pg.send("success", "Application startup completed successfully")
	c.log.Info("app started", "app_id", app.alias, "session", s.id)
	return rec, nil
}

// appToStart checks that the caller may run appID ("<alias>" or
// "<ws>/<alias>") in ws and that it is installed (the version asked:
// committed, or staged), enabled and typed.
func (c *Controller) appToStart(cl *caller, ws, appID string, staged bool) (appToStart, error) {
	if err := c.need(cl, ws, auth.ReadWrite, "run app "+appID); err != nil {
		return appToStart{}, err
	}
	alias := appID
	if aws, a, ok := strings.Cut(appID, "/"); ok {
		if aws != ws {
			return appToStart{}, fmt.Errorf("app %s is not in workspace %s: apps run in the workspace they are installed in", appID, ws)
		}
		alias = a
	}
	if err := validAppID(alias); err != nil {
		return appToStart{}, err
	}
	m := c.versionManifest(ws, alias, staged)
	if m == nil {
		return appToStart{}, c.missingVersion(ws, alias, staged)
	}
	if m["disabled"] == true {
		return appToStart{}, fmt.Errorf("App %s is disabled", alias)
	}
	appType, _ := m["type"].(string)
	if appType == "" || appType == "application" {
		return appToStart{}, errors.New("Application type should not be application or None")
	}
	return appToStart{ws: ws, alias: alias, appType: appType, manifest: m,
		daemon: m["daemon"] == true, singleton: m["singleton"] == true, staged: staged}, nil
}

// planStart applies startup_config: arguments beat the manifest; defaults
// timeout 60 s, wait_for_service as readinessFor says.
func planStart(app appToStart, o startOptions) (startPlan, error) {
	sc, _ := app.manifest["startup_config"].(map[string]any)
	p := startPlan{timeout: defaultStartTimeout, wfs: o.waitForService, additional: o.additionalKwargs}
	if o.hasTimeout {
		p.timeout = o.timeout
	} else if f, ok := convert.Number(sc["timeout"]); ok && f > 0 {
		p.timeout = time.Duration(f * float64(time.Second))
	}
	if p.wfs == nil {
		p.wfs = sc["wait_for_service"]
	}
	if p.additional == nil {
		p.additional, _ = sc["additional_kwargs"].(map[string]any)
	}
	if err := checkAdditionalKwargs(p.additional); err != nil {
		return startPlan{}, err
	}
	var err error
	if p.ready, err = readinessFor(p.wfs, app.appType); err != nil {
		return startPlan{}, err
	}
	if p.inactive, err = inactivityLimit(o.stopAfterInactive, sc, app.daemon); err != nil {
		return startPlan{}, err
	}
	return p, nil
}

// runningInstance returns the record of a running instance of the app's
// current files, when the app runs one instance only (not a daemon, not
// autoscaling; a singleton always). An app is "<ws>/<alias>": a session of
// an app with the same alias in another workspace is another app, never
// returned here (it would hand one workspace's session record to
// another). A singleton's instance that runs files since replaced is
// stopped first. Both results are nil when a new session must start.
func (c *Controller) runningInstance(ctx context.Context, app appToStart, pg *progress) (map[string]any, error) {
	autoscale := false
	if as, ok := app.manifest["autoscaling"].(map[string]any); ok && as["enabled"] == true {
		autoscale = true
	}
	// Only a live instance of the current files is returned: the
	// workers are asked first whether the candidates still run.
	c.mu.Lock()
	cands := c.runningLocked(func(s *session) bool {
		return s.ws == app.ws && s.appID == app.alias && s.staged == app.staged
	})
	c.mu.Unlock()
	c.refreshAll(ctx, cands, false)
	c.mu.Lock()
	rev := c.versionRevLocked(app.ws, app.alias, app.staged)
	var existing *session
	var stale []string
	for _, s := range cands {
		switch {
		case s.status != statusRunning:
		case s.rev != rev:
			stale = append(stale, s.id)
		case existing == nil && (app.singleton || (!app.daemon && !autoscale)):
			existing = s
		}
	}
	var rec map[string]any
	if existing != nil {
		rec = existing.record()
	}
	c.mu.Unlock()
	if rec != nil {
		pg.send("info", "Returning the running instance of "+app.alias)
		return rec, nil
	}
	if app.singleton {
		for _, id := range stale {
			pg.send("info", "Stopping "+id+", which runs a previous version of "+app.alias)
			if err := c.stopSession(ctx, id, true); err != nil && !errors.Is(err, errStopPending) {
				return nil, fmt.Errorf("singleton app %s: stop the instance running its previous version: %w", app.alias, err)
			}
		}
	}
	return nil, nil
}

// newSession names the new session, mints its app token and builds the
// worker.Config its worker's start receives, and the session record.
func (c *Controller) newSession(cl *caller, app appToStart, plan startPlan, wk *workerRef, o startOptions) (*session, worker.Config, error) {
	ws, alias := app.ws, app.alias
	cid := "_rapp_" + readableID() + "__rlb"
	sid := ws + "/" + cid
	token, err := c.appToken(cl, ws, cid, plan.timeout)
	if err != nil {
		return nil, worker.Config{}, err
	}
	serverURL := c.host.URL()
	if wk.reg.LocalURL != "" {
		serverURL = strings.TrimSuffix(wk.reg.LocalURL, "/")
	}
	entry, _ := app.manifest["entry_point"].(string)
	pg := o.progress
	cfg := worker.Config{
		ID:              sid,
		AppID:           alias,
		Workspace:       ws,
		ClientID:        cid,
		ServerURL:       serverURL,
		AppFilesBaseURL: serverURL + "/" + ws + "/artifacts/" + alias + filesRoute(app.staged),
		Token:           token,
		EntryPoint:      entry,
		ArtifactID:      ws + "/" + alias,
		Timeout:         plan.timeout,
		Manifest:        workerManifest(app.manifest),
		ProgressFunc: func(_ context.Context, p worker.Progress) error {
			pg.fromWorker(p)
			return nil
		},
		// checkAdditionalKwargs kept every controller key out of it.
		Extra: plan.additional,
	}

	s := &session{
		id: sid, ws: ws, cid: cid, appID: alias, appType: app.appType,
		daemon: app.daemon, workerManaged: app.manifest["worker_managed"] == true, createdAt: time.Now().UTC(),
		status: statusStarting, worker: wk.w, workerID: wk.id, workerClient: wk.clientKey,
		context: cl.contextMap(ws), release: wk.release, inactive: plan.inactive, staged: app.staged,
	}
	var version any
	if o.version != "" {
		version = o.version
	}
	m := app.manifest
	s.info = map[string]any{
		"id": sid, "app_id": alias, "workspace": ws, "client_id": cid, "app_type": app.appType,
		"entry_point": nilIfEmpty(entry), "name": m["name"], "description": m["description"],
		"version": version, "source_hash": m["source_hash"], "worker_id": wk.id,
		"daemon": app.daemon, "worker_managed": s.workerManaged,
		"created_at": s.createdAt.Format(time.RFC3339),
	}
	if app.staged {
		s.info["stage"] = true
	}
	return s, cfg, nil
}

// admitSession records s (it then owns its worker reference) unless the
// controller is closed or the workspace is at its session limit, and
// registers the waiter of a start that waits for a service or a client
// (nil for a detached one).
func (c *Controller) admitSession(s *session, plan startPlan, pg *progress) (*waiter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("server apps controller is closed")
	}
	if n := c.liveSessionsLocked(s.ws); n >= c.cfg.Limits.MaxSessionsPerWorkspace {
		return nil, fmt.Errorf("%w: workspace %s already has %d app sessions, the limit per workspace (max sessions per workspace); stop one first",
			ErrSessionLimit, s.ws, n)
	}
	s.rev = c.versionRevLocked(s.ws, s.appID, s.staged)
	c.sessions[s.id] = s
	c.markLocked(s.id)
	if plan.ready.detached {
		return nil, nil
	}
	w := newWaiter(s.id, plan.ready.service, pg)
	c.waiters[s.id] = w
	return w, nil
}

// launch calls the worker's start and waits until the app is ready (see
// readinessFor): the awaited service or client appeared (w), or, for an
// app ready once running, its process runs. endedAtStart is "completed"
// when the app ended by itself with success before it was ready.
func (c *Controller) launch(ctx context.Context, s *session, cfg worker.Config, plan startPlan, w *waiter, pg *progress) (endedAtStart string, timedOut bool, err error) {
	_, err = s.worker.Start(s.workerCtx(ctx), cfg)
	if err != nil {
		return "", false, err
	}
	c.fetchTail(ctx, s)
	ready := plan.ready
	if ready.running {
		// Ready once running: a process that already failed fails the start.
		if st, msg, a := c.workerStatus(ctx, s); a == answerKnown && (st == statusFailed || st == statusCompleted) {
			if st == statusFailed {
				return "", false, fmt.Errorf("the app ended before it was ready (status failed)%s", prefixed(": ", msg))
			}
			endedAtStart = st
		}
	}
	switch {
	case ready.running:
		pg.send("success", "Application is running (it names no service to wait for)")
	case ready.detached:
		pg.send("success", "Application started in detached mode")
	case ready.service != "":
		pg.send("info", fmt.Sprintf("Waiting for service '%s'...", ready.service))
	default:
		pg.send("info", "Waiting for client connection...")
	}
	if w == nil {
		return endedAtStart, false, nil
	}
	return c.awaitReady(ctx, s, w, plan.timeout)
}

// awaitReady waits for w to fire, the timeout, or the end of the app. The
// worker is asked now and then whether the app already ended, so that an
// app that crashes fails its start at once instead of at the timeout.
func (c *Controller) awaitReady(ctx context.Context, s *session, w *waiter, timeout time.Duration) (endedAtStart string, timedOut bool, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	poll := time.NewTicker(startPollInterval)
	defer poll.Stop()
	for {
		select {
		case <-w.done:
			return "", false, w.err
		case <-t.C:
			return "", true, errors.New("Application startup timed out")
		case <-ctx.Done():
			return "", false, ctx.Err()
		case <-poll.C:
			st, msg, a := c.workerStatus(ctx, s)
			if a == answerUnknown {
				poll.Stop() // the worker cannot tell; rely on the timeout
				continue
			}
			if a == answerLost {
				st = statusFailed
			}
			if st == statusCompleted {
				return st, false, nil
			}
			if st == statusFailed || st == statusStopped {
				return "", false, fmt.Errorf("the app ended before it was ready (status %s)%s", st, prefixed(": ", msg))
			}
		}
	}
}

// startedLocked records a successful start (c.mu held): what the app
// registered, and running (or completed, when it already ended with
// success). It returns the services to save in the manifest.
func (c *Controller) startedLocked(s *session, plan startPlan, w *waiter, endedAtStart string) (services []map[string]any, defaultSvc map[string]any) {
	if w != nil {
		services, defaultSvc = w.services, w.defaultSvc
	}
	svcList := make([]any, len(services))
	for i, sv := range services {
		svcList[i] = sv
	}
	if svc := plan.waitsFor(); svc != "" {
		s.info["service_id"] = s.id + ":" + svc + "@" + s.appID
	}
	s.info["services"] = svcList
	if s.info["name"] == nil && defaultSvc != nil {
		s.info["name"] = defaultSvc["name"]
	}
	if s.info["description"] == nil && defaultSvc != nil {
		s.info["description"] = defaultSvc["description"]
	}
	cfgOut := map[string]any{}
	if defaultSvc != nil {
		if dc, ok := defaultSvc["config"].(map[string]any); ok {
			cfgOut = dc
		}
	}
	s.info["config"] = cfgOut
	s.info["session_id"] = s.id
	s.status = statusRunning
	c.markLocked(s.id)
	if endedAtStart == statusCompleted {
		c.endLocked(s, statusCompleted, "the app ended by itself (exit code 0)")
	}
	return services, defaultSvc
}

// failStart fetches the worker's logs, stops the session and builds the
// error upstream raises: "Failed to start app '<id>', error: <core>, logs:\n<logs>".
func (c *Controller) failStart(s *session, alias string, cause error, timedOut bool, pg *progress) error {
	ctx, cancel := context.WithTimeout(c.baseCtx, workerCallTimeout)
	defer cancel()
	c.mu.Lock()
	gone, tail := s.workerGone, s.tail
	if !gone {
		s.status = statusStopping
	}
	c.mu.Unlock()
	var logs any
	switch {
	case gone:
		logs = tail.page(nil, 0, nil)
	default:
		wctx := s.workerCtx(ctx)
		if page, err := s.worker.GetLogs(wctx, s.id, worker.LogQuery{}); err == nil {
			logs = page.ToMap()
		} else {
			logs = "(could not fetch the worker logs: " + err.Error() + ")"
		}
		if err := s.worker.Stop(wctx, s.id); err != nil {
			c.log.Debug("stop after failed start", "session", s.id, "err", err)
		}
	}
	c.mu.Lock()
	if gone && s.adopt && c.sessions[s.id] == s {
		// Its worker went during the start, but may come back with the
		// process still running there: it is stopped then.
		s.stopOnReturn = true
		s.reason = "the start failed: " + cause.Error() + "; " + reasonStopPending
		c.markLocked(s.id)
	} else {
		c.dropLocked(s.id, s)
	}
	c.mu.Unlock()
	core := cause.Error()
	if timedOut {
		core = "Application startup timed out"
	}
	if lm, ok := logs.(map[string]any); ok {
		if el, ok := lm["error"].([]any); ok && len(el) > 0 {
			parts := make([]string, len(el))
			for i, e := range el {
				parts[i] = fmt.Sprint(e)
			}
			core = strings.Join(parts, "\n")
		}
	}
	pg.send("error", "Failed to start app "+alias+": "+core)
	c.log.Info("app failed to start", "app_id", alias, "session", s.id, "err", core)
	return fmt.Errorf("Failed to start app '%s', error: %s, logs:\n%s", alias, core, formatLogs(logs))
}
