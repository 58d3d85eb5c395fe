package k8s

// fakeCoreClient adapts client-go's FAKE clientset (no API server can run
// here) to CoreClient, the worker's narrow client. The production
// RESTClient is tested against an httptest API server in client_test.go.

import (
	"context"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
)

type fakeCoreClient struct{ cs *fake.Clientset }

var _ CoreClient = fakeCoreClient{}

// IsWatchListSemanticsUnSupported passes on what the fake clientset says
// (it cannot stream a list as watch events), so that the informers list
// first, as they did over the fake clientset itself.
func (f fakeCoreClient) IsWatchListSemanticsUnSupported() bool {
	return f.cs.IsWatchListSemanticsUnSupported()
}

func (f fakeCoreClient) CreatePod(ctx context.Context, ns string, pod *corev1.Pod) (*corev1.Pod, error) {
	return f.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
}

func (f fakeCoreClient) DeletePod(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error {
	return f.cs.CoreV1().Pods(ns).Delete(ctx, name, opts)
}

func (f fakeCoreClient) ListPods(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.PodList, error) {
	return f.cs.CoreV1().Pods(ns).List(ctx, opts)
}

func (f fakeCoreClient) WatchPods(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	return f.cs.CoreV1().Pods(ns).Watch(ctx, opts)
}

func (f fakeCoreClient) ListEvents(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.EventList, error) {
	return f.cs.CoreV1().Events(ns).List(ctx, opts)
}

func (f fakeCoreClient) WatchEvents(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	return f.cs.CoreV1().Events(ns).Watch(ctx, opts)
}

func (f fakeCoreClient) PodLogs(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return f.cs.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
}

// client is the worker's view of the fake cluster.
func (fc *fakeCluster) client() CoreClient { return fakeCoreClient{cs: fc.cs} }
