package k8s

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitLong = 60 * time.Second

// newWorker returns a worker on the fake cluster, shut down at the end
// with a check that it left no pod behind.
func newWorker(t *testing.T, fc *fakeCluster, mod func(*Options)) *Worker {
	t.Helper()
	o := Options{Client: fc.client(), Namespace: testNamespace, LogSource: fc.logs, Executor: fc.exec, Logger: testserver.Logger(t)}
	if mod != nil {
		mod(&o)
	}
	w, err := New(o)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		for _, p := range fc.pods(t) {
			if p.Labels[LabelWorker] == w.opts.WorkerID {
				t.Errorf("pod %s left after shutdown", p.Name)
			}
		}
	})
	return w
}

func config(id, image string, extra map[string]any) worker.Config {
	m := worker.Manifest{"type": TypeK8sPod, "name": "app " + id, "image": image}
	for k, v := range extra {
		m[k] = v
	}
	return worker.Config{
		ID: "ws-a/" + id, Workspace: "ws-a", ClientID: id, AppID: "app-" + id,
		ServerURL: "http://hypha.invalid:9527", Token: "secret-token-" + id, Manifest: m,
	}
}

// progressLog collects progress messages.
type progressLog struct {
	mu   sync.Mutex
	msgs []string
}

func (p *progressLog) fn(_ context.Context, pr worker.Progress) error {
	p.mu.Lock()
	p.msgs = append(p.msgs, string(pr.Type)+": "+pr.Message)
	p.mu.Unlock()
	return nil
}

func (p *progressLog) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.msgs, "\n")
}

func stdoutLines(t *testing.T, w *Worker, id string) []string {
	t.Helper()
	page, err := w.GetLogs(context.Background(), id, worker.LogQuery{Type: worker.LogStdout})
	if err != nil {
		t.Fatalf("get_logs: %v", err)
	}
	var out []string
	for _, e := range page.Items {
		out = append(out, e.Content)
	}
	return out
}

func numbered(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

// TestStartRunsAndStreamsLogs: a pod that runs is a running session; its
// events are progress messages, its log is in the session's logs once,
// and the pod has the worker's security context, HYPHA_* variables,
// labels, annotations and default resources.
func TestStartRunsAndStreamsLogs(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, nil)
	var pl progressLog
	cfg := config("c1", "test/lines:1", map[string]any{"env": map[string]any{"MODE": "demo"}, "command": []any{"python", "-m", "app"}})
	cfg.ProgressFunc = pl.fn
	cfg.AppFilesBaseURL, cfg.EntryPoint = "http://hypha.invalid:9527/ws-a/artifacts/app-c1/files", "main.py"
	id, err := w.Start(testserver.Ctx(t), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if info, _ := w.GetSessionInfo(context.Background(), id); info.Status != worker.StatusRunning {
		t.Fatalf("status %s, want running", info.Status)
	}
	testserver.WaitFor(t, waitLong, "30 log lines", func() bool { return len(stdoutLines(t, w, id)) >= 30 })
	if got := stdoutLines(t, w, id); !slices.Equal(got, numbered(30)) {
		t.Fatalf("stdout = %q", got)
	}
	if !strings.Contains(pl.text(), "success: pod "+PodName(id)+" is running") {
		t.Fatalf("progress = %s", pl.text())
	}
	// The pod's events are in the session's info log: reported as progress
	// while the start waits, logged by the monitor when they come later
	// (the pod and event informers deliver in no fixed order).
	for _, want := range []string{"event: scheduled: Successfully assigned", "event: pulling image: Pulling image", "event: container started"} {
		testserver.WaitFor(t, waitLong, want, func() bool {
			page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{Type: worker.LogInfo})
			return slices.ContainsFunc(page.Items, func(e worker.LogEntry) bool { return strings.HasPrefix(e.Content, want) })
		})
	}

	p := fc.pod(t, PodName(id))
	c := p.Spec.Containers[0]
	sc, psc := c.SecurityContext, p.Spec.SecurityContext
	if sc == nil || psc == nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || *sc.Privileged ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !*psc.RunAsNonRoot || *psc.RunAsUser == 0 {
		t.Fatalf("security context: pod %+v container %+v", psc, sc)
	}
	if *p.Spec.AutomountServiceAccountToken || p.Spec.HostNetwork || p.Spec.HostPID || len(p.Spec.Volumes) > 0 {
		t.Fatalf("pod spec gives host or API access: %+v", p.Spec)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["HYPHA_TOKEN"] != cfg.Token || env["HYPHA_CLIENT_ID"] != "c1" || env["HYPHA_WORKSPACE"] != "ws-a" ||
		env["HYPHA_SERVER_URL"] != cfg.ServerURL || env["HYPHA_APP_ID"] != "app-c1" || env["MODE"] != "demo" ||
		env["HYPHA_APP_FILES_BASE_URL"] != cfg.AppFilesBaseURL || env["HYPHA_ENTRY_POINT"] != "main.py" {
		t.Fatalf("env = %v", env)
	}
	if !slices.Equal(c.Command, []string{"python", "-m", "app"}) || c.ImagePullPolicy != corev1.PullIfNotPresent || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("container = %+v", c)
	}
	if p.Labels[LabelWorker] != "hypha-k8s-worker" || p.Labels[LabelWorkspace] != "ws-a" || p.Annotations[AnnotationSessionID] != id ||
		p.Annotations[AnnotationAppID] != "app-c1" || p.Annotations[AnnotationClientID] != "c1" {
		t.Fatalf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	if r := c.Resources; r.Requests.Cpu().String() != "100m" || r.Requests.Memory().String() != "128Mi" ||
		r.Limits.Cpu().String() != "1" || r.Limits.Memory().String() != "512Mi" {
		t.Fatalf("resources = %+v", r)
	}
	// The token is the app's; it stays out of the session's logs.
	page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{})
	for _, e := range page.Items {
		if strings.Contains(e.Content, cfg.Token) {
			t.Fatalf("token in log entry %+v", e)
		}
	}
	if strings.Contains(pl.text(), cfg.Token) {
		t.Fatal("token in progress messages")
	}
}

// TestStopDeletesPod: stop deletes the pod (with the grace period) and
// waits until it is gone; a second stop and a stop of an unknown id are
// no-ops.
func TestStopDeletesPod(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, func(o *Options) { o.StopGrace = 3 * time.Second })
	id, err := w.Start(testserver.Ctx(t), config("c1", "test/lines:1", nil))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := w.Stop(testserver.Ctx(t), id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if pods := fc.pods(t); len(pods) != 0 {
		t.Fatalf("pods after stop: %d", len(pods))
	}
	var grace *int64
	for _, a := range fc.cs.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			if d, ok := a.(interface{ GetDeleteOptions() metav1.DeleteOptions }); ok {
				grace = d.GetDeleteOptions().GracePeriodSeconds
			}
		}
	}
	if grace == nil || *grace != 3 {
		t.Fatalf("delete grace period = %v, want 3", grace)
	}
	if err := w.Stop(testserver.Ctx(t), id); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if err := w.Stop(testserver.Ctx(t), "ws-a/unknown"); err != nil {
		t.Fatalf("stop unknown: %v", err)
	}
	if _, err := w.GetSessionInfo(context.Background(), id); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("session after stop: %v", err)
	}
	if len(w.pods) != 0 {
		t.Fatalf("handles left: %v", w.pods)
	}
}

// TestStartFailureReasons: a pod that cannot run fails the start with
// Kubernetes' reason, and its pod is deleted.
func TestStartFailureReasons(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, nil)
	for _, tc := range []struct {
		image string
		extra map[string]any
		want  []string
		is    error
	}{
		{"test/badimage:1", nil, []string{"ImagePullBackOff", "Back-off pulling image"}, ErrPodFailed},
		{"test/oom:1", nil, []string{"OOMKilled", "exit code 137"}, ErrPodFailed},
		{"test/crash:1", map[string]any{"restart_policy": "Always"}, []string{"CrashLoopBackOff", "last exit: Error, code 1"}, ErrPodFailed},
		{"test/unschedulable:1", map[string]any{"timeout": 1}, []string{"not running after 1s", "Unschedulable: 0/3 nodes are available: 3 Insufficient memory"}, ErrStartTimeout},
		{"test/pending:1", map[string]any{"timeout": 0.5}, []string{"not running after 500ms"}, ErrStartTimeout},
	} {
		t.Run(tc.image, func(t *testing.T) {
			var pl progressLog
			cfg := config(strings.Trim(notDNS.ReplaceAllString(tc.image, "-"), "-"), tc.image, tc.extra)
			cfg.ProgressFunc = pl.fn
			_, err := w.Start(testserver.Ctx(t), cfg)
			if !errors.Is(err, tc.is) {
				t.Fatalf("start error %v, want %v", err, tc.is)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("start error %q does not say %q", err, want)
				}
			}
			if _, err := w.GetSessionInfo(context.Background(), cfg.ID); !errors.Is(err, worker.ErrSessionNotFound) {
				t.Fatalf("failed session still listed: %v", err)
			}
			for _, p := range fc.pods(t) {
				if p.Name == PodName(cfg.ID) {
					t.Fatalf("pod %s left after a failed start", p.Name)
				}
			}
			testserver.WaitFor(t, waitLong, "an error progress message", func() bool {
				return strings.Contains(pl.text(), "error: failed to start the pod")
			})
		})
	}
	if t.Failed() {
		return
	}
	// The scheduler's warning reached the caller as progress.
	var pl progressLog
	cfg := config("u2", "test/unschedulable:2", map[string]any{"timeout": 1})
	cfg.ProgressFunc = pl.fn
	_, _ = w.Start(testserver.Ctx(t), cfg)
	testserver.WaitFor(t, waitLong, "the FailedScheduling warning", func() bool {
		return strings.Contains(pl.text(), "warning: not scheduled: 0/3 nodes")
	})
}

// TestSessionEndsWithPod: a pod that completes makes the session
// completed with exit code 0 and its whole log; a failing one failed with
// its exit code and reason; a pod deleted behind the worker's back fails.
func TestSessionEndsWithPod(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, nil)
	ctx := testserver.Ctx(t)
	ok, err := w.Start(ctx, config("ok", "test/complete:1", nil))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	bad, err := w.Start(ctx, config("bad", "test/fail:1", nil))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	waitStatus(t, w, ok, worker.StatusCompleted)
	info := waitStatus(t, w, bad, worker.StatusFailed)
	if info.ExitCode == nil || *info.ExitCode != 3 || !strings.Contains(info.Error, "Error, exit code 3") {
		t.Fatalf("failed session: %+v", info)
	}
	info, _ = w.GetSessionInfo(ctx, ok)
	if info.ExitCode == nil || *info.ExitCode != 0 {
		t.Fatalf("completed session: %+v", info)
	}
	if got := stdoutLines(t, w, ok); !slices.Equal(got, numbered(30)) {
		t.Fatalf("completed session's stdout = %q", got)
	}

	gone, err := w.Start(ctx, config("gone", "test/lines:1", nil))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := fc.cs.CoreV1().Pods(testNamespace).Delete(ctx, PodName(gone), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	info = waitStatus(t, w, gone, worker.StatusFailed)
	if !strings.Contains(info.Error, "deleted outside the worker") {
		t.Fatalf("error = %q", info.Error)
	}
	for _, id := range []string{ok, bad, gone} {
		if err := w.Stop(ctx, id); err != nil {
			t.Fatalf("stop %s: %v", id, err)
		}
	}
	if n := len(fc.pods(t)); n != 0 {
		t.Fatalf("%d pods left", n)
	}
}

func waitStatus(t *testing.T, w *Worker, id string, want worker.Status) worker.SessionInfo {
	t.Helper()
	var info worker.SessionInfo
	testserver.WaitFor(t, waitLong, "status "+string(want), func() bool {
		info, _ = w.GetSessionInfo(context.Background(), id)
		return info.Status == want
	})
	return info
}

// TestLogReconnectNoDuplicates: when the log stream breaks, the worker
// reconnects from the last timestamp (whole seconds, as the API takes it)
// and adds no line twice and loses none.
func TestLogReconnectNoDuplicates(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, nil)
	var pl progressLog
	cfg := config("c2", "test/manual:1", nil)
	cfg.ProgressFunc = pl.fn
	name := PodName(cfg.ID)
	done := make(chan error, 1)
	go func() { _, err := w.Start(testserver.Ctx(t), cfg); done <- err }()
	testserver.WaitFor(t, waitLong, "the pod", func() bool { return len(fc.pods(t)) > 0 })
	// Events of a starting pod are progress messages.
	fc.event(context.Background(), fc.pod(t, name), corev1.EventTypeNormal, "Pulling", "Pulling image \"test/manual:1\"")
	testserver.WaitFor(t, waitLong, "the Pulling event as progress", func() bool {
		return strings.Contains(pl.text(), "info: pulling image: Pulling image \"test/manual:1\"")
	})
	fc.setStatus(context.Background(), name, func(st *corev1.PodStatus) { st.Phase = corev1.PodRunning })
	if err := <-done; err != nil {
		t.Fatalf("start: %v", err)
	}
	for i := 1; i <= 5; i++ {
		fc.logs.write(name, fmt.Sprintf("line %d", i))
	}
	testserver.WaitFor(t, waitLong, "5 lines", func() bool { return len(stdoutLines(t, w, cfg.ID)) == 5 })
	fc.logs.drop(name)
	for i := 6; i <= 10; i++ {
		fc.logs.write(name, fmt.Sprintf("line %d", i))
	}
	testserver.WaitFor(t, waitLong, "10 lines", func() bool { return len(stdoutLines(t, w, cfg.ID)) >= 10 })
	fc.logs.drop(name)
	fc.logs.write(name, "line 11")
	testserver.WaitFor(t, waitLong, "11 lines", func() bool { return len(stdoutLines(t, w, cfg.ID)) >= 11 })
	if got := stdoutLines(t, w, cfg.ID); !slices.Equal(got, numbered(11)) {
		t.Fatalf("stdout after reconnects = %q", got)
	}
	opened := fc.logs.openedSince()
	if len(opened) < 3 || !opened[0].IsZero() || opened[1].IsZero() {
		t.Fatalf("streams opened with since %v: want the first from the start, the next from the last line", opened)
	}
}
