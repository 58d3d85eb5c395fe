package k8s

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

// leftPod creates, as a previous run of the worker would have left it, the
// pod of a session in the given phase, with its log.
func leftPod(t *testing.T, fc *fakeCluster, workerID, id string, phase corev1.PodPhase) string {
	t.Helper()
	prev, err := New(Options{Client: fc.client(), Namespace: testNamespace, WorkerID: workerID})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := prev.opts.parseManifest(worker.Manifest{"image": "test/manual:1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(id, "test/manual:1", nil)
	cfg.ID = "ws-a/" + id
	pod := prev.buildPod(cfg, ps, time.Now())
	pod.Status.Phase = phase
	if phase == corev1.PodSucceeded {
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}}
	}
	if _, err := fc.cs.CoreV1().Pods(testNamespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := prev.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		fc.logs.write(pod.Name, "before restart "+string(rune('a'+i)))
	}
	if phase != corev1.PodRunning {
		fc.logs.end(pod.Name)
	}
	return pod.Name
}

// TestAdoptAfterRestart: a restarted worker finds its pods by label: a
// running pod is a running session again (its log read once, then
// followed), an ended one completed, a pending one is deleted, and another
// worker's pod is left alone. Stop then deletes the adopted pods.
func TestAdoptAfterRestart(t *testing.T) {
	fc := newFakeCluster(t)
	running := leftPod(t, fc, "hypha-k8s-worker", "run", corev1.PodRunning)
	done := leftPod(t, fc, "hypha-k8s-worker", "done", corev1.PodSucceeded)
	pending := leftPod(t, fc, "hypha-k8s-worker", "pend", corev1.PodPending)
	foreign := leftPod(t, fc, "another-worker", "other", corev1.PodRunning)

	w := newWorker(t, fc, nil)
	n, err := w.Adopt(testserver.Ctx(t))
	if err != nil || n != 2 {
		t.Fatalf("adopt = %d, %v; want 2 sessions", n, err)
	}
	waitStatus(t, w, "ws-a/run", worker.StatusRunning)
	waitStatus(t, w, "ws-a/done", worker.StatusCompleted)
	info, _ := w.GetSessionInfo(context.Background(), "ws-a/run")
	if info.Workspace != "ws-a" || info.AppID != "app-run" || info.ClientID != "run" || info.AppType != TypeK8sPod {
		t.Fatalf("adopted session = %+v", info)
	}
	// The restarted worker still follows the running pod's log.
	fc.logs.write(running, "after restart")
	want := []string{"before restart a", "before restart b", "before restart c", "after restart"}
	testserver.WaitFor(t, waitLong, "the log after the restart", func() bool { return len(stdoutLines(t, w, "ws-a/run")) >= 4 })
	if got := stdoutLines(t, w, "ws-a/run"); !slices.Equal(got, want) {
		t.Fatalf("stdout = %q", got)
	}
	// Only the worker's own session workspace sees it.
	if l, _ := w.ListSessions(worker.WithCaller(context.Background(), worker.Caller{Workspace: "ws-b"}), "ws-a"); len(l) != 0 {
		t.Fatalf("ws-b lists %v", l)
	}
	names := func() []string {
		var out []string
		for _, p := range fc.pods(t) {
			out = append(out, p.Name)
		}
		return out
	}
	if got := names(); slices.Contains(got, pending) || !slices.Contains(got, foreign) {
		t.Fatalf("pods after adopt = %v (pending %s must go, foreign %s stay)", got, pending, foreign)
	}
	for _, id := range []string{"ws-a/run", "ws-a/done"} {
		if err := w.Stop(testserver.Ctx(t), id); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(); slices.Contains(got, running) || slices.Contains(got, done) {
		t.Fatalf("pods after stop = %v", got)
	}
	if err := fc.cs.CoreV1().Pods(testNamespace).Delete(context.Background(), foreign, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}
