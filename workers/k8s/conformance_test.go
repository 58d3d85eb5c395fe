package k8s

import (
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/workertest"
)

// The worker conformance suite (worker/workertest) through the real adapter
// and server, against the FAKE cluster of fakecluster_test.go (client-go's
// fake clientset and a fake kubelet; no cluster runs here): test/lines
// prints "line 1".."line 30" and runs, test/complete and test/fail end by
// themselves.
func TestConformance(t *testing.T) {
	fc := newFakeCluster(t)
	app := func(kind string) workertest.App {
		return workertest.App{Type: TypeK8sPod, EntryPoint: kind, Manifest: map[string]any{"image": "test/" + kind + ":1"}}
	}
	complete, fail := app("complete"), app("fail")
	workertest.Run(t, workertest.Options{
		New: func(tb testing.TB) worker.Worker {
			w, err := New(Options{Client: fc.client(), Namespace: testNamespace, LogSource: fc.logs, Executor: fc.exec, Logger: testserver.Logger(tb)})
			if err != nil {
				tb.Fatal(err)
			}
			return w
		},
		Serve:    app("lines"),
		Complete: &complete,
		Fail:     &fail,
	})
	if n := len(fc.pods(t)); n != 0 {
		t.Fatalf("%d pods left after the suite", n)
	}
}
