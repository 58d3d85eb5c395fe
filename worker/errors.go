package worker

import (
	"errors"
	"fmt"
)

// ErrWorker is the root of every error this package defines: errors.Is(err,
// ErrWorker) holds for all of them, like Python's WorkerError being the base
// class of SessionNotFoundError and WorkerNotAvailableError. Workers wrap it
// (fmt.Errorf("%w: ...", ErrWorker)) for their own failures.
var ErrWorker = errors.New("worker error")

// The messages are what an RPC caller sees as text, so they are complete on
// their own. They are deliberately lower case: the Python hypha-rpc client
// retries a call once when an error text contains "Session not found" (its
// stale-reference heuristic), and a missing worker session is not a stale
// reference.
var (
	// ErrSessionNotFound reports an unknown session, and also a session that
	// belongs to a workspace the caller may not see (the two are
	// indistinguishable on purpose).
	ErrSessionNotFound error = &kindError{"session not found"}
	// ErrWorkerNotAvailable reports that the worker cannot serve at all or
	// right now: a missing dependency, or the session limit reached.
	ErrWorkerNotAvailable error = &kindError{"worker not available"}
	// ErrSessionExists reports a start for a session id already in use.
	ErrSessionExists error = &kindError{"session already exists"}
	// ErrInvalidTransition reports a refused session status change.
	ErrInvalidTransition error = &kindError{"invalid session status transition"}
	// ErrInvalidConfig reports a config, log query or compile request whose
	// values have the wrong shape.
	ErrInvalidConfig error = &kindError{"invalid worker config"}
	// ErrNotSupported reports an optional method the worker does not provide.
	ErrNotSupported error = &kindError{"not supported by this worker"}
)

// kindError is a sentinel that is also ErrWorker, without putting "worker
// error: " in front of every message.
type kindError struct{ msg string }

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Is(target error) bool { return target == ErrWorker }

// SessionNotFound returns ErrSessionNotFound naming the session id.
func SessionNotFound(sessionID string) error {
	return fmt.Errorf("%w: %s", ErrSessionNotFound, sessionID)
}
