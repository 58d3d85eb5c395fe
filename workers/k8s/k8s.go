// Package k8s is the Kubernetes worker: every session of a "k8s-pod" app is
// one pod in the worker's namespace, created with client-go.
//
// The worker keeps one pod informer (the worker's own pods, by label) and
// one event informer for its namespace. Start creates the pod and follows
// it through the informers, with no polling, until it runs, fails or the
// manifest's timeout passes, reporting the scheduler's and the kubelet's
// events as progress. A running session's log is streamed once (follow)
// into the session's bounded log store, resuming after a dropped
// connection without repeating lines. Execute runs a shell command through
// the exec API (an Executor), and Stop deletes the pod with a grace period
// and waits until it is gone. A restarted worker finds its pods by label
// and adopts their sessions again (Adopt).
package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/hypha-go/hypha/worker"
)

// TypeK8sPod is the app type this worker runs.
const TypeK8sPod = "k8s-pod"

// Sentinel errors.
var (
	// ErrPodFailed: the session's pod failed to start or ended in failure;
	// the message carries Kubernetes' reason (ImagePullBackOff, OOMKilled…).
	ErrPodFailed = errors.New("pod failed")
	// ErrStartTimeout: the pod was not running within the manifest's timeout.
	ErrStartTimeout = errors.New("pod did not start in time")
	// ErrPodGone: the pod was deleted by someone other than the worker.
	ErrPodGone = errors.New("pod was deleted")
)

// Options configure a Worker. Client is required.
type Options struct {
	Name, Description string
	// Client talks to the cluster (a RESTClient, or client-go's fake
	// clientset adapted to CoreClient in tests).
	Client CoreClient
	// Namespace holds every pod of the worker (default "default").
	Namespace string
	// WorkerID labels the worker's pods (hypha.amun.ai/worker) so that a
	// restarted worker finds them; keep it stable across restarts and
	// unique among the workers of a namespace (default "hypha-k8s-worker").
	WorkerID string
	// DefaultTimeout bounds a start when the manifest gives no timeout
	// (default 3600 s, upstream's).
	DefaultTimeout time.Duration
	// ImagePullPolicy applies when the manifest gives none (default
	// IfNotPresent).
	ImagePullPolicy corev1.PullPolicy
	// DefaultRequests and DefaultLimits fill what a manifest's resources
	// leave out (defaults: requests cpu 100m, memory 128Mi; limits cpu 1,
	// memory 512Mi). MaxLimits is the namespace maximum: a manifest asking
	// for more is refused (defaults: cpu 4, memory 8Gi).
	DefaultRequests, DefaultLimits, MaxLimits corev1.ResourceList
	// StopGrace is the pod's termination grace period (default 10 s).
	StopGrace time.Duration
	// MaxSessions caps concurrent sessions (default 50).
	MaxSessions int
	// Logs bounds each session's log store.
	Logs worker.LogLimits
	// ExecuteTimeout is execute's default timeout (default 30 s, upstream's).
	ExecuteTimeout time.Duration
	// MaxExecOutput bounds what execute keeps of each of stdout and stderr
	// (default 1 MiB).
	MaxExecOutput int
	// LogSource streams pod logs (default ClientLogSource on Client).
	LogSource LogSource
	// Executor runs execute's commands; nil leaves execute out of the
	// service (RemoteExecutor needs the REST config, which only the host
	// has).
	Executor Executor
	Logger   *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = "Kubernetes Pod Worker"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Description == "" {
		o.Description = fmt.Sprintf("Runs k8s-pod apps as pods in the Kubernetes namespace %q", o.Namespace)
	}
	if o.WorkerID == "" {
		o.WorkerID = "hypha-k8s-worker"
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = time.Hour
	}
	if o.ImagePullPolicy == "" {
		o.ImagePullPolicy = corev1.PullIfNotPresent
	}
	fill := func(l corev1.ResourceList, cpu, mem string) corev1.ResourceList {
		out := corev1.ResourceList{}
		for k, v := range l {
			out[k] = v
		}
		if _, ok := out[corev1.ResourceCPU]; !ok {
			out[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if _, ok := out[corev1.ResourceMemory]; !ok {
			out[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return out
	}
	o.DefaultRequests = fill(o.DefaultRequests, "100m", "128Mi")
	o.DefaultLimits = fill(o.DefaultLimits, "1", "512Mi")
	o.MaxLimits = fill(o.MaxLimits, "4", "8Gi")
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 50
	}
	if o.ExecuteTimeout <= 0 {
		o.ExecuteTimeout = 30 * time.Second
	}
	if o.MaxExecOutput <= 0 {
		o.MaxExecOutput = 1 << 20
	}
	if o.LogSource == nil && o.Client != nil {
		o.LogSource = ClientLogSource{Client: o.Client}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// check reports options that cannot work.
func (o Options) check() error {
	if o.Client == nil {
		return fmt.Errorf("%w: the Kubernetes worker needs a client (kubeconfig or in-cluster config)", worker.ErrWorkerNotAvailable)
	}
	for _, name := range resourceNames {
		r, l, m := o.DefaultRequests[name], o.DefaultLimits[name], o.MaxLimits[name]
		if r.Cmp(l) > 0 || l.Cmp(m) > 0 {
			return fmt.Errorf("%w: %s: default request %s, default limit %s and maximum %s must not decrease", worker.ErrInvalidConfig, name, r.String(), l.String(), m.String())
		}
	}
	return nil
}

// Worker is the Kubernetes worker.
type Worker struct {
	worker.Base
	opts Options

	ctx    context.Context // cancelled by Shutdown: aborts starts in flight
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	pods      map[string]*podHandle // by pod name
	informed  bool                  // the informers run
	infStop   chan struct{}
	podInf    cache.SharedIndexInformer
	informers []cache.SharedIndexInformer // pods, events
	infRun    sync.WaitGroup              // the informers' Run

	inflight sync.WaitGroup
	bg       sync.WaitGroup
}

var (
	_ worker.Worker          = (*Worker)(nil)
	_ worker.Executor        = (*Worker)(nil)
	_ worker.Shutdowner      = (*Worker)(nil)
	_ worker.MethodSupporter = (*Worker)(nil)
)

// New returns a worker. Nothing talks to the cluster before the first
// Start or Adopt. It fails when the options cannot work (no client,
// defaults above the maximum).
func New(opts Options) (*Worker, error) {
	opts = opts.withDefaults()
	if err := opts.check(); err != nil {
		return nil, err
	}
	w := &Worker{opts: opts, pods: map[string]*podHandle{}, infStop: make(chan struct{})}
	w.Base = worker.Base{
		Sessions: worker.NewRegistry(worker.RegistryOptions{MaxSessions: opts.MaxSessions, Logs: opts.Logs, Logger: opts.Logger}),
		Stopper:  w,
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w, nil
}

// Options returns the options in effect (defaults applied).
func (w *Worker) Options() Options { return w.opts }

// Properties describes the worker for registration.
func (w *Worker) Properties() worker.Properties {
	return worker.Properties{Name: w.opts.Name, Description: w.opts.Description, SupportedTypes: []string{TypeK8sPod}, RequireContext: true}
}

// SupportsMethod leaves execute out when no Executor is configured.
func (w *Worker) SupportsMethod(name string) bool {
	return name != worker.MethodExecute || w.opts.Executor != nil
}

// podHandle is a session's pod as the informers see it.
type podHandle struct {
	name string

	mu      sync.Mutex
	created bool        // the pod was created (by this worker or a previous run)
	uid     types.UID   // empty when the API server gave none (the fake clientset)
	pod     *corev1.Pod // latest seen; nil before the first
	gone    bool        // deleted (seen by the informer, or not found)
	events  []*corev1.Event
	evBase  int           // events dropped from the front of events
	changed chan struct{} // closed and replaced at every change
	pumped  chan struct{} // closed when the log pump ended (nil: none)
	watched chan struct{} // closed when the monitor ended (nil: none)
}

const maxPendingEvents = 256

func newPodHandle(name string) *podHandle {
	return &podHandle{name: name, changed: make(chan struct{})}
}

// wait returns a channel closed at the next change.
func (h *podHandle) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

func (h *podHandle) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *podHandle) setPod(p *corev1.Pod) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.uid != "" && p.UID != h.uid {
		return // an older pod of the same name
	}
	h.pod = p
	h.notifyLocked()
}

func (h *podHandle) setGone(uid types.UID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.uid != "" && uid != "" && uid != h.uid {
		return
	}
	h.gone = true
	h.notifyLocked()
}

func (h *podHandle) addEvent(e *corev1.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) >= maxPendingEvents {
		h.events = h.events[1:]
		h.evBase++
	}
	h.events = append(h.events, e)
	h.notifyLocked()
}

// snapshot returns the latest pod, whether it is gone, and the events from
// absolute index from on (and the index after them). Events of another pod
// of the same name (an older one) are left out.
func (h *podHandle) snapshot(from int) (pod *corev1.Pod, gone bool, evs []*corev1.Event, next int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := max(from-h.evBase, 0)
	for _, e := range h.events[min(i, len(h.events)):] {
		if h.uid == "" || e.InvolvedObject.UID == "" || e.InvolvedObject.UID == h.uid {
			evs = append(evs, e)
		}
	}
	return h.pod, h.gone, evs, h.evBase + len(h.events)
}

func (h *podHandle) terminal() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gone || (h.pod != nil && (h.pod.Status.Phase == corev1.PodSucceeded || h.pod.Status.Phase == corev1.PodFailed))
}

func (w *Worker) handle(name string) *podHandle {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pods[name]
}

// ensureInformers starts the pod and event informers once and waits until
// their caches hold the current state.
func (w *Worker) ensureInformers(ctx context.Context) error {
	infs, err := w.startInformers()
	if err != nil {
		return err
	}
	// Not under w.mu: an unreachable cluster keeps this waiting, and
	// Shutdown must still get through (it cancels w.ctx).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.ctx, cancel)()
	for i, inf := range infs {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			what := []string{"pods", "events"}[i]
			return fmt.Errorf("%w: listing %s in namespace %s: %w", worker.ErrWorkerNotAvailable, what, w.opts.Namespace, context.Cause(ctx))
		}
	}
	return nil
}

// listWatch lists and watches one kind of the worker's namespace through
// CoreClient, with tweak applied to every request's options (the
// selectors).
func (w *Worker) listWatch(list func(context.Context, string, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, string, metav1.ListOptions) (watch.Interface, error),
	tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	ns := w.opts.Namespace
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return list(ctx, ns, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return watchFn(ctx, ns, o)
		},
	}
	// A client that says it cannot stream the initial list as watch
	// events (the fake clientset of the tests) gets a plain list first.
	return cache.ToListWatcherWithWatchListSemantics(lw, w.opts.Client)
}

// startInformers starts the informers once and returns them (pods first).
func (w *Worker) startInformers() ([]cache.SharedIndexInformer, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, fmt.Errorf("%w: the Kubernetes worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	if !w.informed {
		c := w.opts.Client
		podLW := w.listWatch(
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.ListPods(ctx, ns, o)
			},
			c.WatchPods,
			func(o *metav1.ListOptions) { o.LabelSelector = LabelWorker + "=" + w.opts.WorkerID })
		evLW := w.listWatch(
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.ListEvents(ctx, ns, o)
			},
			c.WatchEvents,
			func(o *metav1.ListOptions) { o.FieldSelector = "involvedObject.kind=Pod" })
		w.podInf = cache.NewSharedIndexInformer(podLW, &corev1.Pod{}, 0, cache.Indexers{})
		evInf := cache.NewSharedIndexInformer(evLW, &corev1.Event{}, 0, cache.Indexers{})
		if _, err := w.podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.onPod,
			UpdateFunc: func(_, p any) { w.onPod(p) },
			DeleteFunc: w.onPodDeleted,
		}); err != nil {
			return nil, fmt.Errorf("pod informer: %w", err)
		}
		if _, err := evInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: w.onEvent,
			// A repeated event (BackOff, FailedScheduling) is an update
			// with a higher count: worth reporting again.
			UpdateFunc: func(old, e any) {
				o, _ := old.(*corev1.Event)
				n, _ := e.(*corev1.Event)
				if o != nil && n != nil && n.Count != o.Count {
					w.onEvent(e)
				}
			},
		}); err != nil {
			return nil, fmt.Errorf("event informer: %w", err)
		}
		w.informers = []cache.SharedIndexInformer{w.podInf, evInf}
		for _, inf := range w.informers {
			w.infRun.Go(func() { inf.Run(w.infStop) })
		}
		w.informed = true
	}
	return w.informers, nil
}

func (w *Worker) onPod(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Labels[LabelWorker] != w.opts.WorkerID {
		return
	}
	if h := w.handle(p.Name); h != nil {
		h.setPod(p)
	}
}

func (w *Worker) onPodDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if h := w.handle(p.Name); h != nil {
		h.setGone(p.UID)
	}
}

func (w *Worker) onEvent(obj any) {
	e, ok := obj.(*corev1.Event)
	if !ok || e.InvolvedObject.Kind != "Pod" || e.InvolvedObject.Namespace != w.opts.Namespace {
		return
	}
	if h := w.handle(e.InvolvedObject.Name); h != nil {
		h.addEvent(e)
	}
}

// Shutdown refuses new starts, stops every session (their pods are
// deleted) and stops the informers. Safe to call more than once. A worker
// that ends without Shutdown (killed) leaves its pods, which Adopt finds.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	w.inflight.Wait()
	err := w.StopAll(ctx)
	w.mu.Lock()
	w.informers = nil
	if w.informed {
		w.informed = false
		close(w.infStop)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		w.infRun.Wait()
		w.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("shutdown: %w", ctx.Err()))
	}
	return err
}
