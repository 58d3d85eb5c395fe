package apps

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// ControllerConfigKeys are the keys of the worker config (start's config)
// that only the controller sets: the session's identity (id, workspace,
// client_id, app_id, artifact_id), where the app connects and fetches its
// files (server_url, app_files_base_url, disable_ssl), its token, what it
// runs (entry_point, manifest, timeout) and the progress callback; plus
// context, user and session_id, which workers may read as identity.
// additional_kwargs (from start, install or the manifest's startup_config)
// may add other keys, such as env, but never one of these.
var ControllerConfigKeys = []string{
	"id", "app_id", "workspace", "client_id", "artifact_id",
	"server_url", "app_files_base_url", "disable_ssl", "token",
	"entry_point", "manifest", "timeout", "progress_callback",
	"context", "user", "session_id",
}

// checkAdditionalKwargs refuses additional_kwargs that would set a key of
// ControllerConfigKeys, and an env that is not a map of strings.
func checkAdditionalKwargs(m map[string]any) error {
	for _, k := range ControllerConfigKeys {
		if _, ok := m[k]; ok {
			return denied("additional_kwargs may not set %q: the controller alone sets %s in the worker config",
				k, strings.Join(ControllerConfigKeys, ", "))
		}
	}
	if v, ok := m["env"]; ok && v != nil {
		env, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("additional_kwargs.env must be a dict of strings, got %T", v)
		}
		for k, e := range env {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("additional_kwargs.env[%q] must be a string, got %T", k, e)
			}
		}
	}
	return nil
}

// Session status values (the worker-side SessionStatus names). A session
// is live while starting, running or stopping; completed, failed and
// stopped are ends, kept Limits.EndedSessionTTL for get_session_info and get_logs.
const (
	statusStarting  = "starting"
	statusRunning   = "running"
	statusStopping  = "stopping"
	statusStopped   = "stopped"
	statusCompleted = "completed"
	statusFailed    = "failed"
)

// isEnded reports whether a status is an end.
func isEnded(st string) bool {
	return st == statusStopped || st == statusCompleted || st == statusFailed
}

// session is one running app instance, "<ws>/<client_id>".
type session struct {
	id, ws, cid, appID, appType string
	daemon, workerManaged       bool
	createdAt                   time.Time
	inactive                    time.Duration // stop_after_inactive; 0: never (inactivity.go)

	info    map[string]any // the public record, without status
	status  string
	appGone bool   // the app's client disconnected while starting
	rev     string // the app's revision (appRev) when the session started
	staged  bool   // it runs the app's staged version (staged.go)

	// Set when the session ends (status completed, failed or stopped).
	reason     string // why it ended, e.g. "worker … disconnected"
	endedAt    time.Time
	workerGone bool // its worker disconnected: never call it again
	// adopt: the session may still run at a worker the controller lost
	// (restored after a restart from a record of a live session, or its
	// worker's connection went); it shows stopped (restart) or failed
	// (disconnect) until its worker comes back and says what became of it
	// (restart.go).
	adopt bool
	// stopOnReturn: stop was asked while the session awaited its worker;
	// when the worker comes back the controller stops the session there
	// instead of re-adopting it (restart.go).
	stopOnReturn bool
	// lostAt: when its record's life ended while it still awaited its
	// worker (it then moved to Controller.lost).
	lostAt time.Time

	worker       *hyphaworker.RemoteWorker // through a client in the worker's workspace
	workerID     string                    // "<ws>/<client_id>:<service>"
	workerClient string                    // "<ws>/<client_id>" of the worker
	context      map[string]any            // the explicit context passed to the worker (worker.Caller.ToMap)
	release      func()                    // lets go of the workspace client

	tail *logTail // the last logs, refreshed while it runs and at its end
	// logFollow: the worker answered a get_logs with next_offset (our
	// LogPage), so it takes the wait/follower keywords (workercall.go).
	logFollow bool
	expire    *time.Timer // removal of an ended session
}

// workerCtx attaches the session's caller context to ctx: every call to
// its worker carries it as the `context` keyword (hyphaworker.Remote).
// runningSession returns session id when it is running on a worker that is
// still there, for the relays (execute, take_screenshot, the terminal),
// which have checked the caller already.
func (c *Controller) runningSession(id string) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[id]
	if s == nil {
		return nil, fmt.Errorf("Server app instance not found: %s", id)
	}
	if s.workerGone || s.status != statusRunning {
		return nil, fmt.Errorf("session %s is not running (status %s)", id, s.status)
	}
	return s, nil
}

func (s *session) workerCtx(ctx context.Context) context.Context {
	if s.context == nil {
		return ctx
	}
	return worker.WithCaller(ctx, worker.CallerFromMap(s.context))
}

// record is the session as list_running and get_session_info return it.
// An ended session also carries ended_at and reason, and error (= reason)
// when it failed.
func (s *session) record() map[string]any {
	out := copyMap(s.info)
	out["status"] = s.status
	if isEnded(s.status) {
		out["ended_at"] = s.endedAt.Format(time.RFC3339)
		out["reason"] = s.reason
		if s.status == statusFailed {
			out["error"] = s.reason
		}
	}
	if s.adopt {
		// Its worker is away and may still run it (restart.go).
		out["awaiting_worker"] = true
		if s.stopOnReturn {
			out["stop_pending"] = true
		}
	}
	return out
}

// waiter collects the services an app registers while it starts and fires
// when the awaited one (or, for wait_for_service "", the client) appears.
type waiter struct {
	sid        string
	service    string // "" = wait for the client to connect
	services   []map[string]any
	defaultSvc map[string]any
	done       chan struct{}
	once       sync.Once
	err        error
	progress   *progress
}

func newWaiter(sid, service string, p *progress) *waiter {
	return &waiter{sid: sid, service: service, done: make(chan struct{}), progress: p}
}

func (w *waiter) fire(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.done)
	})
}

// serviceAdded runs under c.mu.
func (w *waiter) serviceAdded(svc string, info map[string]any) {
	cp := copyMap(info)
	w.services = append(w.services, cp)
	w.progress.send("success", fmt.Sprintf("Service '%s' registered successfully", svc))
	if svc == "default" {
		w.defaultSvc = cp
		w.progress.send("success", "Default service configured")
	}
	if w.service != "" && svc == w.service {
		w.progress.send("success", fmt.Sprintf("Target service '%s' found", svc))
		w.fire(nil)
	}
}

func (w *waiter) clientConnected() {
	w.progress.send("success", "Client connection established")
	if w.service == "" {
		w.progress.send("success", "Application ready")
		w.fire(nil)
	}
}

// dropLocked forgets a session (c.mu held).
func (c *Controller) dropLocked(id string, s *session) {
	if c.sessions[id] != s {
		return
	}
	delete(c.sessions, id)
	c.markLocked(id)
	if s.expire != nil {
		s.expire.Stop()
	}
	if s.release != nil {
		s.release()
	}
}

// clientGone handles client_disconnected.
//
//   - An app's client going: the worker is asked whether the app ended (a
//     script that finished or crashed) and the session takes the worker's
//     status. If the worker says the app still runs, a python-eval session
//     stays running (its process outlived its client; its end is noticed
//     later), any other session is stopped, as upstream does, unless it is
//     daemon or worker_managed. A worker that cannot tell keeps the old
//     rule: python-eval sessions are marked stopped, others stopped.
//   - A worker's client going: every live session it ran fails with the
//     reason "worker <id> disconnected; …", without calling it; its record
//     and last logs stay readable for Limits.EndedSessionTTL. A standalone worker
//     keeps its sessions across a lost connection, so each such session
//     also awaits re-adoption (adopt) for that time: when the worker
//     registers again it is running again, or takes the worker's status.
func (c *Controller) clientGone(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if s := c.sessions[id]; s != nil {
		switch {
		case s.status == statusStarting:
			s.appGone = true
		case s.status != statusRunning:
		case s.daemon || s.workerManaged:
			c.log.Info("app client disconnected, session kept", "session", id, "daemon", s.daemon, "worker_managed", s.workerManaged)
		default:
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.appClientGone(s)
			}()
		}
	}
	reason := fmt.Sprintf("worker %s disconnected", id)
	for sid, s := range c.sessions {
		if s.workerClient != id || isEnded(s.status) {
			continue
		}
		c.log.Info("worker disconnected, its session failed until the worker comes back", "worker", id, "session", sid)
		s.workerGone = true
		c.endLocked(s, statusFailed, reason+reasonAwaitSuffix)
		s.adopt = true
		c.markLocked(sid)
		// A start waiting on a session its worker took down fails at once.
		if w := c.waiters[sid]; w != nil {
			w.fire(errors.New("the " + reason))
		}
	}
}

// appClientGone runs when the client of a running, non-daemon app left.
func (c *Controller) appClientGone(s *session) {
	ctx, cancel := context.WithTimeout(c.baseCtx, workerCallTimeout)
	defer cancel()
	st := c.refresh(ctx, s, true)
	if st == probeEnded {
		return
	}
	if s.appType == "python-eval" {
		if st == probeLive {
			c.log.Info("app client disconnected, its process still runs", "session", s.id)
			return
		}
		c.mu.Lock()
		if s.status == statusRunning {
			c.endLocked(s, statusStopped, "the app's client disconnected")
		}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	if s.status != statusRunning {
		c.mu.Unlock()
		return
	}
	s.status = statusStopping
	c.mu.Unlock()
	c.log.Info("app client disconnected, stopping session", "session", s.id)
	if err := s.worker.Stop(s.workerCtx(ctx), s.id); err != nil {
		c.log.Warn("stop after app disconnect failed", "session", s.id, "err", err)
	}
	c.mu.Lock()
	c.endLocked(s, statusStopped, "the app's client disconnected")
	c.mu.Unlock()
}

// endLocked records the end of a session (c.mu held): its status, reason
// and time. The record stays Limits.EndedSessionTTL, then goes; a workspace keeps
// at most maxEndedPerWorkspace ended records (the oldest go first). A
// session that already ended keeps its first end.
func (c *Controller) endLocked(s *session, status, reason string) {
	if isEnded(s.status) || c.sessions[s.id] != s {
		return
	}
	s.status, s.reason, s.endedAt = status, reason, time.Now().UTC()
	c.markLocked(s.id)
	c.log.Info("session ended", "session", s.id, "status", status, "reason", reason)
	if s.expire == nil {
		s.expire = time.AfterFunc(c.cfg.Limits.EndedSessionTTL, func() { c.expireEnded(s) })
	}
	var ended []*session
	for _, o := range c.sessions {
		if o.ws == s.ws && isEnded(o.status) && !o.adopt {
			ended = append(ended, o)
		}
	}
	if len(ended) > maxEndedPerWorkspace {
		sort.Slice(ended, func(i, j int) bool { return ended[i].endedAt.Before(ended[j].endedAt) })
		for _, o := range ended[:len(ended)-maxEndedPerWorkspace] {
			c.dropLocked(o.id, o)
		}
	}
}

// startOptions are start's arguments after parsing.
type startOptions struct {
	appID            string
	timeout          time.Duration
	hasTimeout       bool
	waitForService   any // nil, bool or string
	additionalKwargs map[string]any
	workerID         string
	selectionMode    string
	progress         *progress
	version          string
	stage            bool
	fresh            bool // never reuse a running instance (install verification)

	stopAfterInactive any // nil: from the manifest or the default (inactivity.go)
}

// processAppTypes are the app types run as plain processes (workers/process,
// and workers/terminal's programs on a pty): such an app need not be a Hypha
// client at all, so by default it is ready once its process runs (see
// readiness).
var processAppTypes = map[string]bool{"python-eval": true, "node-eval": true, "terminal": true}

// readiness is when a start (and install's trial start) considers the app
// ready; docs/apps.md, "Readiness", is the rule.
type readiness struct {
	detached bool   // ready once the worker's start returns
	running  bool   // detached because the app is ready once its process runs
	service  string // else ready once <session>:<service> is registered
	client   bool   // else ready once the app's client connects
}

// readinessFor applies the rule to wait_for_service (nil, a bool or a
// string) and the app type:
//
//   - False: detached, ready once the worker's start returned;
//   - a service name ("x:y" means "y"), or True (= "default", as
//     upstream): ready once the app registered that service;
//   - "": ready once the app's client connected;
//   - None (not given anywhere): "default" as upstream, except for process
//     apps (python-eval, node-eval), ready once their process runs.
//
// Whatever the rule, an app that ends with code 0 before it is ready is a
// success (a script that ran to completion); one that fails is not.
func readinessFor(wfs any, appType string) (readiness, error) {
	switch v := wfs.(type) {
	case nil:
		if processAppTypes[appType] {
			return readiness{detached: true, running: true}, nil
		}
		return readiness{service: "default"}, nil
	case bool:
		if !v {
			return readiness{detached: true}, nil
		}
		return readiness{service: "default"}, nil
	case string:
		if _, after, ok := strings.Cut(v, ":"); ok {
			v = after
		}
		if v == "" {
			return readiness{client: true}, nil
		}
		return readiness{service: v}, nil
	}
	return readiness{}, fmt.Errorf("wait_for_service must be a string or a boolean, got %T", wfs)
}

// formatLogs renders worker logs (the items shape or the old dict shape).
func formatLogs(v any) string {
	switch x := v.(type) {
	case nil:
		return "(no logs)"
	case string:
		return x
	case map[string]any:
		if items, ok := x["items"].([]any); ok {
			var b strings.Builder
			for _, it := range items {
				if im, ok := it.(map[string]any); ok {
					fmt.Fprintf(&b, "[%v] %v\n", im["type"], im["content"])
				} else {
					fmt.Fprintf(&b, "%v\n", it)
				}
			}
			if b.Len() == 0 {
				return "(no logs)"
			}
			return strings.TrimSuffix(b.String(), "\n")
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			if l, ok := x[k].([]any); ok {
				for _, e := range l {
					fmt.Fprintf(&b, "[%s] %v\n", k, e)
				}
			} else {
				fmt.Fprintf(&b, "[%s] %v\n", k, x[k])
			}
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	return fmt.Sprint(v)
}

// saveServices writes the services an app registered into its manifest
// (ids as "<ws>/*:<service>"), as upstream does after every start.
func (c *Controller) saveServices(ws, alias string, staged bool, services []map[string]any, defaultSvc map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.apps[ws][alias]
	if staged {
		m = c.staged[ws+"/"+alias].manifest
	}
	if m == nil {
		return
	}
	m = copyMap(m)
	list := make([]any, 0, len(services))
	for _, sv := range services {
		sv = copyMap(sv)
		if id, _ := sv["id"].(string); id != "" {
			if _, name, ok := strings.Cut(id, ":"); ok {
				sv["id"] = ws + "/*:" + name
			}
		}
		list = append(list, sv)
	}
	m["services"] = list
	if m["name"] == nil && defaultSvc != nil && defaultSvc["name"] != nil {
		m["name"] = defaultSvc["name"]
	}
	if m["description"] == nil && defaultSvc != nil && defaultSvc["description"] != nil {
		m["description"] = defaultSvc["description"]
	}
	if err := c.store.writeManifest(ws, alias, staged, m); err != nil {
		c.log.Warn("could not save the app's services", "workspace", ws, "app_id", alias, "err", err)
		return
	}
	if staged {
		v := c.staged[ws+"/"+alias]
		v.manifest = m
		c.staged[ws+"/"+alias] = v
	} else {
		c.apps[ws][alias] = m
	}
}

// errStopPending is what stopSession returns when the session's worker is
// away: not a failure, the stop happens when the worker comes back.
var errStopPending = errors.New(reasonStopPending)

// stopSession stops a session through its worker. If the worker fails the
// session is kept (upstream keeps it "for manual cleanup"). A session whose
// worker is away and may still run it (adopt) is kept with stopOnReturn and
// errStopPending is returned: the worker stops it when it comes back.
func (c *Controller) stopSession(ctx context.Context, id string, raise bool) error {
	c.mu.Lock()
	s := c.sessions[id]
	if s == nil {
		if l := c.lost[id]; l != nil {
			// Its record expired while it awaited its worker: the stop
			// is carried out when the worker comes back (restart.go).
			if !l.stopOnReturn {
				l.stopOnReturn = true
				l.reason = reasonStopPending
				c.markLocked(id)
				c.log.Info("stop pending until the session's worker comes back", "session", id, "worker", l.workerID)
			}
			c.mu.Unlock()
			return errStopPending
		}
		c.mu.Unlock()
		if raise {
			return fmt.Errorf("Server app instance not found: %s", id)
		}
		return nil
	}
	if s.workerGone {
		if s.adopt {
			if !s.stopOnReturn {
				s.stopOnReturn = true
				s.reason = reasonStopPending
				c.markLocked(id)
				c.log.Info("stop pending until the session's worker comes back", "session", id, "worker", s.workerID)
			}
			c.mu.Unlock()
			return errStopPending
		}
		// Nothing runs any more; stop just forgets the record.
		c.dropLocked(id, s)
		c.mu.Unlock()
		return nil
	}
	prev := s.status
	s.status = statusStopping
	c.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, workerCallTimeout)
	defer cancel()
	err := s.worker.Stop(s.workerCtx(sctx), id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && isEnded(prev) {
		// The session had ended already (the worker may have forgotten
		// it): stop only forgets the record.
		c.log.Debug("stop of an ended session", "session", id, "err", err)
		err = nil
	}
	if err != nil {
		if c.sessions[id] == s {
			s.status = prev
		}
		c.log.Warn("failed to stop session", "session", id, "err", err)
		if raise {
			return fmt.Errorf("failed to stop session %s: %w", id, err)
		}
		return nil
	}
	c.dropLocked(id, s)
	c.log.Info("session stopped", "session", id)
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// startPollInterval is how often a start asks the worker about the app.
const startPollInterval = 500 * time.Millisecond

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// liveSessionsLocked counts the sessions of ws that have not ended (ended
// ones are kept a while for their record and logs), and those awaiting
// their worker, which may still run there (this bounds them too). c.mu is
// held.
func (c *Controller) liveSessionsLocked(ws string) int {
	n := 0
	for _, s := range c.sessions {
		if s.ws == ws && (!isEnded(s.status) || s.adopt) {
			n++
		}
	}
	return n
}
