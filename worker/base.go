package worker

import (
	"context"
	"errors"
	"fmt"
)

// Base gives a worker type the bookkeeping half of Worker from a Registry:
// ListSessions, GetSessionInfo, GetLogs, PrepareWorkspace and
// CloseWorkspace. Embed it and add Properties, Start and Stop:
//
//	type MyWorker struct{ worker.Base }
//
//	w := &MyWorker{}
//	w.Base = worker.Base{Sessions: worker.NewRegistry(worker.RegistryOptions{}), Stopper: w}
//
// Lookups go through the Caller in ctx (Registry.LookupFor / ListFor), so
// untrusted callers only see their own workspace. A nil Sessions behaves as
// an empty registry.
type Base struct {
	Sessions *Registry
	// Stopper stops one session for CloseWorkspace and StopAll; it is
	// normally the embedding worker itself (an embedded struct cannot reach
	// its embedder's methods otherwise).
	Stopper Stopper
}

// ListSessions lists the workspace's sessions visible to the caller.
func (b *Base) ListSessions(ctx context.Context, workspace string) ([]SessionInfo, error) {
	if b.Sessions == nil {
		return []SessionInfo{}, nil
	}
	return b.Sessions.ListFor(ctx, workspace), nil
}

// GetSessionInfo describes a session visible to the caller.
func (b *Base) GetSessionInfo(ctx context.Context, sessionID string) (SessionInfo, error) {
	if b.Sessions == nil {
		return SessionInfo{}, SessionNotFound(sessionID)
	}
	s, err := b.Sessions.LookupFor(ctx, sessionID)
	if err != nil {
		return SessionInfo{}, err
	}
	return s.Info(), nil
}

// GetLogs pages the logs of a session visible to the caller. With q.Wait
// it waits for new entries until the session ends (LogStore.PageWait); the
// page carries the session's status.
func (b *Base) GetLogs(ctx context.Context, sessionID string, q LogQuery) (LogPage, error) {
	if b.Sessions == nil {
		return LogPage{}, SessionNotFound(sessionID)
	}
	s, err := b.Sessions.LookupFor(ctx, sessionID)
	if err != nil {
		return LogPage{}, err
	}
	// The session context ends when the session leaves starting/running.
	page := s.Logs().PageWait(ctx, q, s.Context().Done())
	page.Status = string(s.Status())
	return page, nil
}

// PrepareWorkspace does nothing: sessions need no per-workspace setup unless
// the worker overrides this.
func (b *Base) PrepareWorkspace(ctx context.Context, workspace string) error { return nil }

// CloseWorkspace stops every session of the workspace visible to the caller.
// It tries them all and returns the joined errors.
func (b *Base) CloseWorkspace(ctx context.Context, workspace string) error {
	if b.Sessions == nil || workspace == "" {
		return nil
	}
	return b.stopEach(ctx, b.Sessions.ListFor(ctx, workspace))
}

// StopAll stops every session, e.g. from a Shutdown method. It tries them
// all and returns the joined errors.
func (b *Base) StopAll(ctx context.Context) error {
	if b.Sessions == nil {
		return nil
	}
	return b.stopEach(ctx, b.Sessions.List(""))
}

func (b *Base) stopEach(ctx context.Context, sessions []SessionInfo) error {
	if len(sessions) == 0 {
		return nil
	}
	if b.Stopper == nil {
		return fmt.Errorf("%w: worker.Base has no Stopper, cannot stop %d session(s)", ErrWorker, len(sessions))
	}
	var errs []error
	for _, s := range sessions {
		if err := b.Stopper.Stop(ctx, s.SessionID); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.SessionID, err))
			b.Sessions.logger.Warn("worker: failed to stop session", "session", s.SessionID, "error", err)
		}
	}
	return errors.Join(errs...)
}
