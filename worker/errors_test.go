package worker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		sentinel error
		text     string
	}{
		{"not found", SessionNotFound("ws/c1"), ErrSessionNotFound, "session not found: ws/c1"},
		{"not available", fmt.Errorf("%w: conda missing", ErrWorkerNotAvailable), ErrWorkerNotAvailable, "worker not available: conda missing"},
		{"exists", fmt.Errorf("%w: ws/c1", ErrSessionExists), ErrSessionExists, "session already exists: ws/c1"},
		{"worker", fmt.Errorf("%w: boom", ErrWorker), ErrWorker, "worker error: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", tt.err, tt.sentinel)
			}
			if !errors.Is(tt.err, ErrWorker) {
				t.Errorf("errors.Is(%v, ErrWorker) = false; every worker error must be an ErrWorker", tt.err)
			}
			if got := tt.err.Error(); got != tt.text {
				t.Errorf("Error() = %q, want %q", got, tt.text)
			}
		})
	}
	if errors.Is(ErrSessionNotFound, ErrWorkerNotAvailable) || errors.Is(ErrWorker, ErrSessionNotFound) {
		t.Error("distinct sentinels must not match each other")
	}
}

// The Python client retries a call once when the error text contains one of
// these (its stale-reference heuristic); worker errors must not trigger it.
func TestErrorTextsAvoidStaleReferencePatterns(t *testing.T) {
	patterns := []string{"Method expired or not found", "Session not found", "Peer", "Method not found", "Connection was closed", "Connection is closed"}
	for _, err := range []error{ErrWorker, ErrSessionNotFound, ErrWorkerNotAvailable, ErrSessionExists, ErrInvalidTransition, ErrInvalidConfig, ErrNotSupported, SessionNotFound("ws/x")} {
		for _, p := range patterns {
			if strings.Contains(err.Error(), p) {
				t.Errorf("%q contains %q", err, p)
			}
		}
	}
}
