package worker

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var allStatuses = []Status{StatusStarting, StatusRunning, StatusCompleted, StatusFailed, StatusStopping, StatusStopped}

// TestTransitions pins the full table: every pair not listed is refused.
func TestTransitions(t *testing.T) {
	allowed := map[[2]Status]bool{
		// upstream
		{StatusStarting, StatusRunning}:  true,
		{StatusRunning, StatusStopping}:  true,
		{StatusStopping, StatusStopped}:  true,
		{StatusStarting, StatusFailed}:   true,
		{StatusRunning, StatusFailed}:    true,
		{StatusRunning, StatusCompleted}: true,
		// ours, see transitions
		{StatusStarting, StatusStopping}:  true,
		{StatusCompleted, StatusStopping}: true,
		{StatusFailed, StatusStopping}:    true,
		{StatusStopping, StatusFailed}:    true,
	}
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			if got := from.CanTransitionTo(to); got != allowed[[2]Status{from, to}] {
				t.Errorf("%s -> %s allowed = %v, want %v", from, to, got, !got)
			}
		}
		if !from.Valid() {
			t.Errorf("%s not Valid", from)
		}
	}
	if Status("paused").Valid() || Status("").CanTransitionTo(StatusRunning) {
		t.Error("unknown statuses must be invalid and have no transitions")
	}
}

func TestSessionInfoToMap(t *testing.T) {
	created := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
	cfg := Config{
		ID: "ws/c", AppID: "app", Workspace: "ws", ClientID: "c", EntryPoint: "main.py",
		Manifest: Manifest{"type": "python-eval", "name": "N"},
	}
	info := NewSessionInfo(cfg, created)
	want := map[string]any{
		"session_id":  "ws/c",
		"app_id":      "app",
		"workspace":   "ws",
		"client_id":   "c",
		"status":      "starting",
		"app_type":    "python-eval",
		"entry_point": "main.py",
		"created_at":  "2024-01-02T02:04:05.123456Z",
		"metadata":    map[string]any{"type": "python-eval", "name": "N"},
	}
	if d := cmp.Diff(want, info.ToMap()); d != "" {
		t.Fatalf("ToMap (-want +got):\n%s", d)
	}

	info.Status, info.Error, info.EntryPoint, info.Metadata = StatusFailed, "boom", "", nil
	m := info.ToMap()
	if m["error"] != "boom" || m["entry_point"] != nil || m["metadata"] != nil || m["status"] != "failed" {
		t.Errorf("failed session map: %#v", m)
	}

	if got := NewSessionInfo(Config{ID: "ws/c"}, created).AppType; got != "unknown" {
		t.Errorf("app type without manifest = %q, want unknown", got)
	}
}
