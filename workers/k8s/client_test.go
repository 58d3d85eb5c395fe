package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/hypha-go/hypha/internal/testserver"
)

// fakeAPIServer is a FAKE Kubernetes API server (no real one can run
// here): an httptest server answering the few core/v1 requests of the
// RESTClient test the way the API server does, in JSON, and recording what
// it was asked.
type fakeAPIServer struct {
	mu sync.Mutex
	// requests are "METHOD path?query" in order.
	requests []string
	created  *corev1.Pod
	deleted  *metav1.DeleteOptions
	// hold: watches stream the list as watch events ending in the
	// initial-events bookmark when asked to (sendInitialEvents, as the
	// informers' reflector does), and stay open until the client leaves.
	hold bool
}

const restNS = "ns1"

func (f *fakeAPIServer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	f.mu.Unlock()
	q := r.URL.Query()
	reply := func(code int, v any) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(code)
		_ = json.NewEncoder(rw).Encode(v)
	}
	status := func(code int, reason metav1.StatusReason, msg string) {
		reply(code, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg})
	}
	pods := "/api/v1/namespaces/" + restNS + "/pods"
	switch {
	case r.Method == http.MethodPost && r.URL.Path == pods:
		var p corev1.Pod
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			status(http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		if p.Name == "taken" {
			status(http.StatusConflict, metav1.StatusReasonAlreadyExists, `pods "taken" already exists`)
			return
		}
		f.mu.Lock()
		f.created = &p
		f.mu.Unlock()
		p.Kind, p.APIVersion = "Pod", "v1"
		p.UID, p.ResourceVersion, p.Status.Phase = "uid-1", "11", corev1.PodPending
		reply(http.StatusCreated, p)
	case r.Method == http.MethodGet && f.hold && q.Get("watch") == "true":
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusOK)
		if q.Get("sendInitialEvents") == "true" {
			kind := "Pod"
			if strings.HasSuffix(r.URL.Path, "/events") {
				kind = "Event"
			} else {
				_ = json.NewEncoder(rw).Encode(map[string]any{"type": "ADDED", "object": podFixture("p2", corev1.PodPending)})
			}
			_ = json.NewEncoder(rw).Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{
				"kind": kind, "apiVersion": "v1",
				"metadata": map[string]any{"resourceVersion": "12", "annotations": map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
			}})
		}
		rw.(http.Flusher).Flush()
		<-r.Context().Done()
	case r.Method == http.MethodGet && r.URL.Path == pods && q.Get("watch") == "true":
		rw.Header().Set("Content-Type", "application/json")
		p := podFixture("p1", corev1.PodRunning)
		_ = json.NewEncoder(rw).Encode(map[string]any{"type": "ADDED", "object": p})
		// The stream ends here: the client's result channel closes.
	case r.Method == http.MethodGet && r.URL.Path == pods:
		reply(http.StatusOK, corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: "12"},
			Items:    []corev1.Pod{*podFixture("p1", corev1.PodRunning), *podFixture("p2", corev1.PodPending)}})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/"+restNS+"/events":
		reply(http.StatusOK, corev1.EventList{TypeMeta: metav1.TypeMeta{Kind: "EventList", APIVersion: "v1"},
			Items: []corev1.Event{{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: restNS},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p1"}, Reason: "Scheduled", Count: 1}}})
	case r.Method == http.MethodDelete && r.URL.Path == pods+"/p1":
		var o metav1.DeleteOptions
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			status(http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		f.mu.Lock()
		f.deleted = &o
		f.mu.Unlock()
		reply(http.StatusOK, podFixture("p1", corev1.PodRunning))
	case r.Method == http.MethodDelete:
		status(http.StatusNotFound, metav1.StatusReasonNotFound, `pods "gone" not found`)
	case r.Method == http.MethodGet && r.URL.Path == pods+"/p1/log":
		rw.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(rw, "2026-01-02T03:04:05.000000001Z hello\n2026-01-02T03:04:06Z world\n")
	default:
		status(http.StatusNotFound, metav1.StatusReasonNotFound, "no route "+r.Method+" "+r.URL.Path)
	}
}

func podFixture(name string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: restNS, UID: types.UID("uid-" + name), ResourceVersion: "12",
			Labels: map[string]string{LabelWorker: "w1"}},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: ContainerName, Image: "busybox:1"}}},
		Status: corev1.PodStatus{Phase: phase}}
}

func (f *fakeAPIServer) asked(prefix string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			return r, true
		}
	}
	return "", false
}

func newRESTClientOn(t *testing.T) (*RESTClient, *fakeAPIServer, *rest.Config) {
	t.Helper()
	return newRESTClientOnServer(t, &fakeAPIServer{})
}

func newRESTClientOnServer(t *testing.T, f *fakeAPIServer) (*RESTClient, *fakeAPIServer, *rest.Config) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := &rest.Config{Host: srv.URL}
	c, err := NewRESTClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIPath != "" || cfg.GroupVersion != nil {
		t.Fatalf("NewRESTClient changed the caller's config: %+v", cfg)
	}
	return c, f, cfg
}

// TestRESTClient: the production CoreClient speaks the API server's REST
// protocol: paths under /api/v1/namespaces/<ns>, options as query
// parameters, JSON bodies decoded into core/v1 types, the API's errors
// kept (the worker tells "already exists" and "not found" apart), a watch
// stream decoded into events, and a log stream read as it comes.
func TestRESTClient(t *testing.T) {
	c, f, _ := newRESTClientOn(t)
	ctx := testserver.Ctx(t)

	in := podFixture("p1", "")
	in.TypeMeta, in.UID, in.ResourceVersion = metav1.TypeMeta{}, "", ""
	created, err := c.CreatePod(ctx, restNS, in)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Name != "p1" || created.UID != "uid-1" || created.Status.Phase != corev1.PodPending || created.Spec.Containers[0].Image != "busybox:1" {
		t.Fatalf("created pod decoded as %+v", created)
	}
	if f.created == nil || f.created.Labels[LabelWorker] != "w1" || f.created.Spec.Containers[0].Name != ContainerName {
		t.Fatalf("server received %+v", f.created)
	}
	taken := podFixture("taken", "")
	if _, err := c.CreatePod(ctx, restNS, taken); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create of an existing pod: %v, want AlreadyExists", err)
	}

	list, err := c.ListPods(ctx, restNS, metav1.ListOptions{LabelSelector: LabelWorker + "=w1"})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Items) != 2 || list.Items[1].Name != "p2" || list.ResourceVersion != "12" {
		t.Fatalf("list decoded as %+v", list)
	}
	if r, _ := f.asked("GET /api/v1/namespaces/" + restNS + "/pods?"); !strings.Contains(r, "labelSelector="+url.QueryEscape(LabelWorker+"=w1")) {
		t.Fatalf("list request %q has no label selector", r)
	}
	evs, err := c.ListEvents(ctx, restNS, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod"})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].Reason != "Scheduled" {
		t.Fatalf("events: %+v, %v", evs, err)
	}
	if r, _ := f.asked("GET /api/v1/namespaces/" + restNS + "/events?"); !strings.Contains(r, "fieldSelector=involvedObject.kind%3DPod") {
		t.Fatalf("event list request %q has no field selector", r)
	}

	wi, err := c.WatchPods(ctx, restNS, metav1.ListOptions{LabelSelector: LabelWorker + "=w1", ResourceVersion: "12"})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	var got []watch.Event
	timeout := time.After(waitLong)
	for done := false; !done; {
		select {
		case ev, ok := <-wi.ResultChan():
			if !ok {
				done = true
				break
			}
			got = append(got, ev)
		case <-timeout:
			wi.Stop()
			t.Fatal("the watch stream did not end")
		}
	}
	wi.Stop()
	if len(got) != 1 || got[0].Type != watch.Added {
		t.Fatalf("watch events %+v, want one ADDED", got)
	}
	if p, ok := got[0].Object.(*corev1.Pod); !ok || p.Name != "p1" || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("watch event object %#v", got[0].Object)
	}
	if r, _ := f.asked("GET /api/v1/namespaces/" + restNS + "/pods?"); r == "" {
		t.Fatal("no watch request")
	}
	f.mu.Lock()
	watchReq := f.requests[len(f.requests)-1]
	f.mu.Unlock()
	if !strings.Contains(watchReq, "watch=true") || !strings.Contains(watchReq, "resourceVersion=12") {
		t.Fatalf("watch request %q", watchReq)
	}

	grace := int64(7)
	uid := types.UID("uid-p1")
	if err := c.DeletePod(ctx, restNS, "p1", metav1.DeleteOptions{GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if f.deleted == nil || f.deleted.GracePeriodSeconds == nil || *f.deleted.GracePeriodSeconds != 7 ||
		f.deleted.Preconditions == nil || *f.deleted.Preconditions.UID != uid {
		t.Fatalf("server received delete options %+v", f.deleted)
	}
	if err := c.DeletePod(ctx, restNS, "gone", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("delete of a missing pod: %v, want NotFound", err)
	}

	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rc, err := ClientLogSource{Client: c}.Stream(ctx, restNS, "p1", ContainerName, since)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	b, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || !strings.HasSuffix(string(b), " world\n") {
		t.Fatalf("log body %q, %v", b, err)
	}
	r, _ := f.asked("GET /api/v1/namespaces/" + restNS + "/pods/p1/log?")
	lq, _ := url.ParseQuery(r[strings.Index(r, "?")+1:])
	if lq.Get("container") != ContainerName || lq.Get("follow") != "true" || lq.Get("timestamps") != "true" || lq.Get("sinceTime") != "2026-01-02T03:04:05Z" {
		t.Fatalf("log request %q", r)
	}
}

// TestRESTClientExecURL: the exec URL names the pod's exec subresource,
// the container and the command word by word, with stdout and stderr and
// no stdin.
func TestRESTClientExecURL(t *testing.T) {
	c, _, cfg := newRESTClientOn(t)
	u := c.ExecURL(restNS, "p1", &corev1.PodExecOptions{Container: ContainerName, Command: []string{"sh", "-c", "echo a b"}, Stdout: true, Stderr: true})
	if !strings.HasPrefix(u.String(), cfg.Host+"/api/v1/namespaces/"+restNS+"/pods/p1/exec?") {
		t.Fatalf("exec URL %s", u)
	}
	q := u.Query()
	if q.Get("container") != ContainerName || !slices.Equal(q["command"], []string{"sh", "-c", "echo a b"}) ||
		q.Get("stdout") != "true" || q.Get("stderr") != "true" || q.Has("stdin") || q.Has("tty") {
		t.Fatalf("exec URL query %v", q)
	}
}

// TestNewForConfigUsesRESTClient: a worker built for a cluster
// configuration talks through the RESTClient and execs through it.
func TestNewForConfigUsesRESTClient(t *testing.T) {
	_, _, cfg := newRESTClientOn(t)
	w, err := NewForConfig(ClusterConfig{REST: cfg, Source: "test"}, Options{Namespace: restNS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	o := w.Options()
	if _, ok := o.Client.(*RESTClient); !ok {
		t.Fatalf("client %T", o.Client)
	}
	if ex, ok := o.Executor.(RemoteExecutor); !ok || ex.Client == nil || ex.Config != cfg {
		t.Fatalf("executor %#v", o.Executor)
	}
	if ls, ok := o.LogSource.(ClientLogSource); !ok || ls.Client != o.Client {
		t.Fatalf("log source %#v", o.LogSource)
	}
}

// TestRESTClientInformers: the worker's pod and event informers run over
// the RESTClient: they list and watch only the worker's pods (by label)
// and pod events (by field), sync (the server streams the initial list as
// watch events, as API servers do for client-go's reflector), hold the
// listed pod, and stop at Shutdown. The pod carries no session
// annotation, so Adopt adopts none.
func TestRESTClientInformers(t *testing.T) {
	c, f, _ := newRESTClientOnServer(t, &fakeAPIServer{hold: true})
	w, err := New(Options{Client: c, Namespace: restNS, WorkerID: "w1", Logger: testserver.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Shutdown(testserver.Ctx(t)); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	n, err := w.Adopt(testserver.Ctx(t))
	if err != nil || n != 0 {
		t.Fatalf("adopt: %d, %v", n, err)
	}
	if objs := w.podInf.GetStore().List(); len(objs) != 1 || objs[0].(*corev1.Pod).Name != "p2" {
		t.Fatalf("pod informer holds %v, want pod p2", objs)
	}
	f.mu.Lock()
	reqs := slices.Clone(f.requests)
	f.mu.Unlock()
	t.Logf("requests: %q", reqs)
	var podReqs, evReqs int
	for _, r := range reqs {
		switch {
		case strings.HasPrefix(r, "GET /api/v1/namespaces/"+restNS+"/pods?"):
			podReqs++
			if !strings.Contains(r, "labelSelector="+url.QueryEscape(LabelWorker+"=w1")) {
				t.Errorf("pod request without the worker's label selector: %s", r)
			}
		case strings.HasPrefix(r, "GET /api/v1/namespaces/"+restNS+"/events?"):
			evReqs++
			if !strings.Contains(r, "fieldSelector=involvedObject.kind%3DPod") {
				t.Errorf("event request without the field selector: %s", r)
			}
		default:
			t.Errorf("unexpected request %s", r)
		}
	}
	if podReqs == 0 || evReqs == 0 {
		t.Fatalf("requests %q: want pods and events listed or watched", reqs)
	}
}
