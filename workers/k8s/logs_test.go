package k8s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

// TestLogCursor: a resumed stream (sinceTime in whole seconds) repeats
// lines; the cursor takes each line once, including lines that share a
// timestamp.
func TestLogCursor(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ts := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	var c logCursor
	var took []int
	first := []int{100, 200, 200, 300}
	for _, ms := range first {
		if c.take(ts(ms)) {
			took = append(took, ms)
		}
	}
	c.resume()
	// The second stream starts at the second: it repeats all four lines,
	// then a new line with the same timestamp as the last and a later one.
	for _, ms := range []int{100, 200, 200, 300, 300, 400} {
		if c.take(ts(ms)) {
			took = append(took, ms)
		}
	}
	if fmt.Sprint(took) != "[100 200 200 300 300 400]" {
		t.Fatalf("took %v", took)
	}
	if !c.take(time.Time{}) {
		t.Fatal("a line without timestamp was dropped")
	}
}

// TestReadLinesBounded: a line longer than maxLogLine is cut with a note;
// lines keep their order; the log store's limits bound what stays.
func TestReadLinesBounded(t *testing.T) {
	reg := worker.NewRegistry(worker.RegistryOptions{Logs: worker.LogLimits{MaxEntries: 100, MaxBytes: 1 << 20, DropWhenBehind: true}})
	s, err := reg.Create(worker.SessionInfo{SessionID: "ws/x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Remove("ws/x")
	var b strings.Builder
	stamp := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	line := func(i int, text string) {
		fmt.Fprintf(&b, "%s %s\n", stamp.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano), text)
	}
	line(0, "short")
	line(1, strings.Repeat("y", 200<<10))
	for i := 2; i < 1000; i++ {
		line(i, fmt.Sprintf("n%d", i))
	}
	b.WriteString("no newline at the end")
	var c logCursor
	if err := readLines(context.Background(), strings.NewReader(b.String()), &c, s); err != nil {
		t.Fatal(err)
	}
	st := s.Logs().Stats()
	if st.Entries != 100 || st.Appended != 1001 {
		t.Fatalf("stats = %+v", st)
	}
	page := s.Logs().Page(worker.LogQuery{Offset: -2})
	if len(page.Items) != 2 || page.Items[0].Content != "n999" || page.Items[1].Content != "no newline at the end" {
		t.Fatalf("last entries = %+v", page.Items)
	}
	// The long line, seen through a store that keeps it.
	reg2 := worker.NewRegistry(worker.RegistryOptions{})
	s2, _ := reg2.Create(worker.SessionInfo{SessionID: "ws/y"}, nil)
	defer reg2.Remove("ws/y")
	var c2 logCursor
	_ = readLines(context.Background(), strings.NewReader(b.String()), &c2, s2)
	long := s2.Logs().Page(worker.LogQuery{Offset: 1, Limit: 1}).Items[0].Content
	if len(long) > maxLogLine+100 || !strings.HasSuffix(long, "… [line cut]") {
		t.Fatalf("long line is %d bytes, ends %q", len(long), long[len(long)-20:])
	}
}

// TestClientLogSource: the production source asks the API for the
// container's log with timestamps, following, and reads what it returns
// (client-go's fake clientset answers "fake logs").
func TestClientLogSource(t *testing.T) {
	fc := newFakeCluster(t)
	rc, err := ClientLogSource{Client: fc.client()}.Stream(context.Background(), testNamespace, "p", ContainerName, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	if string(b) != "fake logs" {
		t.Fatalf("body = %q", b)
	}
}

// TestStopAndShutdownDuringStart: a stop or a shutdown while a pod is
// still pending aborts the start, and the pod is deleted.
func TestStopAndShutdownDuringStart(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, nil)
	cfg := config("p1", "test/pending:1", nil)
	done := make(chan error, 1)
	go func() { _, err := w.Start(testserver.Ctx(t), cfg); done <- err }()
	testserver.WaitFor(t, waitLong, "the pod", func() bool { return len(fc.pods(t)) == 1 })
	if err := w.Stop(testserver.Ctx(t), cfg.ID); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := <-done; err == nil {
		t.Fatal("start succeeded after a stop")
	}
	if n := len(fc.pods(t)); n != 0 {
		t.Fatalf("%d pods after stop during start", n)
	}

	cfg = config("p2", "test/pending:1", nil)
	go func() { _, err := w.Start(testserver.Ctx(t), cfg); done <- err }()
	testserver.WaitFor(t, waitLong, "the pod", func() bool { return len(fc.pods(t)) == 1 })
	if err := w.Shutdown(testserver.Ctx(t)); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-done; err == nil {
		t.Fatal("start succeeded after a shutdown")
	}
	if n := len(fc.pods(t)); n != 0 {
		t.Fatalf("%d pods after shutdown during start", n)
	}
	if _, err := w.Start(testserver.Ctx(t), config("p3", "test/lines:1", nil)); !errors.Is(err, worker.ErrWorkerNotAvailable) {
		t.Fatalf("start after shutdown: %v", err)
	}
}
