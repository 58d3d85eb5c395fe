package k8s

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// CoreClient is everything the worker asks of the Kubernetes API server:
// pods and events of one namespace, and pod logs. It is this narrow on
// purpose: client-go's kubernetes.Interface (and its informer factory and
// scheme) pull in the types of every API group, and since the CLI's
// text/template keeps the linker from dropping unused methods, they made
// the hypha binary four times bigger. RESTClient is the production one;
// the tests adapt client-go's fake clientset to it.
type CoreClient interface {
	CreatePod(ctx context.Context, namespace string, pod *corev1.Pod) (*corev1.Pod, error)
	DeletePod(ctx context.Context, namespace, name string, opts metav1.DeleteOptions) error
	ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error)
	WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	ListEvents(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.EventList, error)
	WatchEvents(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	// PodLogs opens a container's log (pods/log) as a stream.
	PodLogs(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
}

// coreScheme knows core/v1 only (with the meta/v1 types registered into
// it: ListOptions, DeleteOptions, Status, WatchEvent), which is all the
// worker reads and writes.
var (
	coreScheme      = newCoreScheme()
	coreCodecs      = serializer.NewCodecFactory(coreScheme)
	coreParamsCodec = runtime.NewParameterCodec(coreScheme)
)

func newCoreScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("core/v1 scheme: %v", err)) // only on a broken k8s.io/api
	}
	return s
}

// RESTClient is the production CoreClient: client-go's REST client on the
// core API group (/api/v1), with JSON bodies.
type RESTClient struct {
	rc *rest.RESTClient
}

var _ CoreClient = (*RESTClient)(nil)

// NewRESTClient makes a RESTClient for cfg (which it does not change).
func NewRESTClient(cfg *rest.Config) (*RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = coreCodecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("Kubernetes REST client: %w", err)
	}
	return &RESTClient{rc: rc}, nil
}

// timeout is the list or watch's own server-side bound, applied on the
// client too (as client-go's typed clients do).
func timeout(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return 0
}

// CreatePod creates pod in namespace and returns it as the server stored it.
func (c *RESTClient) CreatePod(ctx context.Context, ns string, pod *corev1.Pod) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	err := c.rc.Post().Namespace(ns).Resource("pods").
		VersionedParams(&metav1.CreateOptions{}, coreParamsCodec).
		Body(pod).Do(ctx).Into(out)
	return out, err
}

// DeletePod deletes a pod; the error is the API's (apierrors.IsNotFound,
// IsConflict for a failed UID precondition).
func (c *RESTClient) DeletePod(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error {
	return c.rc.Delete().Namespace(ns).Resource("pods").Name(name).Body(&opts).Do(ctx).Error()
}

// ListPods lists the pods of a namespace.
func (c *RESTClient) ListPods(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	err := c.rc.Get().Namespace(ns).Resource("pods").
		VersionedParams(&opts, coreParamsCodec).Timeout(timeout(opts)).Do(ctx).Into(out)
	return out, err
}

// WatchPods watches the pods of a namespace.
func (c *RESTClient) WatchPods(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Namespace(ns).Resource("pods").
		VersionedParams(&opts, coreParamsCodec).Timeout(timeout(opts)).Watch(ctx)
}

// ListEvents lists the events of a namespace.
func (c *RESTClient) ListEvents(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.EventList, error) {
	out := &corev1.EventList{}
	err := c.rc.Get().Namespace(ns).Resource("events").
		VersionedParams(&opts, coreParamsCodec).Timeout(timeout(opts)).Do(ctx).Into(out)
	return out, err
}

// WatchEvents watches the events of a namespace.
func (c *RESTClient) WatchEvents(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Namespace(ns).Resource("events").
		VersionedParams(&opts, coreParamsCodec).Timeout(timeout(opts)).Watch(ctx)
}

// PodLogs opens a container's log stream.
func (c *RESTClient) PodLogs(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return c.rc.Get().Namespace(ns).Resource("pods").Name(pod).SubResource("log").
		VersionedParams(opts, coreParamsCodec).Stream(ctx)
}

// ExecURL is the pods/exec URL that runs opts in a pod, for
// remotecommand's executors.
func (c *RESTClient) ExecURL(ns, pod string, opts *corev1.PodExecOptions) *url.URL {
	return c.rc.Post().Namespace(ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(opts, coreParamsCodec).URL()
}
