package apps

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// progress delivers {type, message} updates to a caller's progress_callback
// in order, on its own goroutine. A failing or slow callback never affects
// the operation: each call is bounded, errors are only logged, and close
// waits at most progressFlush for the queue to drain.
type progress struct {
	fn     *rpc.RemoteFunc
	log    *slog.Logger
	ch     chan map[string]any
	done   chan struct{}
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
}

const (
	progressCallTimeout = 5 * time.Second
	progressFlush       = 3 * time.Second
	progressQueue       = 256
)

func (c *Controller) newProgress(fn *rpc.RemoteFunc) *progress {
	p := &progress{fn: fn, log: c.log}
	if fn == nil {
		return p
	}
	ctx, cancel := context.WithCancel(c.baseCtx)
	p.cancel = cancel
	p.ch = make(chan map[string]any, progressQueue)
	p.done = make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(p.done)
		for m := range p.ch {
			if ctx.Err() != nil {
				continue
			}
			cctx, ccancel := context.WithTimeout(ctx, progressCallTimeout)
			if _, err := fn.Call(cctx, m); err != nil {
				p.log.Debug("progress callback failed", "err", err)
			}
			ccancel()
		}
	}()
	return p
}

// send queues a message; it never blocks.
func (p *progress) send(typ, msg string) {
	p.emit(map[string]any{"type": typ, "message": msg})
}

func (p *progress) emit(m map[string]any) {
	if p == nil {
		return
	}
	p.log.Debug("progress", "type", m["type"], "message", m["message"])
	if p.ch == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	select {
	case p.ch <- m:
	default:
		p.log.Debug("progress queue full, message dropped")
	}
}

// fromWorker forwards a worker's progress message to the caller.
func (p *progress) fromWorker(wp worker.Progress) {
	p.emit(wp.ToMap())
}

// close flushes the queue (bounded) and stops the delivery goroutine.
func (p *progress) close() {
	if p == nil || p.ch == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.ch)
	p.mu.Unlock()
	t := time.NewTimer(progressFlush)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	p.cancel()
}
