package apps

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// What a restarted controller does with the sessions it persisted
// (sessionstore.go); docs/apps.md, "Restarts", is the rule:
//
//   - an ended session comes back as it was, for what is left of
//     Limits.EndedSessionTTL;
//   - a session that was live when the server went is shown stopped with
//     reasonRestart and waits for its worker: when a worker registers
//     again under the same full service id ("<ws>/<client_id>:<service>")
//     and says the session still runs, it is re-adopted (running again,
//     its logs served by the worker); when the worker no longer knows it,
//     or never comes back within the record's life, it stays stopped;
//   - daemon apps are started again once a worker for their type is there
//     (unless their previous session was re-adopted).
//
// The same waiting applies to the live sessions of a worker whose
// connection went while the server stayed up (clientGone): they show failed
// with reasonAwaitSuffix until the worker registers again. A stop asked
// meanwhile (stopSession) sets stopOnReturn: the returning worker is told
// to stop the session instead of having it re-adopted.
//
// A session still awaiting its worker when its record's life
// (Limits.EndedSessionTTL) ends is not forgotten: it leaves the lists but stays in
// Controller.lost, persisted too, for Limits.LostSessionTTL (at most
// Limits.MaxLostPerWorkspace per workspace, the oldest forgotten first, with a
// warning). A worker that comes back meanwhile still has it re-adopted, or
// stopped when a stop was asked, so no session runs at a worker unknown to
// the controller, and no stop asked is dropped, however long the worker
// was away within that bound.
//
// Re-adoption never makes a second instance of a singleton or daemon app:
// when another live session of the app runs (a daemon started again while
// the worker was away, say), the returning session is stopped instead.
const (
	reasonRestart = "the server restarted"
	// reasonAwaitSuffix ends the reason of a session whose worker's
	// connection went: the worker may still run it.
	reasonAwaitSuffix = "; re-adopted if it comes back"
	// reasonStopPending is the reason of an awaiting session stop was asked
	// for.
	reasonStopPending = "stop requested while its worker was away; it is stopped there when the worker comes back"
	// daemonAdoptWait is how long a daemon app whose previous session
	// awaits re-adoption waits for it before a new session starts.
	daemonAdoptWait = 30 * time.Second
)

// expireEnded runs when an ended session's record life ends: it is
// forgotten, unless it still awaits its worker (lost, below).
func (c *Controller) expireEnded(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.id] != s {
		return
	}
	if s.adopt && !c.closed {
		c.loseLocked(s, time.Now().UTC())
		return
	}
	c.dropLocked(s.id, s)
}

// loseLocked moves a session that awaits its worker from the lists to
// c.lost, where it waits for Limits.LostSessionTTL from lostAt.
func (c *Controller) loseLocked(s *session, lostAt time.Time) {
	delete(c.sessions, s.id)
	if s.expire != nil {
		s.expire.Stop()
	}
	if s.release != nil {
		// The reference of the connection it lost: a lost session holds
		// no workspace client.
		s.release()
		s.release = nil
	}
	s.lostAt, s.tail = lostAt, nil
	c.lost[s.id] = s
	c.markLocked(s.id)
	ttl := c.cfg.Limits.LostSessionTTL
	left := ttl - time.Since(lostAt)
	s.expire = time.AfterFunc(max(left, 0), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.forgetLostLocked(s.id, s, "its worker did not come back within "+ttl.String())
	})
	c.log.Info("session record expired while it awaits its worker; kept unlisted for its worker's return",
		"session", s.id, "worker", s.workerID, "stop_pending", s.stopOnReturn)
	var same []*session
	for _, o := range c.lost {
		if o.ws == s.ws {
			same = append(same, o)
		}
	}
	if limit := c.cfg.Limits.MaxLostPerWorkspace; len(same) > limit {
		sort.Slice(same, func(i, j int) bool { return same[i].lostAt.Before(same[j].lostAt) })
		for _, o := range same[:len(same)-limit] {
			c.forgetLostLocked(o.id, o, fmt.Sprintf("more than %d lost sessions in workspace %s", limit, o.ws))
		}
	}
}

// forgetLostLocked forgets a lost session. With a why, it says so: should
// its worker come back after that, the session runs there unknown to the
// controller until it ends or is stopped at the worker.
func (c *Controller) forgetLostLocked(id string, s *session, why string) {
	if c.lost[id] != s {
		return
	}
	delete(c.lost, id)
	if s.expire != nil {
		s.expire.Stop()
	}
	c.markLocked(id)
	if why != "" {
		c.log.Warn("lost session forgotten: if its worker comes back, the controller no longer re-adopts or stops it",
			"session", id, "worker", s.workerID, "why", why)
	}
}

// awaitingLocked tells whether s is a session of the controller that
// awaits its worker, listed or lost.
func (c *Controller) awaitingLocked(s *session) bool {
	return s.adopt && (c.sessions[s.id] == s || c.lost[s.id] == s)
}

// foundLocked brings a lost session back into the lists (its worker came
// back): it is re-adopted, or recorded ended by its worker's word, and its
// record lives on from now.
func (c *Controller) foundLocked(s *session) {
	if c.lost[s.id] != s {
		return
	}
	delete(c.lost, s.id)
	if s.expire != nil {
		s.expire.Stop()
		s.expire = nil
	}
	c.sessions[s.id] = s
	s.endedAt = time.Now().UTC()
	if isEnded(s.status) {
		s.expire = time.AfterFunc(c.cfg.Limits.EndedSessionTTL, func() { c.expireEnded(s) })
	}
}

// restoreSessions puts the persisted sessions back (before the controller
// serves anything). c.mu need not be held: nothing else runs yet.
func (c *Controller) restoreSessions(recs []*sessionFile) {
	now := time.Now().UTC()
	for _, r := range recs {
		s := &session{
			id: r.ID, ws: r.Workspace, cid: r.ClientID, appID: r.AppID, appType: r.AppType,
			daemon: r.Daemon, workerManaged: r.WorkerManaged, createdAt: r.CreatedAt,
			info: r.Info, status: r.Status, reason: r.Reason, endedAt: r.EndedAt,
			workerID: r.WorkerID, workerClient: r.WorkerClient, context: r.Context, rev: r.Revision, staged: r.Staged,
			stopOnReturn: r.StopOnReturn && (r.Adoptable || !isEnded(r.Status)),
			// No worker is known until it registers again.
			workerGone: true,
		}
		if r.Tail != nil || r.TailMissing > 0 {
			s.tail = &logTail{items: r.Tail, missing: r.TailMissing}
		}
		if !isEnded(r.Status) || r.Adoptable {
			// It was live when the server went: stopped until its worker
			// says otherwise.
			s.adopt = true
			if !isEnded(r.Status) {
				s.status, s.reason, s.endedAt = statusStopped, reasonRestart, now
			}
		}
		if s.endedAt.IsZero() {
			s.endedAt = now
		}
		if s.adopt && (!r.LostAt.IsZero() || now.Sub(s.endedAt) >= c.cfg.Limits.EndedSessionTTL) {
			// Its record's life ended (before or while the server was
			// down) while it awaited its worker: lost, not forgotten.
			lostAt := r.LostAt
			if lostAt.IsZero() {
				lostAt = s.endedAt.Add(c.cfg.Limits.EndedSessionTTL)
			}
			if ttl := c.cfg.Limits.LostSessionTTL; now.Sub(lostAt) >= ttl {
				c.dirty[s.id] = struct{}{}
				c.log.Warn("lost session forgotten: if its worker comes back, the controller no longer re-adopts or stops it",
					"session", s.id, "worker", s.workerID, "why", "its worker did not come back within "+ttl.String())
				continue
			}
			c.loseLocked(s, lostAt)
			continue
		}
		left := c.cfg.Limits.EndedSessionTTL - now.Sub(s.endedAt)
		if left <= 0 {
			c.dirty[s.id] = struct{}{} // expired while the server was down
			continue
		}
		c.sessions[s.id] = s
		s.expire = time.AfterFunc(left, func() { c.expireEnded(s) })
		c.dirty[s.id] = struct{}{}
	}
	// The bound on ended records holds across restarts too (sessions that
	// await re-adoption are live ones, bounded by the sessions limit).
	byWS := map[string][]*session{}
	for _, s := range c.sessions {
		if !s.adopt {
			byWS[s.ws] = append(byWS[s.ws], s)
		}
	}
	for _, list := range byWS {
		if len(list) <= maxEndedPerWorkspace {
			continue
		}
		sort.Slice(list, func(i, j int) bool { return list[i].endedAt.Before(list[j].endedAt) })
		for _, o := range list[:len(list)-maxEndedPerWorkspace] {
			c.dropLocked(o.id, o)
			c.dirty[o.id] = struct{}{}
		}
	}
	n := 0
	for _, s := range c.sessions {
		if s.adopt {
			n++
		}
	}
	if len(recs) > 0 {
		c.log.Info("session records restored", "sessions", len(c.sessions), "awaiting_their_worker", n, "lost", len(c.lost))
	}
}

// kickResume asks the watcher to try re-adoptions and daemon starts now
// (a worker service appeared).
func (c *Controller) kickResume() {
	select {
	case c.resumeKick <- struct{}{}:
	default:
	}
}

// resume re-adopts what it can and starts the daemon apps that wait.
func (c *Controller) resume(ctx context.Context) {
	c.adoptPending(ctx)
	c.startDaemons(ctx)
}

// adoptPending asks the workers of sessions awaiting re-adoption about
// them, one worker at a time (a worker that is not back is skipped).
func (c *Controller) adoptPending(ctx context.Context) {
	c.mu.Lock()
	byWorker := map[string][]*session{}
	for _, m := range []map[string]*session{c.sessions, c.lost} {
		for _, s := range m {
			if s.adopt {
				byWorker[s.workerID] = append(byWorker[s.workerID], s)
			}
		}
	}
	c.mu.Unlock()
	for wid, list := range byWorker {
		if ctx.Err() != nil {
			return
		}
		c.adoptFrom(ctx, wid, list)
	}
}

// adoptFrom handles the sessions of one worker, "<ws>/<client_id>:<service>".
// Only that exact service id counts: a worker that registers under another
// client or service id is another worker.
func (c *Controller) adoptFrom(ctx context.Context, wid string, list []*session) {
	ws, _, ok := strings.Cut(wid, "/")
	if !ok || validWorkspace(ws) != nil {
		return
	}
	cli, release, err := c.acquire(ctx, ws)
	if err != nil {
		return
	}
	defer release()
	gctx, cancel := context.WithTimeout(ctx, probeTimeout)
	svc, err := cli.GetService(gctx, wid)
	cancel()
	if err != nil || svc.Type != workerType {
		return // not back (yet)
	}
	rw := hyphaworker.Remote(svc)
	for _, s := range list {
		c.adoptOne(ctx, ws, wid, rw, s)
	}
}

// otherInstance names a live session, other than s, of the same app when
// the app is a singleton or a daemon (one instance of it is enough), or
// returns "".
func (c *Controller) otherInstance(s *session) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.apps[s.ws][s.appID]
	if m == nil || (m["singleton"] != true && !s.daemon) {
		return ""
	}
	for _, o := range c.sessions {
		if o != s && o.ws == s.ws && o.appID == s.appID && !isEnded(o.status) && !o.adopt {
			return o.id
		}
	}
	return ""
}

// awayWhile names why the session waited for its worker, for its reason.
func awayWhile(s *session) string {
	if s.reason == reasonRestart || strings.HasPrefix(s.reason, reasonRestart) {
		return "while the server was restarting"
	}
	return "while its worker was away"
}

// adoptOne asks the worker (as the controller, which the worker trusts)
// about one session and records the answer.
func (c *Controller) adoptOne(ctx context.Context, ws, wid string, svc *hyphaworker.RemoteWorker, s *session) {
	c.mu.Lock()
	stop := s.stopOnReturn
	c.mu.Unlock()
	if stop {
		c.stopOnReturn(ctx, wid, svc, s)
		return
	}
	qctx, cancel := context.WithTimeout(ctx, probeTimeout)
	info, err := svc.GetSessionInfo(s.workerCtx(qctx), s.id)
	cancel()
	if err != nil {
		if errors.Is(err, worker.ErrSessionNotFound) {
			c.mu.Lock()
			if c.lost[s.id] == s {
				c.forgetLostLocked(s.id, s, "")
			} else if c.sessions[s.id] == s && s.adopt {
				s.adopt = false
				base := strings.TrimSuffix(s.reason, reasonAwaitSuffix)
				s.reason = base + " (its worker " + wid + " no longer runs it)"
				c.markLocked(s.id)
			}
			c.mu.Unlock()
			c.log.Info("session not re-adopted: its worker no longer runs it", "session", s.id, "worker", wid)
		}
		return // no answer: tried again later
	}
	status := string(info.Status)
	switch {
	case status == statusStarting || status == statusRunning:
		if other := c.otherInstance(s); other != "" {
			// A second instance of a singleton or daemon app: stopped.
			c.mu.Lock()
			if c.awaitingLocked(s) {
				s.stopOnReturn = true
				s.reason = "another session of the app (" + other + ") runs: a singleton or daemon app is not re-adopted twice"
				c.markLocked(s.id)
			}
			c.mu.Unlock()
			c.stopOnReturn(ctx, wid, svc, s)
			return
		}
		_, rel, err := c.acquire(ctx, ws) // the session's own reference
		if err != nil {
			return
		}
		c.mu.Lock()
		if !c.awaitingLocked(s) || s.stopOnReturn || c.closed {
			c.mu.Unlock()
			rel()
			return
		}
		wasLost := !s.lostAt.IsZero()
		c.foundLocked(s)
		old := s.release // the reference of the connection it lost (after a disconnect)
		s.adopt, s.workerGone, s.lostAt = false, false, time.Time{}
		s.status, s.reason, s.endedAt = statusRunning, "", time.Time{}
		s.worker, s.release = svc, rel
		if s.expire != nil {
			s.expire.Stop()
			s.expire = nil
		}
		c.markLocked(s.id)
		c.mu.Unlock()
		if old != nil {
			old()
		}
		c.log.Info("session re-adopted", "session", s.id, "worker", wid, "after_its_record_expired", wasLost)
		c.fetchTail(ctx, s)
	case isEnded(status):
		// It ended while the controller could not see it: keep the
		// worker's word and its last logs.
		c.noteExitCode(s, info)
		lctx, cancel := context.WithTimeout(ctx, probeTimeout)
		logs, lerr := svc.GetLogs(s.workerCtx(lctx), s.id, worker.LogQuery{Offset: -tailMaxEntries})
		cancel()
		msg := info.Error
		c.mu.Lock()
		if c.awaitingLocked(s) && !s.stopOnReturn {
			c.foundLocked(s)
			s.adopt, s.lostAt = false, time.Time{}
			s.status = status
			s.reason = fmt.Sprintf("it ended (%s) %s", status, awayWhile(s))
			if msg != "" {
				s.reason += ": " + msg
			}
			if lerr == nil {
				if t := tailFromPage(logs.ToMap()); t != nil {
					s.tail = t
				}
			}
			c.markLocked(s.id)
		}
		c.mu.Unlock()
	}
}

// stopOnReturn stops, at its returning worker, a session whose stop was
// asked while the worker was away, and records it stopped. A failed call
// is tried again at the next round (while the record lives).
func (c *Controller) stopOnReturn(ctx context.Context, wid string, svc *hyphaworker.RemoteWorker, s *session) {
	sctx, cancel := context.WithTimeout(ctx, workerCallTimeout)
	err := svc.Stop(s.workerCtx(sctx), s.id)
	cancel()
	if err != nil && !errors.Is(err, worker.ErrSessionNotFound) {
		c.log.Warn("pending stop failed; tried again later", "session", s.id, "worker", wid, "err", err)
		return
	}
	// Its last logs, now final (a worker that forgot it has none).
	lctx, lcancel := context.WithTimeout(ctx, probeTimeout)
	logs, lerr := svc.GetLogs(s.workerCtx(lctx), s.id, worker.LogQuery{Offset: -tailMaxEntries})
	lcancel()
	c.mu.Lock()
	if c.awaitingLocked(s) {
		why := "stop was requested while it was away"
		if !strings.Contains(s.reason, reasonStopPending) {
			why = s.reason
		}
		c.foundLocked(s)
		s.adopt, s.stopOnReturn, s.lostAt = false, false, time.Time{}
		s.status = statusStopped
		s.reason = "stopped when its worker " + wid + " came back (" + why + ")"
		if lerr == nil {
			if t := tailFromPage(logs.ToMap()); t != nil {
				s.tail = t
			}
		}
		c.markLocked(s.id)
	}
	c.mu.Unlock()
	c.log.Info("pending stop done at the returning worker", "session", s.id, "worker", wid)
}

// startDaemons starts the daemon apps waiting since the controller started,
// each once a worker for its type is there. A daemon whose previous session
// was re-adopted is not started again; one whose previous session awaits
// its worker waits up to daemonAdoptWait.
func (c *Controller) startDaemons(ctx context.Context) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.daemons))
	for k := range c.daemons {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	sort.Strings(keys)
	for _, key := range keys {
		ws, alias, _ := strings.Cut(key, "/")
		c.mu.Lock()
		m := c.apps[ws][alias]
		live, waiting := false, false
		for _, s := range c.sessions {
			if s.ws == ws && s.appID == alias {
				live = live || !isEnded(s.status)
				waiting = waiting || s.adopt
			}
		}
		if m == nil || m["daemon"] != true || live {
			delete(c.daemons, key)
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if waiting && time.Since(c.startedAt) < daemonAdoptWait {
			continue
		}
		appType, _ := m["type"].(string)
		found, _ := c.workersIn(ctx, ws, appType, alias)
		if len(found) == 0 && ws != "public" {
			found, _ = c.workersIn(ctx, "public", appType, alias)
		}
		if len(found) == 0 {
			continue // no worker for it yet: a later round tries again
		}
		c.mu.Lock()
		delete(c.daemons, key)
		c.mu.Unlock()
		cl, err := installer(m, ws)
		if err != nil {
			c.log.Warn("daemon app not started after the restart", "app", key, "err", err)
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			pg := c.newProgress(nil)
			defer pg.close()
			rec, err := c.startApp(c.baseCtx, cl, ws, startOptions{appID: alias, progress: pg, fresh: true})
			if err != nil {
				c.log.Warn("daemon app failed to start after the restart", "app", key, "err", err)
				return
			}
			c.log.Info("daemon app started", "app", key, "session", rec["id"])
		}()
	}
}

// installer is the caller a daemon app is started as at server start: the
// user who installed it (the manifest's startup_context), with the
// permission that user has now. Nothing runs with more than the installer
// could do by calling start (no deputy).
func installer(m map[string]any, ws string) (*caller, error) {
	sc, _ := m["startup_context"].(map[string]any)
	raw, _ := sc["user"].(map[string]any)
	if raw == nil {
		return nil, fmt.Errorf("the manifest names no installer (startup_context.user)")
	}
	u, err := auth.UserFromMap(raw)
	if err != nil {
		return nil, fmt.Errorf("the installer in startup_context: %w", err)
	}
	if u.IsAnonymous {
		return nil, fmt.Errorf("the installer %s is anonymous", u.ID)
	}
	return &caller{user: u, ws: ws, raw: raw, from: "public/" + ClientID}, nil
}
