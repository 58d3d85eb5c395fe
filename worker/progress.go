package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ProgressType is the kind of a progress message.
type ProgressType string

// The four standard progress types of the worker API.
const (
	ProgressInfo    ProgressType = "info"
	ProgressSuccess ProgressType = "success"
	ProgressWarning ProgressType = "warning"
	ProgressError   ProgressType = "error"
)

// Progress is one progress message, {"type", "message"} on the wire.
type Progress struct {
	Type    ProgressType
	Message string
}

// ToMap is the wire shape the server's progress callback expects.
func (p Progress) ToMap() map[string]any {
	return map[string]any{"type": string(p.Type), "message": p.Message}
}

// ProgressFunc delivers one progress message, typically by calling the
// remote progress_callback. It must honour ctx: the Reporter cancels it on
// its per-call timeout and on Close.
type ProgressFunc func(ctx context.Context, p Progress) error

// Reporter defaults.
const (
	DefaultProgressQueue   = 64
	DefaultProgressTimeout = 5 * time.Second
)

// ReporterOptions tunes a Reporter. Zero values mean the defaults.
type ReporterOptions struct {
	// QueueSize bounds the messages waiting for delivery. When it is full the
	// oldest waiting message is dropped (and counted): the newest progress is
	// the most useful one.
	QueueSize int
	// CallTimeout bounds one callback call.
	CallTimeout time.Duration
	// Logger receives delivery failures at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
}

// ReporterStats counts a Reporter's messages.
type ReporterStats struct {
	Delivered uint64
	// Dropped counts messages never delivered: evicted from a full queue,
	// reported after Close, or abandoned when Close ran out of time.
	Dropped uint64
	// Failed counts calls that returned an error, timed out or panicked.
	Failed uint64
}

// Reporter sends progress messages through a ProgressFunc without ever
// blocking or failing the worker: Report only queues, one goroutine delivers
// in order, each call has a timeout, and errors and panics of the callback
// are counted and logged, never returned. A nil Reporter, and one made with a
// nil func (no progress_callback was sent), accept and discard everything.
//
// Close it when the operation ends (usually `defer r.Close(ctx)` in Start);
// its goroutine exits then, so nothing leaks.
type Reporter struct {
	fn      ProgressFunc
	timeout time.Duration
	size    int
	logger  *slog.Logger

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: "queue is non-empty or closing"
	done   chan struct{} // closed when the goroutine has exited

	mu     sync.Mutex
	queue  []Progress
	closed bool

	delivered, dropped, failed atomic.Uint64
}

// NewReporter starts a Reporter delivering through fn.
func NewReporter(fn ProgressFunc, opts ReporterOptions) *Reporter {
	r := &Reporter{
		fn:      fn,
		timeout: opts.CallTimeout,
		size:    opts.QueueSize,
		logger:  opts.Logger,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if r.timeout <= 0 {
		r.timeout = DefaultProgressTimeout
	}
	if r.size <= 0 {
		r.size = DefaultProgressQueue
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if fn == nil {
		close(r.done)
		return r
	}
	go r.run()
	return r
}

// Report queues p for delivery and returns at once.
func (r *Reporter) Report(p Progress) {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	if len(r.queue) >= r.size {
		r.queue[0] = Progress{}
		r.queue = r.queue[1:]
		r.dropped.Add(1)
	}
	r.queue = append(r.queue, p)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Info reports an info message.
func (r *Reporter) Info(msg string) { r.Report(Progress{ProgressInfo, msg}) }

// Success reports a success message.
func (r *Reporter) Success(msg string) { r.Report(Progress{ProgressSuccess, msg}) }

// Warning reports a warning message.
func (r *Reporter) Warning(msg string) { r.Report(Progress{ProgressWarning, msg}) }

// Error reports an error message.
func (r *Reporter) Error(msg string) { r.Report(Progress{ProgressError, msg}) }

// Stats returns the counters so far.
func (r *Reporter) Stats() ReporterStats {
	if r == nil {
		return ReporterStats{}
	}
	return ReporterStats{Delivered: r.delivered.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// Close stops accepting messages and waits until the queued ones are
// delivered or ctx is done. In the latter case it cancels the call in flight,
// drops the rest, waits for the goroutine to exit (immediately, if the
// ProgressFunc honours its ctx) and returns ctx.Err(). Close is idempotent
// and safe on a nil Reporter.
func (r *Reporter) Close(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	first := !r.closed
	r.closed = true
	r.mu.Unlock()
	if first {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	defer r.cancel()
	select { // a finished drain wins over an expired ctx
	case <-r.done:
		return nil
	default:
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	r.cancel()
	<-r.done
	return ctx.Err()
}

func (r *Reporter) run() {
	defer close(r.done)
	for {
		p, ok, closing := r.next()
		if ok {
			r.deliver(p)
			continue
		}
		if closing {
			return
		}
		<-r.wake
	}
}

// next pops the oldest message. After Close gives up (ctx cancelled) it
// drops whatever is left, so the goroutine exits promptly.
func (r *Reporter) next() (p Progress, ok, closing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil && len(r.queue) > 0 {
		r.dropped.Add(uint64(len(r.queue)))
		r.queue = nil
	}
	if len(r.queue) == 0 {
		return Progress{}, false, r.closed
	}
	p = r.queue[0]
	r.queue[0] = Progress{}
	r.queue = r.queue[1:]
	return p, true, r.closed
}

func (r *Reporter) deliver(p Progress) {
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	err := r.call(ctx, p)
	if err == nil {
		r.delivered.Add(1)
		return
	}
	r.failed.Add(1)
	r.logger.Debug("worker: progress callback failed", "type", p.Type, "error", err)
}

// call isolates the worker from a panicking callback.
func (r *Reporter) call(ctx context.Context, p Progress) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("progress callback panicked: %v", v)
		}
	}()
	return r.fn(ctx, p)
}
