package k8s

// This file is a FAKE Kubernetes cluster for the tests: no API server,
// scheduler or kubelet can run here. It is client-go's fake clientset
// (k8s.io/client-go/kubernetes/fake), which the worker sees through
// fakeCoreClient (fakeclient_test.go), plus three fakes of our own:
//
//   - fakeKubelet watches the fake clientset's pods and moves each one
//     through the phases a kubelet would, chosen by its image name
//     (test/lines, test/complete, test/fail, test/badimage, test/oom,
//     test/crash, test/unschedulable; test/pending and test/manual are left
//     alone), writing the scheduler's and kubelet's events;
//   - fakeLogs is a LogSource that streams what the tests (or the fake
//     kubelet) write, with timestamps, following, whole-second sinceTime
//     like the API server, and simulated dropped connections; it exists
//     because the fake clientset answers every log request with the fixed
//     body "fake logs";
//   - fakeExec is an Executor that interprets a few shell commands.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
)

const testNamespace = "hypha-test"

type fakeCluster struct {
	cs   *fake.Clientset
	logs *fakeLogs
	exec *fakeExec

	cancel context.CancelFunc
	done   chan struct{}
	evSeq  int
	mu     sync.Mutex
}

// newFakeCluster starts the fake kubelet; it stops at the end of the test.
func newFakeCluster(t testing.TB) *fakeCluster {
	fc := &fakeCluster{cs: fake.NewClientset(), logs: newFakeLogs(), exec: &fakeExec{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	fc.cancel = cancel
	wi, err := fc.cs.CoreV1().Pods(testNamespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("fake kubelet: watch: %v", err)
	}
	go fc.kubelet(ctx, wi)
	t.Cleanup(fc.stop)
	return fc
}

func (fc *fakeCluster) stop() {
	fc.cancel()
	<-fc.done
}

// kubelet reacts to new pods in the order they come; deleted pods end
// their log streams.
func (fc *fakeCluster) kubelet(ctx context.Context, wi watch.Interface) {
	defer close(fc.done)
	defer wi.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			p, _ := ev.Object.(*corev1.Pod)
			if p == nil {
				continue
			}
			switch ev.Type {
			case watch.Added:
				fc.run(ctx, p)
			case watch.Deleted:
				fc.logs.end(p.Name)
			}
		}
	}
}

// imageKind is "lines" for "test/lines:1".
func imageKind(p *corev1.Pod) string {
	img := p.Spec.Containers[0].Image
	img = strings.TrimPrefix(img, "test/")
	kind, _, _ := strings.Cut(img, ":")
	return kind
}

func (fc *fakeCluster) run(ctx context.Context, p *corev1.Pod) {
	name := p.Name
	switch imageKind(p) {
	case "lines", "complete", "fail":
		fc.event(ctx, p, corev1.EventTypeNormal, "Scheduled", "Successfully assigned "+testNamespace+"/"+name+" to fake-node")
		fc.event(ctx, p, corev1.EventTypeNormal, "Pulling", "Pulling image \""+p.Spec.Containers[0].Image+"\"")
		fc.event(ctx, p, corev1.EventTypeNormal, "Started", "Started container main")
		fc.setStatus(ctx, name, func(st *corev1.PodStatus) {
			st.Phase = corev1.PodRunning
			st.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		})
		for i := 1; i <= 30; i++ {
			fc.logs.write(name, "line "+strconv.Itoa(i))
		}
		switch imageKind(p) {
		case "complete":
			fc.terminate(ctx, name, corev1.PodSucceeded, "Completed", 0)
		case "fail":
			fc.terminate(ctx, name, corev1.PodFailed, "Error", 3)
		}
	case "badimage":
		fc.event(ctx, p, corev1.EventTypeNormal, "Scheduled", "Successfully assigned to fake-node")
		fc.event(ctx, p, corev1.EventTypeWarning, "Failed", "Failed to pull image: not found")
		fc.waiting(ctx, name, "ImagePullBackOff", "Back-off pulling image \""+p.Spec.Containers[0].Image+"\"")
	case "crash":
		fc.setStatus(ctx, name, func(st *corev1.PodStatus) {
			st.Phase = corev1.PodRunning
			st.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s restarting failed container"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}},
			}}
		})
	case "oom":
		fc.setStatus(ctx, name, func(st *corev1.PodStatus) { st.Phase = corev1.PodPending })
		fc.terminate(ctx, name, corev1.PodFailed, "OOMKilled", 137)
	case "unschedulable":
		fc.event(ctx, p, corev1.EventTypeWarning, "FailedScheduling", "0/3 nodes are available: 3 Insufficient memory.")
		fc.setStatus(ctx, name, func(st *corev1.PodStatus) {
			st.Phase = corev1.PodPending
			st.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient memory."}}
		})
	}
}

func (fc *fakeCluster) setStatus(ctx context.Context, name string, mod func(*corev1.PodStatus)) {
	p, err := fc.cs.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return // deleted meanwhile
	}
	mod(&p.Status)
	_, _ = fc.cs.CoreV1().Pods(testNamespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

func (fc *fakeCluster) waiting(ctx context.Context, name, reason, msg string) {
	fc.setStatus(ctx, name, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodPending
		st.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
	})
}

// terminate ends the main container and the pod; the log stream ends.
func (fc *fakeCluster) terminate(ctx context.Context, name string, phase corev1.PodPhase, reason string, code int32) {
	fc.logs.end(name)
	fc.setStatus(ctx, name, func(st *corev1.PodStatus) {
		st.Phase = phase
		st.ContainerStatuses = []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}}}
	})
}

func (fc *fakeCluster) event(ctx context.Context, p *corev1.Pod, typ, reason, msg string) {
	fc.mu.Lock()
	fc.evSeq++
	n := fc.evSeq
	fc.mu.Unlock()
	_, _ = fc.cs.CoreV1().Events(testNamespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", p.Name, n), Namespace: testNamespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: testNamespace, UID: p.UID},
		Type:           typ, Reason: reason, Message: msg, Count: 1,
	}, metav1.CreateOptions{})
}

// pods lists the pods in the fake cluster.
func (fc *fakeCluster) pods(t testing.TB) []corev1.Pod {
	t.Helper()
	l, err := fc.cs.CoreV1().Pods(testNamespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	return l.Items
}

func (fc *fakeCluster) pod(t testing.TB, name string) *corev1.Pod {
	t.Helper()
	p, err := fc.cs.CoreV1().Pods(testNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", name, err)
	}
	return p
}

// fakeLogs is the fake LogSource (see the top of the file).
type fakeLogs struct {
	mu     sync.Mutex
	pods   map[string]*fakeLog
	opened []time.Time // the since of every stream opened, in order
}

type fakeLog struct {
	lines   []fakeLine
	ended   bool
	gen     int // bumped by drop: open streams end as if the connection broke
	changed chan struct{}
}

type fakeLine struct {
	ts   time.Time
	text string
}

func newFakeLogs() *fakeLogs { return &fakeLogs{pods: map[string]*fakeLog{}} }

func (l *fakeLogs) get(pod string) *fakeLog {
	fl := l.pods[pod]
	if fl == nil {
		fl = &fakeLog{changed: make(chan struct{})}
		l.pods[pod] = fl
	}
	return fl
}

func (l *fakeLogs) update(pod string, f func(*fakeLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fl := l.get(pod)
	f(fl)
	close(fl.changed)
	fl.changed = make(chan struct{})
}

func (l *fakeLogs) write(pod, text string) {
	l.update(pod, func(fl *fakeLog) { fl.lines = append(fl.lines, fakeLine{time.Now().UTC(), text}) })
}

func (l *fakeLogs) end(pod string)  { l.update(pod, func(fl *fakeLog) { fl.ended = true }) }
func (l *fakeLogs) drop(pod string) { l.update(pod, func(fl *fakeLog) { fl.gen++ }) }

func (l *fakeLogs) openedSince() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.opened...)
}

// Stream follows the pod's log from since, truncated to the second as the
// API server's sinceTime is.
func (l *fakeLogs) Stream(ctx context.Context, ns, pod, container string, since time.Time) (io.ReadCloser, error) {
	if ns != testNamespace || container != ContainerName {
		return nil, fmt.Errorf("fake logs: unexpected namespace %q or container %q", ns, container)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opened = append(l.opened, since)
	fl := l.get(pod)
	return &fakeStream{l: l, fl: fl, ctx: ctx, since: since.Truncate(time.Second), gen: fl.gen}, nil
}

type fakeStream struct {
	l       *fakeLogs
	fl      *fakeLog
	ctx     context.Context
	since   time.Time
	gen     int
	next    int
	pending []byte
}

func (s *fakeStream) Read(p []byte) (int, error) {
	for {
		if len(s.pending) > 0 {
			n := copy(p, s.pending)
			s.pending = s.pending[n:]
			return n, nil
		}
		s.l.mu.Lock()
		if s.fl.gen != s.gen {
			s.l.mu.Unlock()
			return 0, io.ErrUnexpectedEOF
		}
		for s.next < len(s.fl.lines) && len(s.pending) == 0 {
			ln := s.fl.lines[s.next]
			s.next++
			if !ln.ts.Before(s.since) {
				s.pending = []byte(ln.ts.Format(time.RFC3339Nano) + " " + ln.text + "\n")
			}
		}
		if len(s.pending) > 0 {
			s.l.mu.Unlock()
			continue
		}
		if s.fl.ended {
			s.l.mu.Unlock()
			return 0, io.EOF
		}
		ch := s.fl.changed
		s.l.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		case <-ch:
		}
	}
}

func (s *fakeStream) Close() error { return nil }

// fakeExec is the fake Executor: "echo X" prints X, "warn X" prints X on
// stderr, "exit N" exits with N, "sleep" blocks until its context ends;
// commands are separated by ";".
type fakeExec struct {
	mu   sync.Mutex
	reqs []ExecRequest
}

func (f *fakeExec) Exec(ctx context.Context, r ExecRequest) (int, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.mu.Unlock()
	if len(r.Command) != 3 || r.Command[1] != "-c" {
		return 0, fmt.Errorf("fake exec: unexpected command %q", r.Command)
	}
	for _, c := range strings.Split(r.Command[2], ";") {
		verb, arg, _ := strings.Cut(strings.TrimSpace(c), " ")
		switch verb {
		case "echo":
			fmt.Fprintln(r.Stdout, arg)
		case "warn":
			fmt.Fprintln(r.Stderr, arg)
		case "flood":
			n, _ := strconv.Atoi(arg)
			_, _ = r.Stdout.Write([]byte(strings.Repeat("x", n)))
		case "exit":
			n, _ := strconv.Atoi(arg)
			return n, nil
		case "sleep":
			<-ctx.Done()
			return 0, ctx.Err()
		default:
			fmt.Fprintf(r.Stderr, "sh: %s: not found\n", verb)
			return 127, nil
		}
	}
	return 0, nil
}

func (f *fakeExec) requests() []ExecRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ExecRequest(nil), f.reqs...)
}
