package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// RegistryOptions configures a Registry. Zero values mean the defaults.
type RegistryOptions struct {
	// MaxSessions caps concurrent sessions; Create then fails with
	// ErrWorkerNotAvailable. Zero means no cap.
	MaxSessions int
	// Logs caps each session's LogStore.
	Logs LogLimits
	// Logger receives lifecycle events at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now stamps CreatedAt; nil means time.Now. For tests.
	Now func() time.Time
}

// Registry is the session table a worker keeps: session info with enforced
// status transitions, a bounded log store and an opaque runtime handle per
// session, and workspace-aware lookups. Safe for concurrent use.
//
// Sessions are keyed by session id only: the server may run several sessions
// of the same app at once (autoscaling), each with its own client id.
type Registry struct {
	opts   RegistryOptions
	logger *slog.Logger

	mu       sync.RWMutex
	sessions map[string]*Session
}

// NewRegistry returns an empty registry.
func NewRegistry(opts RegistryOptions) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Registry{opts: opts, logger: logger, sessions: make(map[string]*Session)}
}

// Session is one registry entry. Its methods are safe for concurrent use.
type Session struct {
	reg    *Registry
	id     string
	logs   *LogStore
	ctx    context.Context
	cancel context.CancelFunc
	gone   chan struct{} // closed by Remove

	mu       sync.Mutex
	info     SessionInfo
	handle   any
	stopping chan struct{} // non-nil while StopSession runs cleanup; closed when it ends
	removed  bool
}

// Create registers a new session in status starting. info.SessionID is
// required; an empty Workspace is taken from the id's "<workspace>/" prefix;
// a zero CreatedAt is set to now. handle is any runtime state the worker
// wants to keep with the session (see Session.Handle).
//
// It fails with ErrSessionExists if the id is taken (the server never reuses
// one, so this is a bug or a replay) and with ErrWorkerNotAvailable when
// MaxSessions is reached.
func (r *Registry) Create(info SessionInfo, handle any) (*Session, error) {
	if info.SessionID == "" {
		return nil, fmt.Errorf("%w: empty session id", ErrInvalidConfig)
	}
	if info.Status != "" && info.Status != StatusStarting {
		return nil, fmt.Errorf("%w: a new session starts as %q, not %q", ErrInvalidTransition, StatusStarting, info.Status)
	}
	info.Status = StatusStarting
	if info.Workspace == "" {
		if ws, _, ok := strings.Cut(info.SessionID, "/"); ok {
			info.Workspace = ws
		}
	}
	if info.CreatedAt.IsZero() {
		info.CreatedAt = r.opts.Now()
	}
	// The session context outlives the start() call that creates it, so it
	// derives from Background, not from that call's ctx.
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		reg:    r,
		id:     info.SessionID,
		logs:   NewLogStore(r.opts.Logs),
		ctx:    ctx,
		cancel: cancel,
		gone:   make(chan struct{}),
		info:   info,
		handle: handle,
	}

	r.mu.Lock()
	if _, ok := r.sessions[s.id]; ok {
		r.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("%w: %s", ErrSessionExists, s.id)
	}
	if r.opts.MaxSessions > 0 && len(r.sessions) >= r.opts.MaxSessions {
		r.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("%w: session limit reached (%d)", ErrWorkerNotAvailable, r.opts.MaxSessions)
	}
	r.sessions[s.id] = s
	r.mu.Unlock()
	r.logger.Debug("worker: session created", "session", s.id, "app", info.AppID)
	return s, nil
}

// CreateFromConfig is Create(NewSessionInfo(cfg, now), handle): the usual
// first line of a Start method.
func (r *Registry) CreateFromConfig(cfg Config, handle any) (*Session, error) {
	return r.Create(NewSessionInfo(cfg, r.opts.Now()), handle)
}

// Lookup returns the session with this id, without any workspace check.
// Use it for the worker's own bookkeeping; use LookupFor for a caller's
// request.
func (r *Registry) Lookup(id string) (*Session, error) {
	r.mu.RLock()
	s, ok := r.sessions[id]
	r.mu.RUnlock()
	if !ok {
		return nil, SessionNotFound(id)
	}
	return s, nil
}

// LookupFor is Lookup on behalf of the Caller in ctx (see Caller): a session
// in a workspace the caller may not see is reported exactly like a missing
// one, so its existence is not revealed.
func (r *Registry) LookupFor(ctx context.Context, id string) (*Session, error) {
	s, err := r.Lookup(id)
	if err != nil {
		return nil, err
	}
	if !canAccess(ctx, s.Workspace()) {
		return nil, SessionNotFound(id)
	}
	return s, nil
}

// CheckWorkspace returns nil if session id exists and belongs to workspace,
// and the same ErrSessionNotFound error otherwise.
func (r *Registry) CheckWorkspace(workspace, id string) error {
	s, err := r.Lookup(id)
	if err != nil {
		return err
	}
	if workspace == "" || s.Workspace() != workspace {
		return SessionNotFound(id)
	}
	return nil
}

// List returns the sessions of workspace (all sessions if workspace is
// empty), oldest first.
func (r *Registry) List(workspace string) []SessionInfo {
	r.mu.RLock()
	out := make([]SessionInfo, 0, len(r.sessions))
	for _, s := range r.sessions {
		info := s.Info()
		if workspace == "" || info.Workspace == workspace {
			out = append(out, info)
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b SessionInfo) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.SessionID, b.SessionID))
	})
	return out
}

// ListFor is List on behalf of the Caller in ctx: a workspace the caller may
// not see lists as empty, and so does an empty workspace for an untrusted
// caller (it would otherwise mean "all").
func (r *Registry) ListFor(ctx context.Context, workspace string) []SessionInfo {
	if c, ok := CallerFromContext(ctx); ok && !c.Trusted && (workspace == "" || !c.CanAccess(workspace)) {
		return []SessionInfo{}
	}
	return r.List(workspace)
}

// Len returns the number of sessions.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions)
}

// Remove deletes the session: its Context is cancelled, its log store
// closed (followers finish) and Done closed. It reports whether the id
// existed. The Session value stays readable.
func (r *Registry) Remove(id string) (SessionInfo, bool) {
	r.mu.Lock()
	s, ok := r.sessions[id]
	if ok {
		delete(r.sessions, id)
	}
	r.mu.Unlock()
	if !ok {
		return SessionInfo{}, false
	}
	s.markRemoved()
	r.logger.Debug("worker: session removed", "session", id, "status", s.Status())
	return s.Info(), true
}

// Discard ends a session whose start failed, the way upstream workers do:
// it marks the session failed with cause, removes it, and returns cause
// unchanged, so Start can end with
//
//	return "", w.Sessions.Discard(s, err)
//
// If a stop is already in charge of the session (the server gave up on the
// start), Discard leaves the session to it. The caller still releases its
// own resources first.
func (r *Registry) Discard(s *Session, cause error) error {
	s.mu.Lock()
	owned := s.stopping != nil
	if !owned && s.info.Status.CanTransitionTo(StatusFailed) {
		_ = s.failLocked(cause)
	}
	s.mu.Unlock()
	if !owned {
		r.remove(s)
	}
	return cause
}

// remove deletes s only if it is still the entry for its id, so a stale
// Session cannot remove a newer session that reuses the id.
func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	if r.sessions[s.id] == s {
		delete(r.sessions, s.id)
	}
	r.mu.Unlock()
	s.markRemoved()
}

// StopSession is the standard stop(): idempotent, safe against concurrent
// stops, and applying the status rules. For the session id, visible to the
// Caller in ctx:
//
//   - unknown (or foreign) id: returns nil, as upstream workers do, because
//     the server calls stop for sessions that may already be gone;
//   - another stop is running: waits for it, then re-evaluates;
//   - otherwise: moves to stopping (which cancels Session.Context), runs
//     cleanup (may be nil), then moves to stopped and removes the session.
//
// If cleanup fails the session moves to failed with the error, stays in the
// registry (so stop can be retried and the error is visible), and the error
// is returned.
func (r *Registry) StopSession(ctx context.Context, id string, cleanup func(context.Context, *Session) error) error {
	s, err := r.LookupFor(ctx, id)
	if errors.Is(err, ErrSessionNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for {
		s.mu.Lock()
		if s.removed {
			s.mu.Unlock()
			return nil
		}
		if ch := s.stopping; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if s.info.Status == StatusStopped { // set by hand without Remove
			s.mu.Unlock()
			r.remove(s)
			return nil
		}
		if err := s.setStatusLocked(StatusStopping); err != nil {
			s.mu.Unlock()
			return err
		}
		ch := make(chan struct{})
		s.stopping = ch
		s.mu.Unlock()
		s.cancel()

		var cerr error
		if cleanup != nil {
			cerr = cleanup(ctx, s)
		}
		s.mu.Lock()
		if cerr != nil {
			_ = s.failLocked(fmt.Errorf("stop failed: %w", cerr))
		} else {
			_ = s.setStatusLocked(StatusStopped)
		}
		s.stopping = nil
		s.mu.Unlock()
		close(ch)
		if cerr != nil {
			r.logger.Debug("worker: session stop failed", "session", id, "error", cerr)
			return fmt.Errorf("stop session %s: %w", id, cerr)
		}
		r.remove(s)
		r.logger.Debug("worker: session stopped", "session", id)
		return nil
	}
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// Info returns a copy of the session info (Metadata is shared).
func (s *Session) Info() SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// Status returns the current status.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info.Status
}

// Workspace returns the session's workspace.
func (s *Session) Workspace() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info.Workspace
}

// SetStatus moves the session to status to, or returns ErrInvalidTransition
// and changes nothing. Leaving starting/running cancels Context. Typical
// uses: SetStatus(StatusRunning) at the end of Start (it fails if a stop
// arrived meanwhile, and Start should then return that error), and
// SetStatus(StatusCompleted) when a job finishes by itself.
//
// While StopSession runs its cleanup the stop owns the session and
// SetStatus refuses every change.
func (s *Session) SetStatus(to Status) error {
	s.mu.Lock()
	err := s.checkNotStoppingLocked(to)
	if err == nil {
		err = s.setStatusLocked(to)
	}
	s.mu.Unlock()
	if err == nil && !to.Active() {
		s.cancel()
	}
	return err
}

func (s *Session) checkNotStoppingLocked(to Status) error {
	if s.stopping != nil {
		return fmt.Errorf("%w: session %s is being stopped (wanted %s)", ErrInvalidTransition, s.id, to)
	}
	return nil
}

func (s *Session) setStatusLocked(to Status) error {
	from := s.info.Status
	if !from.CanTransitionTo(to) {
		return fmt.Errorf("%w: session %s: %s -> %s", ErrInvalidTransition, s.id, from, to)
	}
	s.info.Status = to
	return nil
}

// Fail moves the session to failed, records err's text as its Error and
// appends it to the logs as an "error" entry (which the server quotes when a
// start fails). It returns ErrInvalidTransition if the session cannot fail
// from its current status or a StopSession is in charge of it.
func (s *Session) Fail(err error) error {
	s.mu.Lock()
	ferr := s.checkNotStoppingLocked(StatusFailed)
	if ferr == nil {
		ferr = s.failLocked(err)
	}
	s.mu.Unlock()
	if ferr == nil {
		s.cancel()
	}
	return ferr
}

func (s *Session) failLocked(err error) error {
	if err := s.setStatusLocked(StatusFailed); err != nil {
		return err
	}
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	s.info.Error = msg
	s.logs.Append(LogError, msg)
	return nil
}

// SetExitCode records the exit code of the session's process (see
// SessionInfo.ExitCode). Call it before the final SetStatus or Fail, so
// that whoever sees the final status also sees the code.
func (s *Session) SetExitCode(code int) {
	s.mu.Lock()
	s.info.ExitCode = &code
	s.mu.Unlock()
}

// Logs returns the session's log store.
func (s *Session) Logs() *LogStore { return s.logs }

// Log appends one entry to the session's logs.
func (s *Session) Log(typ LogType, content string) { s.logs.Append(typ, content) }

// Handle returns the runtime state stored with the session.
func (s *Session) Handle() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handle
}

// SetHandle replaces the runtime state stored with the session.
func (s *Session) SetHandle(h any) {
	s.mu.Lock()
	s.handle = h
	s.mu.Unlock()
}

// HandleOf returns the session's handle as an H.
func HandleOf[H any](s *Session) (H, bool) {
	h, ok := s.Handle().(H)
	return h, ok
}

// Context is cancelled when the session stops being active (stopping,
// failed, completed, stopped) or is removed. Run the session's background
// work under it, e.g. exec.CommandContext(s.Context(), …), so a stop arriving
// during start also aborts the start.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session is removed from the registry.
func (s *Session) Done() <-chan struct{} { return s.gone }

func (s *Session) markRemoved() {
	s.mu.Lock()
	already := s.removed
	s.removed = true
	s.mu.Unlock()
	if already {
		return
	}
	s.cancel()
	s.logs.Close()
	close(s.gone)
}
