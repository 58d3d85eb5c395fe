package bench

import (
	"context"
	"github.com/hypha-go/hypha/internal/testserver"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSessionsSmoke runs the sessions benchmark with tiny numbers so that CI
// exercises it (it measures nothing worth reading at this size).
func TestSessionsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts interpreter processes")
	}
	_, err := exec.LookPath("python3")
	testserver.NeedOrSkip(t, err == nil, "python3")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Sessions(ctx, SessionsOptions{Samples: 3, Sessions: 3, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + r.Report())
	if r.StartToRunning.N != 3 || r.StartToExited.N != 3 || r.Bare.N != 3 {
		t.Fatalf("samples: %+v %+v %+v", r.StartToRunning, r.StartToExited, r.Bare)
	}
	if r.StartToExited.Median < r.StartToRunning.Median {
		t.Errorf("exited (%s) before running (%s)", r.StartToExited.Median, r.StartToRunning.Median)
	}
	if r.Running != 3 || r.Remaining != 0 || r.RemainingLater != 0 || r.WorkDirsLeft != 0 {
		t.Errorf("running %d, left %d/%d, dirs left %d", r.Running, r.Remaining, r.RemainingLater, r.WorkDirsLeft)
	}
	if r.RSSBefore <= 0 || r.RSSAfter <= 0 || r.StartAll <= 0 || r.StopAll <= 0 {
		t.Errorf("missing measurements: %+v", r)
	}
	if !strings.Contains(r.Report(), "ratio start->running / bare") {
		t.Errorf("report:\n%s", r.Report())
	}
}

func TestParentOf(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ppid, ok := parentOf(cmd.Process.Pid)
	if !ok || ppid <= 0 {
		t.Fatalf("parentOf(%d) = %d, %v", cmd.Process.Pid, ppid, ok)
	}
	found := false
	apps, _ := appProcesses("no-such-marker-xyz")
	for _, p := range apps {
		found = found || p == cmd.Process.Pid
	}
	if !found {
		t.Fatalf("appProcesses did not find our child %d", cmd.Process.Pid)
	}
}
