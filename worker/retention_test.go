package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// retentionFixture is a registry with sessions in the given statuses,
// created one after the other (the oldest first), and a cleanup that
// records what it stopped.
func retentionFixture(t *testing.T, statuses ...Status) (*Registry, []string, func() []string, func(context.Context, *Session) error) {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Second); return now }
	r := NewRegistry(RegistryOptions{Now: clock})
	var ids []string
	for i, st := range statuses {
		s, err := r.Create(SessionInfo{SessionID: fmt.Sprintf("ws/s%d", i), Workspace: "ws", ClientID: fmt.Sprintf("s%d", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetStatus(StatusRunning); err != nil {
			t.Fatal(err)
		}
		if st != StatusRunning {
			if err := s.SetStatus(st); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, s.ID())
	}
	var stopped []string
	cleanup := func(_ context.Context, s *Session) error {
		mu.Lock()
		defer mu.Unlock()
		stopped = append(stopped, s.ID())
		return nil
	}
	got := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), stopped...) }
	return r, ids, got, cleanup
}

func TestRetentionRemovesAfterKeep(t *testing.T) {
	r, ids, stopped, cleanup := retentionFixture(t, StatusCompleted, StatusFailed)
	ret := NewRetention(r, time.Millisecond, cleanup)
	defer ret.Close()
	ret.Finished(ids[0])
	ret.Finished(ids[1])
	deadline := time.Now().Add(30 * time.Second)
	for r.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions still listed: %v (stopped %v)", r.List(""), stopped())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := stopped(); len(got) != 2 {
		t.Fatalf("cleanup ran for %v, want both sessions", got)
	}
}

func TestRetentionForgetAndClose(t *testing.T) {
	r, ids, stopped, cleanup := retentionFixture(t, StatusCompleted, StatusCompleted)
	ret := NewRetention(r, time.Hour, cleanup)
	ret.Finished(ids[0])
	ret.Finished(ids[1])
	ret.Forget(ids[0])
	ret.mu.Lock()
	_, pending0 := ret.pending[ids[0]]
	n := len(ret.pending)
	ret.mu.Unlock()
	if pending0 || n != 1 {
		t.Fatalf("after Forget: %d pending (first still pending: %v), want 1", n, pending0)
	}
	ret.Close()
	ret.Finished(ids[0]) // after Close: nothing scheduled
	ret.mu.Lock()
	n = len(ret.pending)
	ret.mu.Unlock()
	if n != 0 || r.Len() != 2 || len(stopped()) != 0 {
		t.Fatalf("after Close: %d pending, %d listed, stopped %v; want 0, 2, none", n, r.Len(), stopped())
	}
}

func TestRetentionMakeRoom(t *testing.T) {
	r, ids, stopped, cleanup := retentionFixture(t, StatusRunning, StatusFailed, StatusCompleted, StatusRunning)
	ret := NewRetention(r, time.Hour, cleanup)
	defer ret.Close()
	ret.MakeRoom(10) // not full: nothing
	if len(stopped()) != 0 {
		t.Fatalf("MakeRoom below the limit stopped %v", stopped())
	}
	ret.MakeRoom(4) // full: the oldest finished one goes
	if got := stopped(); len(got) != 1 || got[0] != ids[1] || r.Len() != 3 {
		t.Fatalf("MakeRoom(4) stopped %v (%d left), want only %s", got, r.Len(), ids[1])
	}
	ret.MakeRoom(1) // the other finished one goes; running ones stay
	if got := stopped(); len(got) != 2 || got[1] != ids[2] || r.Len() != 2 {
		t.Fatalf("MakeRoom(1) stopped %v (%d left), want %s too and the running ones kept", got, r.Len(), ids[2])
	}
}
