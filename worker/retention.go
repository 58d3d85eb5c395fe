package worker

import (
	"context"
	"sync"
	"time"
)

// Retention keeps a worker's finished sessions (their program ended by
// itself: completed or failed) listed with their logs for a while, then
// stops them through the worker's cleanup, so that get_logs after the end
// still answers and nothing stays forever. It also makes room for a new
// session by stopping the oldest finished ones when the registry is full.
// The built-in local workers (process, conda, terminal) share it.
type Retention struct {
	sessions *Registry
	keep     time.Duration
	cleanup  func(context.Context, *Session) error

	mu      sync.Mutex
	pending map[string]*time.Timer
	closed  bool
	running sync.WaitGroup
}

// NewRetention keeps finished sessions of r for keep, then stops them with
// cleanup (the worker's own, as its Stop passes to Registry.StopSession).
func NewRetention(r *Registry, keep time.Duration, cleanup func(context.Context, *Session) error) *Retention {
	return &Retention{sessions: r, keep: keep, cleanup: cleanup, pending: map[string]*time.Timer{}}
}

// Finished schedules the removal of session id, whose program has ended.
// Call it with the session's own lock held, after checking that no stop
// has begun, so that Forget in the stop's cleanup cannot miss it.
func (t *Retention) Finished(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if old := t.pending[id]; old != nil {
		old.Stop()
	}
	var tm *time.Timer
	tm = time.AfterFunc(t.keep, func() {
		t.mu.Lock()
		if t.closed || t.pending[id] != tm {
			t.mu.Unlock()
			return
		}
		delete(t.pending, id)
		t.running.Add(1)
		t.mu.Unlock()
		defer t.running.Done()
		_ = t.sessions.StopSession(context.Background(), id, t.cleanup)
	})
	t.pending[id] = tm
}

// Forget cancels the pending removal of session id (it is being stopped).
func (t *Retention) Forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tm := t.pending[id]; tm != nil {
		tm.Stop()
		delete(t.pending, id)
	}
}

// MakeRoom stops the oldest finished sessions, one after the other, while
// the registry holds max sessions or more. Running sessions are never
// touched: when all are running the registry stays full.
func (t *Retention) MakeRoom(max int) {
	if t.sessions.Len() < max {
		return
	}
	for _, info := range t.sessions.List("") {
		if t.sessions.Len() < max {
			return
		}
		if info.Status == StatusCompleted || info.Status == StatusFailed {
			_ = t.sessions.StopSession(context.Background(), info.SessionID, t.cleanup)
		}
	}
}

// Close cancels every pending removal and waits for the ones under way;
// sessions still listed are the worker's to stop (its Shutdown does).
func (t *Retention) Close() {
	t.mu.Lock()
	t.closed = true
	for id, tm := range t.pending {
		tm.Stop()
		delete(t.pending, id)
	}
	t.mu.Unlock()
	t.running.Wait()
}
