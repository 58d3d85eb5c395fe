package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is a ProgressFunc that records what it got.
type recorder struct {
	mu  sync.Mutex
	got []Progress
}

func (r *recorder) fn(ctx context.Context, p Progress) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, p)
	return nil
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for _, p := range r.got {
		out = append(out, string(p.Type)+":"+p.Message)
	}
	return out
}

func TestReporterDeliversInOrder(t *testing.T) {
	var rec recorder
	r := NewReporter(rec.fn, ReporterOptions{})
	r.Info("starting")
	r.Warning("no config file")
	r.Success("ready")
	r.Error("oops")
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"info:starting", "warning:no config file", "success:ready", "error:oops"}
	if d := cmp.Diff(want, rec.messages()); d != "" {
		t.Errorf("delivered (-want +got):\n%s", d)
	}
	if st := r.Stats(); st != (ReporterStats{Delivered: 4}) {
		t.Errorf("stats = %+v", st)
	}
	if d := cmp.Diff(map[string]any{"type": "info", "message": "m"}, (Progress{ProgressInfo, "m"}).ToMap()); d != "" {
		t.Error(d)
	}
}

func TestReporterWithoutCallback(t *testing.T) {
	var nilReporter *Reporter
	for _, r := range []*Reporter{nilReporter, NewReporter(nil, ReporterOptions{})} {
		r.Info("ignored")
		r.Report(Progress{ProgressError, "ignored"})
		if err := r.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if st := r.Stats(); st != (ReporterStats{}) {
			t.Errorf("stats = %+v", st)
		}
	}
}

func TestReporterSlowCallbackNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var rec recorder
	slow := func(ctx context.Context, p Progress) error {
		if p.Message == "first" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return rec.fn(ctx, p)
	}
	r := NewReporter(slow, ReporterOptions{QueueSize: 3, CallTimeout: time.Minute})
	r.Info("first")
	// wait until "first" is in flight, so the queue holds only what follows
	for deadline := time.Now().Add(time.Second); ; {
		r.mu.Lock()
		n := len(r.queue)
		r.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first message never picked up")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
		r.Info(m)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("Report blocked for %v behind a slow callback", el)
	}
	close(release)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// queue of 3: m1 and m2 were dropped as the oldest
	if d := cmp.Diff([]string{"info:first", "info:m3", "info:m4", "info:m5"}, rec.messages()); d != "" {
		t.Errorf("delivered (-want +got):\n%s", d)
	}
	if st := r.Stats(); st.Dropped != 2 || st.Delivered != 4 {
		t.Errorf("stats = %+v", st)
	}
}

func TestReporterFailingCallbacks(t *testing.T) {
	calls := 0
	fn := func(ctx context.Context, p Progress) error {
		calls++
		switch p.Message {
		case "err":
			return errors.New("remote gone")
		case "panic":
			panic("callback bug")
		case "hang":
			<-ctx.Done() // honours the per-call timeout
			return ctx.Err()
		}
		return nil
	}
	r := NewReporter(fn, ReporterOptions{CallTimeout: 20 * time.Millisecond})
	for _, m := range []string{"err", "panic", "hang", "ok"} {
		r.Info(m)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st != (ReporterStats{Delivered: 1, Failed: 3}) || calls != 4 {
		t.Errorf("stats = %+v, calls %d", st, calls)
	}
}

func TestReporterCloseTimeout(t *testing.T) {
	started := make(chan struct{})
	fn := func(ctx context.Context, p Progress) error {
		if p.Message == "stuck" {
			close(started)
		}
		<-ctx.Done()
		return ctx.Err()
	}
	r := NewReporter(fn, ReporterOptions{CallTimeout: time.Hour})
	r.Info("stuck")
	r.Info("queued1")
	r.Info("queued2")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close err = %v", err)
	}
	if el := time.Since(begin); el > time.Second {
		t.Errorf("Close took %v", el)
	}
	st := r.Stats()
	if st.Failed != 1 || st.Dropped != 2 {
		t.Errorf("stats = %+v", st)
	}
	r.Info("after close")
	if r.Stats().Dropped != 3 {
		t.Error("a report after Close must count as dropped")
	}
	if err := r.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// goleak in TestMain proves the goroutine is gone.
}

func TestReporterConcurrentReports(t *testing.T) {
	var rec recorder
	r := NewReporter(rec.fn, ReporterOptions{QueueSize: 1000})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 50 {
				r.Info("x")
			}
		})
	}
	wg.Wait()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Delivered+st.Dropped != 500 || len(rec.messages()) != int(st.Delivered) {
		t.Errorf("stats = %+v, recorded %d", st, len(rec.messages()))
	}
}
