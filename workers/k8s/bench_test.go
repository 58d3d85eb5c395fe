package k8s

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkStartStop: one session's start (pod created, Running seen
// through the informer) and stop (pod deleted, deletion seen) against the
// FAKE cluster: the worker's own overhead, with no API server latency.
// Upstream polls every 2 s, so its start takes at least that on a cluster.
func BenchmarkStartStop(b *testing.B) {
	fc := newFakeCluster(b)
	w, err := New(Options{Client: fc.client(), Namespace: testNamespace, LogSource: fc.logs, Executor: fc.exec})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = w.Shutdown(context.Background()) }()
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		id, err := w.Start(ctx, config(fmt.Sprintf("b%d", i), "test/lines:1", nil))
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Stop(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
