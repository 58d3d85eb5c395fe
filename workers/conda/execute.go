package conda

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/jupyter"
	"github.com/hypha-go/hypha/worker"
)

// caller is what a remote function value offers (rpc.RemoteFunc), named
// here so that this package need not import the rpc client.
type caller interface {
	Call(ctx context.Context, args ...any) (any, error)
}

// Execute runs code in a running session's kernel and returns upstream's
// result: {"status": "ok"|"error", "outputs": [...], "error": {ename,
// evalue, traceback}} (error only when there is one). config.timeout
// (seconds; default Options.ExecuteTimeout) interrupts the kernel and
// returns a TimeoutError result; the kernel's state persists between
// executes. output_callback (a keyword argument) receives each output as
// it happens, in upstream's output shape plus "msg_type" and "content",
// the kernel message's, as upstream's callback received. A dead kernel is
// an error wrapping ErrKernelDead, and the session is then failed.
func (w *Worker) Execute(ctx context.Context, req worker.ExecuteRequest) (any, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: the conda worker is shutting down", worker.ErrWorkerNotAvailable)
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	defer w.inflight.Done()

	s, err := w.Sessions.LookupFor(ctx, req.SessionID)
	if err != nil {
		return nil, err
	}
	h, ok := worker.HandleOf[*kernelSession](s)
	if !ok {
		return nil, fmt.Errorf("%w: session %s has no kernel", worker.ErrWorker, req.SessionID)
	}
	h.mu.Lock()
	k := h.kernel
	h.mu.Unlock()
	if st := s.Status(); st != worker.StatusRunning || k == nil {
		if st == worker.StatusFailed {
			return nil, fmt.Errorf("%w: session %s failed: %s", ErrKernelDead, s.ID(), s.Info().Error)
		}
		return nil, fmt.Errorf("%w: session %s is not running (status %s)", worker.ErrWorker, s.ID(), st)
	}

	rep := worker.NewReporter(req.ProgressFunc, worker.ReporterOptions{Logger: w.opts.Logger})
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = rep.Close(cctx)
	}()
	rep.Info("Executing code in Jupyter kernel...")
	timeout := req.Timeout(w.opts.ExecuteTimeout)
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer context.AfterFunc(s.Context(), cancel)() // a stop ends it
	defer context.AfterFunc(w.ctx, cancel)()

	sink := newOutputSink(ctx, req.Extra["output_callback"], w.opts.Logger)
	res, err := k.Execute(ectx, req.Script, func(o jupyter.Output) {
		h.out.write(o)
		sink.send(o)
	})
	h.out.flush()
	sink.close()

	switch {
	case err == nil:
	case errors.Is(err, jupyter.ErrTimeout):
		msg := fmt.Sprintf("Code execution timed out after %s; the kernel was interrupted", timeout)
		s.Log(worker.LogError, msg)
		rep.Error(msg)
		m := res.ToMap()
		m["status"] = "error"
		m["error"] = map[string]any{"ename": "TimeoutError", "evalue": msg, "traceback": []any{msg}}
		return m, nil
	case errors.Is(err, jupyter.ErrKernelDead):
		e := fmt.Errorf("%w: session %s: %v", ErrKernelDead, s.ID(), err)
		_ = s.Fail(e)
		s.Log(worker.LogError, e.Error())
		rep.Error(e.Error())
		return nil, e
	default:
		if s.Context().Err() != nil {
			err = fmt.Errorf("session %s was stopped during the execution: %w", s.ID(), err)
		}
		rep.Error(err.Error())
		return nil, err
	}
	status := "success"
	if res.Status != "ok" {
		status = "error"
		rep.Error("Code execution failed")
	} else {
		rep.Success("Code executed successfully")
	}
	s.Log(worker.LogInfo, "code executed ("+strconv.Itoa(len(req.Script))+" bytes) - status: "+status)
	return res.ToMap(), nil
}

// outputSink hands outputs to the caller's output_callback in order, from
// one goroutine, so that a slow callback never stalls the kernel's
// messages: beyond a bounded queue, outputs are dropped (and counted).
type outputSink struct {
	fn      func(context.Context, map[string]any) error
	ctx     context.Context
	ch      chan map[string]any
	wg      sync.WaitGroup
	dropped int
	log     interface{ Warn(string, ...any) }
}

const outputQueue = 1024

func newOutputSink(ctx context.Context, cb any, log interface{ Warn(string, ...any) }) *outputSink {
	var fn func(context.Context, map[string]any) error
	switch f := cb.(type) {
	case func(context.Context, map[string]any) error:
		fn = f
	case caller:
		if f != nil {
			fn = func(ctx context.Context, m map[string]any) error {
				_, err := f.Call(ctx, m)
				return err
			}
		}
	}
	s := &outputSink{fn: fn, ctx: context.WithoutCancel(ctx), log: log}
	if fn == nil {
		return s
	}
	s.ch = make(chan map[string]any, outputQueue)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		failed := false
		for m := range s.ch {
			if failed {
				continue // a callback that failed once is not called again
			}
			cctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			if err := s.fn(cctx, m); err != nil {
				failed = true
				s.log.Warn("output_callback failed; no more outputs are sent to it", "err", err)
			}
			cancel()
		}
	}()
	return s
}

func (s *outputSink) send(o jupyter.Output) {
	if s.ch == nil {
		return
	}
	m := o.ToMap()
	if o.Msg != nil {
		raw := o.Msg.ToMap()
		m["msg_type"], m["content"] = raw["msg_type"], raw["content"]
	}
	select {
	case s.ch <- m:
	default:
		s.dropped++
	}
}

// close waits until the queued outputs were delivered.
func (s *outputSink) close() {
	if s.ch == nil {
		return
	}
	close(s.ch)
	s.wg.Wait()
	if s.dropped > 0 {
		s.log.Warn("output_callback was too slow: outputs not sent to it", "dropped", s.dropped)
	}
}
