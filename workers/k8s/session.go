package k8s

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hypha-go/hypha/worker"
)

// fatalWaiting are container waiting reasons after which a pod will not
// run without someone changing it: start fails at once with the reason
// instead of waiting for the timeout. ErrImagePull is among them: a wrong
// image name or a missing pull secret is by far its usual cause.
var fatalWaiting = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "CrashLoopBackOff": true,
	"RunContainerError": true,
}

// startState says where a starting pod stands: running (or already ended),
// failed for good (err, with Kubernetes' reason), or still pending (why,
// when Kubernetes says, e.g. "Unschedulable: 0/3 nodes are available").
func startState(p *corev1.Pod) (ready bool, pending string, err error) {
	for _, cs := range p.Status.ContainerStatuses {
		if wt := cs.State.Waiting; wt != nil && fatalWaiting[wt.Reason] {
			msg := wt.Reason
			if wt.Message != "" {
				msg += ": " + wt.Message
			}
			if t := cs.LastTerminationState.Terminated; t != nil && t.Reason != "" {
				msg += fmt.Sprintf(" (last exit: %s, code %d)", t.Reason, t.ExitCode)
			}
			return false, "", fmt.Errorf("%w: %s", ErrPodFailed, msg)
		}
	}
	switch p.Status.Phase {
	case corev1.PodRunning, corev1.PodSucceeded:
		return true, "", nil
	case corev1.PodFailed:
		// A container that ran and exited with an error code (reason Error)
		// is an app that failed, not a pod that failed to start: the
		// session starts and then fails with the exit code, as a quick
		// process would. OOMKilled, eviction, a container that could not
		// run fail the start.
		if code, ok := exitCode(p); ok && code != 0 && terminatedReason(p) == "Error" {
			return true, "", nil
		}
		return false, "", fmt.Errorf("%w: %s", ErrPodFailed, failureReason(p))
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
			return false, strings.TrimSuffix(c.Reason+": "+c.Message, ": "), nil
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if wt := cs.State.Waiting; wt != nil && wt.Reason != "" {
			return false, strings.TrimSuffix(wt.Reason+": "+wt.Message, ": "), nil
		}
	}
	return false, "", nil
}

// failureReason describes an ended pod: the main container's termination
// (OOMKilled, Error with its exit code) or the pod's own reason (Evicted).
func failureReason(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			msg := fmt.Sprintf("%s, exit code %d", orStr(t.Reason, "Terminated"), t.ExitCode)
			if t.Message != "" {
				msg += ": " + t.Message
			}
			return msg
		}
	}
	return strings.TrimSuffix(orStr(p.Status.Reason, "Failed")+": "+p.Status.Message, ": ")
}

// exitCode is the main container's exit code once it terminated.
func exitCode(p *corev1.Pod) (int, bool) {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == ContainerName && cs.State.Terminated != nil {
			return int(cs.State.Terminated.ExitCode), true
		}
	}
	return 0, false
}

func terminatedReason(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == ContainerName && cs.State.Terminated != nil {
			return cs.State.Terminated.Reason
		}
	}
	return ""
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// eventText renders a Kubernetes event for progress and logs, e.g.
// "scheduled: Successfully assigned default/hypha-pod-x to node-1".
func eventText(e *corev1.Event) string {
	what := map[string]string{
		"Scheduled": "scheduled", "Pulling": "pulling image", "Pulled": "image pulled",
		"Created": "container created", "Started": "container started",
		"FailedScheduling": "not scheduled", "BackOff": "back-off", "Failed": "failed",
		"Killing": "stopping container",
	}[e.Reason]
	if what == "" {
		what = e.Reason
	}
	msg := e.Message
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	if e.Count > 1 {
		msg += fmt.Sprintf(" (x%d)", e.Count)
	}
	return what + ": " + msg
}

// Start creates the session's pod and waits until it runs.
func (w *Worker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return "", fmt.Errorf("%w: the Kubernetes worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	defer w.inflight.Done()

	rep := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{Logger: w.opts.Logger})
	defer func() { _ = rep.Close(context.WithoutCancel(ctx)) }()
	fail := func(err error) (string, error) {
		rep.Error("failed to start the pod: " + err.Error())
		return "", err
	}
	if t := cfg.Manifest.Type(); t != "" && t != TypeK8sPod {
		return fail(fmt.Errorf("%w: app type %q is not run by the Kubernetes worker (it runs %s)", worker.ErrInvalidConfig, t, TypeK8sPod))
	}
	ps, err := w.opts.parseManifest(cfg.Manifest)
	if err != nil {
		return fail(err)
	}
	rep.Info(fmt.Sprintf("starting Kubernetes pod session %s", cfg.ID))
	if err := w.ensureInformers(ctx); err != nil {
		return fail(err)
	}
	name := PodName(cfg.ID)
	h := newPodHandle(name)
	s, err := w.Sessions.CreateFromConfig(cfg, h)
	if err != nil {
		return fail(err)
	}
	w.mu.Lock()
	if _, taken := w.pods[name]; taken {
		w.mu.Unlock()
		return fail(w.Sessions.Discard(s, fmt.Errorf("%w: pod %s is in use by another session", worker.ErrSessionExists, name)))
	}
	w.pods[name] = h
	w.mu.Unlock()

	// A stop (the session context), a shutdown or the caller giving up
	// aborts the start.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	defer context.AfterFunc(s.Context(), scancel)()
	defer context.AfterFunc(w.ctx, scancel)()

	abort := func(err error) (string, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.StopGrace+30*time.Second)
		defer cancel()
		if derr := w.deletePod(dctx, h); derr != nil {
			w.opts.Logger.Warn("deleting the pod of a failed start", "pod", name, "err", derr)
		}
		w.forget(h)
		return fail(w.Sessions.Discard(s, err))
	}

	pod := w.buildPod(cfg, ps, time.Now())
	rep.Info(fmt.Sprintf("creating pod %s with image %s", name, ps.Image))
	created, err := w.opts.Client.CreatePod(sctx, w.opts.Namespace, pod)
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Not ours to delete: refuse rather than adopt a pod whose
			// spec this start did not write.
			w.forget(h)
			return fail(w.Sessions.Discard(s, fmt.Errorf("%w: pod %s already exists in namespace %s", worker.ErrSessionExists, name, w.opts.Namespace)))
		}
		w.forget(h)
		return fail(w.Sessions.Discard(s, fmt.Errorf("%w: creating pod %s: %w", worker.ErrWorkerNotAvailable, name, err)))
	}
	h.mu.Lock()
	h.created, h.uid = true, created.UID
	if h.pod != nil && h.pod.UID != created.UID {
		h.pod = nil
	}
	h.mu.Unlock()
	s.Log(worker.LogInfo, fmt.Sprintf("pod %s created in namespace %s (image %s)", name, w.opts.Namespace, ps.Image))
	rep.Success(fmt.Sprintf("pod %s created", name))

	seen, err := w.waitRunning(sctx, s, h, ps.Timeout, rep)
	if err != nil {
		if s.Context().Err() != nil && ctx.Err() == nil && w.ctx.Err() == nil {
			err = fmt.Errorf("%w: stopped while starting", worker.ErrInvalidTransition)
		}
		return abort(err)
	}
	if err := s.SetStatus(worker.StatusRunning); err != nil {
		return abort(err)
	}
	w.follow(s, h, seen)
	s.Log(worker.LogInfo, "pod "+name+" is running")
	rep.Success(fmt.Sprintf("pod %s is running", name))
	return s.ID(), nil
}

// waitRunning follows the pod through the informers until it runs (or
// already ended), fails for good, or timeout passes. Events become
// progress messages and info log entries. It returns how many of the pod's
// events it took, for the monitor to go on from.
func (w *Worker) waitRunning(ctx context.Context, s *worker.Session, h *podHandle, timeout time.Duration, rep *worker.Reporter) (int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	next, pending := 0, ""
	for {
		changed := h.wait()
		pod, gone, evs, n := h.snapshot(next)
		next = n
		for _, e := range evs {
			text := eventText(e)
			s.Log(worker.LogInfo, "event: "+text)
			if e.Type == corev1.EventTypeWarning {
				rep.Warning(text)
			} else {
				rep.Info(text)
			}
		}
		if gone {
			return next, fmt.Errorf("%w: pod %s was deleted while starting", ErrPodGone, h.name)
		}
		if pod != nil {
			ready, why, err := startState(pod)
			if err != nil {
				return next, fmt.Errorf("pod %s: %w", h.name, err)
			}
			if ready {
				return next, nil
			}
			if why != "" && why != pending {
				pending = why
				rep.Warning("pending: " + why)
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			if pending != "" {
				pending = " (" + pending + ")"
			}
			return next, fmt.Errorf("%w: pod %s was not running after %s%s", ErrStartTimeout, h.name, timeout, pending)
		case <-ctx.Done():
			return next, context.Cause(ctx)
		}
	}
}

// follow starts the log pump and the monitor of a running session; the
// monitor logs the pod's events from index seen on.
func (w *Worker) follow(s *worker.Session, h *podHandle, seen int) {
	h.mu.Lock()
	h.pumped, h.watched = make(chan struct{}), make(chan struct{})
	h.mu.Unlock()
	w.bg.Add(2)
	go w.pump(s, h)
	go w.monitor(s, h, seen)
}

// pump streams the pod's log into the session's log store once, following
// it. When the stream breaks while the pod still runs it reconnects from
// the last timestamp taken, skipping what it already has. It ends when the
// pod ended and its log was read to the end, or when the session stops.
func (w *Worker) pump(s *worker.Session, h *podHandle) {
	defer w.bg.Done()
	defer close(h.pumped)
	ctx := s.Context()
	var cur logCursor
	backoff := 200 * time.Millisecond
	for {
		// Whether the pod had ended before this stream opened: its log is
		// then complete once the stream reaches its end.
		ended := h.terminal()
		cur.resume()
		rc, err := w.opts.LogSource.Stream(ctx, w.opts.Namespace, h.name, ContainerName, cur.since())
		if err == nil {
			err = readLines(ctx, rc, &cur, s)
			_ = rc.Close()
			if err == nil {
				backoff = 200 * time.Millisecond
			}
		}
		if ctx.Err() != nil || ended {
			return
		}
		if err != nil {
			w.opts.Logger.Debug("pod log stream broke; reconnecting", "pod", h.name, "err", err)
		}
		// The stream ended: the container ended (the next round reads the
		// rest and stops) or the connection dropped. A timer paces the
		// reconnects; a change of the pod wakes it early.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-h.wait():
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, 10*time.Second)
	}
}

// monitor ends a running session when its pod ends by itself (completed,
// or failed with the reason) or is deleted behind the worker's back, and
// logs the pod's later events.
func (w *Worker) monitor(s *worker.Session, h *podHandle, next int) {
	defer w.bg.Done()
	defer close(h.watched)
	ctx := s.Context()
	for {
		changed := h.wait()
		pod, gone, evs, n := h.snapshot(next)
		next = n
		for _, e := range evs {
			s.Log(worker.LogInfo, "event: "+eventText(e))
		}
		switch {
		case gone:
			_ = s.Fail(fmt.Errorf("%w: pod %s was deleted outside the worker", ErrPodGone, h.name))
			return
		case pod != nil && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed):
			// Let the pump read the log to its end first, so whoever sees
			// the final status also sees the whole log.
			t := time.NewTimer(30 * time.Second)
			select {
			case <-h.pumped:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			if code, ok := exitCode(pod); ok {
				s.SetExitCode(code)
			}
			if pod.Status.Phase == corev1.PodSucceeded {
				_ = s.SetStatus(worker.StatusCompleted)
			} else {
				_ = s.Fail(fmt.Errorf("pod %s: %w: %s", h.name, ErrPodFailed, failureReason(pod)))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// Stop deletes the session's pod and waits until it is gone. Unknown ids
// are not an error.
func (w *Worker) Stop(ctx context.Context, sessionID string) error {
	return w.Sessions.StopSession(ctx, sessionID, w.cleanup)
}

func (w *Worker) cleanup(ctx context.Context, s *worker.Session) error {
	h, ok := worker.HandleOf[*podHandle](s)
	if !ok {
		return nil
	}
	if err := w.deletePod(ctx, h); err != nil {
		return err
	}
	h.mu.Lock()
	pumped, watched := h.pumped, h.watched
	h.mu.Unlock()
	for _, ch := range []chan struct{}{pumped, watched} {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.forget(h)
	return nil
}

// deletePod deletes the pod with the worker's grace period and waits until
// the informer saw it go.
func (w *Worker) deletePod(ctx context.Context, h *podHandle) error {
	grace := int64(w.opts.StopGrace / time.Second)
	opts := metav1.DeleteOptions{GracePeriodSeconds: &grace}
	h.mu.Lock()
	if h.uid != "" {
		uid := h.uid
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	known := h.created
	h.mu.Unlock()
	if !known {
		return nil // never created
	}
	// The informer reaches the handle only through w.pods; a concurrent
	// stop may have forgotten it already.
	w.mu.Lock()
	if _, ok := w.pods[h.name]; !ok {
		w.pods[h.name] = h
	}
	w.mu.Unlock()
	err := w.opts.Client.DeletePod(ctx, w.opts.Namespace, h.name, opts)
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Gone, or a newer pod of that name that is not ours. Say so on
		// the handle: another deletePod of the same pod (a stop during an
		// aborting start) may be waiting for it, and the informer's
		// deletion may reach a handle already forgotten.
		h.setGone("")
		return nil
	case err != nil:
		return fmt.Errorf("deleting pod %s: %w", h.name, err)
	}
	for {
		changed := h.wait()
		if _, gone, _, _ := h.snapshot(1 << 62); gone {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("pod %s was deleted but is still terminating: %w", h.name, ctx.Err())
		}
	}
}

func (w *Worker) forget(h *podHandle) {
	w.mu.Lock()
	if w.pods[h.name] == h {
		delete(w.pods, h.name)
	}
	w.mu.Unlock()
}

// Adopt finds the pods this worker (by WorkerID) left running before it
// restarted and makes them sessions again: running and ended pods become
// sessions (their logs read again from the start, ended ones completed or
// failed), pods still pending are deleted (the start that created them is
// gone, and the server has given up on it). It returns how many sessions
// it adopted.
func (w *Worker) Adopt(ctx context.Context) (int, error) {
	if err := w.ensureInformers(ctx); err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, obj := range w.podInf.GetStore().List() {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Labels[LabelWorker] != w.opts.WorkerID || p.DeletionTimestamp != nil {
			continue
		}
		id := p.Annotations[AnnotationSessionID]
		if id == "" || PodName(id) != p.Name {
			continue
		}
		if _, err := w.Sessions.Lookup(id); err == nil {
			continue
		}
		h := newPodHandle(p.Name)
		h.created, h.uid, h.pod = true, p.UID, p
		created, _ := time.Parse(time.RFC3339Nano, p.Annotations[AnnotationCreatedAt])
		s, err := w.Sessions.Create(worker.SessionInfo{
			SessionID: id, AppID: p.Annotations[AnnotationAppID], Workspace: p.Annotations[AnnotationWorkspace],
			ClientID: p.Annotations[AnnotationClientID], AppType: TypeK8sPod, CreatedAt: created,
			Metadata: map[string]any{"type": TypeK8sPod, "image": p.Annotations[AnnotationImage]},
		}, h)
		if err != nil {
			errs = append(errs, fmt.Errorf("adopt pod %s: %w", p.Name, err))
			continue
		}
		w.mu.Lock()
		w.pods[p.Name] = h
		w.mu.Unlock()
		if p.Status.Phase == corev1.PodPending || p.Status.Phase == "" {
			if err := w.deletePod(ctx, h); err != nil {
				errs = append(errs, err)
			}
			w.forget(h)
			_ = w.Sessions.Discard(s, errors.New("pending pod left by a previous run of the worker; deleted"))
			continue
		}
		if err := s.SetStatus(worker.StatusRunning); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Log(worker.LogInfo, fmt.Sprintf("pod %s adopted after a worker restart", p.Name))
		w.follow(s, h, 0)
		n++
		w.opts.Logger.Info("adopted a session from its pod", "session", id, "pod", p.Name, "phase", p.Status.Phase)
	}
	return n, errors.Join(errs...)
}

// AdoptAsync runs Adopt in the background, bounded by timeout and ended by
// Shutdown; a failure (cluster unreachable, no permission to list pods) is
// logged. For hosts that must not wait for the cluster at start-up.
func (w *Worker) AdoptAsync(timeout time.Duration) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.inflight.Done()
		ctx, cancel := context.WithTimeout(w.ctx, timeout)
		defer cancel()
		n, err := w.Adopt(ctx)
		if err != nil {
			w.opts.Logger.Warn("re-adopting the worker's pods failed", "namespace", w.opts.Namespace, "err", err)
			return
		}
		if n > 0 {
			w.opts.Logger.Info("re-adopted sessions from their pods", "sessions", n)
		}
	}()
}
