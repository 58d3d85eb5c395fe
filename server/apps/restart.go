package apps

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// What a restarted controller does with the sessions it persisted
// (sessionstore.go); docs/apps.md, "Restarts", is the rule:
//
//   - an ended session comes back as it was, for what is left of
//     endedSessionTTL;
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

// restoreSessions puts the persisted sessions back (before the controller
// serves anything). c.mu need not be held: nothing else runs yet.
func (c *Controller) restoreSessions(recs []*sessionFile) {
	now := time.Now().UTC()
	for _, r := range recs {
		s := &session{
			id: r.ID, ws: r.Workspace, cid: r.ClientID, appID: r.AppID, appType: r.AppType,
			daemon: r.Daemon, workerManaged: r.WorkerManaged, createdAt: r.CreatedAt,
			info: r.Info, status: r.Status, reason: r.Reason, endedAt: r.EndedAt,
			workerID: r.WorkerID, workerClient: r.WorkerClient, context: r.Context, rev: r.Revision,
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
		left := endedSessionTTL - now.Sub(s.endedAt)
		if left <= 0 {
			c.dirty[s.id] = struct{}{} // expired while the server was down
			continue
		}
		c.sessions[s.id] = s
		s.expire = time.AfterFunc(left, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.dropLocked(s.id, s)
		})
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
		c.log.Info("session records restored", "sessions", len(c.sessions), "awaiting_their_worker", n)
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
	for _, s := range c.sessions {
		if s.adopt {
			byWorker[s.workerID] = append(byWorker[s.workerID], s)
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
	for _, s := range list {
		c.adoptOne(ctx, ws, wid, svc, s)
	}
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
func (c *Controller) adoptOne(ctx context.Context, ws, wid string, svc *rpc.RemoteService, s *session) {
	c.mu.Lock()
	stop := s.stopOnReturn
	c.mu.Unlock()
	if stop {
		c.stopOnReturn(ctx, wid, svc, s)
		return
	}
	qctx, cancel := context.WithTimeout(ctx, probeTimeout)
	v, err := svc.Call(qctx, "get_session_info", s.id, rpc.Kwargs{"context": s.context})
	cancel()
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "not found") && strings.Contains(err.Error(), s.id) {
			c.mu.Lock()
			if c.sessions[s.id] == s && s.adopt {
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
	m, _ := v.(map[string]any)
	status, _ := m["status"].(string)
	switch {
	case status == statusStarting || status == statusRunning:
		_, rel, err := c.acquire(ctx, ws) // the session's own reference
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.sessions[s.id] != s || !s.adopt || s.stopOnReturn || c.closed {
			c.mu.Unlock()
			rel()
			return
		}
		old := s.release // the reference of the connection it lost (after a disconnect)
		s.adopt, s.workerGone = false, false
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
		c.log.Info("session re-adopted", "session", s.id, "worker", wid)
		c.fetchTail(ctx, s)
	case isEnded(status):
		// It ended while the controller could not see it: keep the
		// worker's word and its last logs.
		c.noteExitCode(s, m)
		lctx, cancel := context.WithTimeout(ctx, probeTimeout)
		logs, lerr := svc.Call(lctx, "get_logs", s.id, rpc.Kwargs{"offset": -tailMaxEntries, "context": s.context})
		cancel()
		msg, _ := m["error"].(string)
		c.mu.Lock()
		if c.sessions[s.id] == s && s.adopt && !s.stopOnReturn {
			s.adopt = false
			s.status = status
			s.reason = fmt.Sprintf("it ended (%s) %s", status, awayWhile(s))
			if msg != "" {
				s.reason += ": " + msg
			}
			if lerr == nil {
				if t := tailFromPage(logs); t != nil {
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
func (c *Controller) stopOnReturn(ctx context.Context, wid string, svc *rpc.RemoteService, s *session) {
	sctx, cancel := context.WithTimeout(ctx, workerCallTimeout)
	_, err := svc.Call(sctx, "stop", s.id, rpc.Kwargs{"context": s.context})
	cancel()
	if err != nil && !(strings.Contains(strings.ToLower(err.Error()), "not found") && strings.Contains(err.Error(), s.id)) {
		c.log.Warn("pending stop failed; tried again later", "session", s.id, "worker", wid, "err", err)
		return
	}
	// Its last logs, now final (a worker that forgot it has none).
	lctx, lcancel := context.WithTimeout(ctx, probeTimeout)
	logs, lerr := svc.Call(lctx, "get_logs", s.id, rpc.Kwargs{"offset": -tailMaxEntries, "context": s.context})
	lcancel()
	c.mu.Lock()
	if c.sessions[s.id] == s && s.adopt {
		s.adopt, s.stopOnReturn = false, false
		s.status = statusStopped
		s.reason = "stopped when its worker " + wid + " came back (stop was requested while it was away)"
		if lerr == nil {
			if t := tailFromPage(logs); t != nil {
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
