package apps

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hypha-go/hypha/worker"
)

// How the controller learns that a session ended (see docs/apps.md,
// "Session bookkeeping"): client_disconnected of the app's client or of its
// worker (events), a check of the worker's get_session_info before every
// answer that depends on it (list_running, get_session_info, start's
// instance reuse), and a background round every sessionWatchInterval that
// also refreshes each running session's cached last logs.
const (
	sessionWatchInterval = 5 * time.Second
	// probeTimeout bounds one get_session_info or get_logs call of a check:
	// an answer waits at most this long for a worker that does not answer.
	probeTimeout = 2 * time.Second
	// probeParallel bounds the worker calls of one check round.
	probeParallel = 8
	// maxEndedPerWorkspace bounds the ended sessions kept per workspace.
	maxEndedPerWorkspace = 50
)

// probe is what a check learned about a session.
type probe int

const (
	probeUnknown probe = iota // the worker could not tell
	probeLive                 // the worker says it starts or runs
	probeEnded                // it ended (and the controller recorded it if it was running)
)

// workerAnswer classifies the worker's get_session_info answer.
type workerAnswer int

const (
	answerUnknown workerAnswer = iota // no get_session_info, timeout, transport error
	answerKnown                       // a status
	answerLost                        // the worker does not know the session
)

// workerStatus asks the session's worker for the session's status.
func (c *Controller) workerStatus(ctx context.Context, s *session) (status, errMsg string, a workerAnswer) {
	c.mu.Lock()
	gone := s.workerGone
	c.mu.Unlock()
	if gone || s.worker == nil || !s.worker.Has(worker.MethodGetSessionInfo) {
		return "", "", answerUnknown
	}
	qctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	info, err := s.worker.GetSessionInfo(s.workerCtx(qctx), s.id)
	if err != nil {
		// The worker names the session it does not know ("session not
		// found: <id>"); other errors (timeouts, a worker on its way out)
		// say nothing about the session.
		if errors.Is(err, worker.ErrSessionNotFound) {
			return "", err.Error(), answerLost
		}
		return "", "", answerUnknown
	}
	if info.Status == "" {
		return "", "", answerUnknown
	}
	c.noteExitCode(s, info)
	return string(info.Status), info.Error, answerKnown
}

// refresh asks the worker about s and records its end when s is running
// and the worker says it ended (completed, failed, stopped) or no longer
// knows it. The last logs are fetched at the end, and also while it runs
// when withLogs is set.
func (c *Controller) refresh(ctx context.Context, s *session, withLogs bool) probe {
	c.mu.Lock()
	st := s.status
	c.mu.Unlock()
	if isEnded(st) {
		return probeEnded
	}
	wst, msg, a := c.workerStatus(ctx, s)
	var status, reason string
	switch {
	case a == answerUnknown:
		if withLogs {
			c.fetchTail(ctx, s)
		}
		return probeUnknown
	case a == answerLost:
		status, reason = statusFailed, "the worker no longer knows the session (it was removed there, or the worker restarted)"
	case wst == statusCompleted:
		status, reason = statusCompleted, "the app ended by itself (exit code 0)"
	case wst == statusFailed:
		status, reason = statusFailed, msg
		if reason == "" {
			reason = "the worker reports the session failed"
		}
	case wst == statusStopped:
		status, reason = statusStopped, "stopped at the worker"
	default:
		if withLogs {
			c.fetchTail(ctx, s)
		}
		return probeLive
	}
	if a == answerKnown {
		c.fetchTail(ctx, s)
	}
	c.mu.Lock()
	if s.status == statusRunning {
		c.endLocked(s, status, reason)
	}
	c.mu.Unlock()
	return probeEnded
}

// refreshAll refreshes sessions in parallel (at most probeParallel calls
// at once) and returns when every check is done.
func (c *Controller) refreshAll(ctx context.Context, list []*session, withLogs bool) {
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for _, s := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.refresh(ctx, s, withLogs)
		}()
	}
	wg.Wait()
}

// runningLocked lists the running sessions that keep(s) selects (c.mu held).
func (c *Controller) runningLocked(keep func(*session) bool) []*session {
	var out []*session
	for _, s := range c.sessions {
		if s.status == statusRunning && !s.workerGone && keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// fetchTail caches the session's last logs (get_logs with a negative
// offset: the last tailMaxEntries entries).
func (c *Controller) fetchTail(ctx context.Context, s *session) {
	c.mu.Lock()
	gone := s.workerGone
	c.mu.Unlock()
	if gone || s.worker == nil {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	lctx = s.workerCtx(lctx)
	page, err := s.worker.GetLogs(lctx, s.id, worker.LogQuery{Offset: -tailMaxEntries})
	if err != nil {
		// A worker that refuses a negative offset: take its whole log and
		// keep the end.
		if page, err = s.worker.GetLogs(lctx, s.id, worker.LogQuery{}); err != nil {
			return
		}
	}
	c.keepTail(s, page)
}

// keepTail replaces the cached logs of s with the end of a get_logs result.
func (c *Controller) keepTail(s *session, page worker.LogPage) {
	if page.Follows() {
		c.mu.Lock()
		s.logFollow = true
		c.mu.Unlock()
	}
	t := tailFromPage(page.ToMap())
	if t == nil {
		return
	}
	c.mu.Lock()
	if !s.workerGone && !s.tail.same(t) {
		s.tail = t
		c.markLocked(s.id)
	}
	c.mu.Unlock()
}

// watch refreshes every running session now and then, so that an end
// nobody asked about is still recorded and the cached logs stay recent.
func (c *Controller) watch() {
	defer c.wg.Done()
	t := time.NewTicker(sessionWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-c.baseCtx.Done():
			return
		case <-c.resumeKick:
			// A worker appeared: re-adopt and start daemons now.
			ctx, cancel := context.WithTimeout(c.baseCtx, sessionWatchInterval)
			c.resume(ctx)
			cancel()
			continue
		case <-t.C:
		}
		c.mu.Lock()
		list := c.runningLocked(func(*session) bool { return true })
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(c.baseCtx, sessionWatchInterval)
		c.refreshAll(ctx, list, true)
		c.resume(ctx)
		cancel()
	}
}
