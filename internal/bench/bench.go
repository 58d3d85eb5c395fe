// Package bench measures RPC round trips through a Hypha server.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
)

// Options of an RPC benchmark.
type Options struct {
	ServerURL   string
	Token       string
	Workspace   string
	Duration    time.Duration
	Concurrency int
	Payload     int // bytes per call argument
	Logger      *slog.Logger
}

// Result of an RPC benchmark.
type Result struct {
	Calls    int64
	Errors   int64
	Elapsed  time.Duration
	PerSec   float64
	P50, P90 time.Duration
	P99      time.Duration
	// CPUPerCall is this process's CPU time (user+system) per call while
	// measuring; with the embedded server it covers both clients and the
	// server, and is steadier than calls/s on a busy machine.
	CPUPerCall time.Duration
	FirstErr   error
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r Result) String() string {
	return fmt.Sprintf("calls=%d errors=%d elapsed=%s calls/s=%.0f p50=%s p90=%s p99=%s cpu/call=%s",
		r.Calls, r.Errors, r.Elapsed.Round(time.Millisecond), r.PerSec, r.P50, r.P90, r.P99, r.CPUPerCall)
}

// RPC registers an echo service on one connection and calls it from another
// with Concurrency callers for Duration.
func RPC(ctx context.Context, o Options) (Result, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	cfg := rpc.Config{ServerURL: o.ServerURL, Token: o.Token, Workspace: o.Workspace, Logger: o.Logger, NoReconnect: true}
	cfg.ClientID = "bench-provider-" + idgen.New()[:8]
	prov, err := rpc.Connect(ctx, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("provider: %w", err)
	}
	defer prov.Close()
	if _, err := prov.RegisterService(ctx, rpc.Service{ID: "bench-echo", Functions: map[string]any{
		"echo": rpc.HandlerFunc(func(_ context.Context, c *rpc.Call) (any, error) { return c.Arg(0, "x"), nil }),
	}}); err != nil {
		return Result{}, err
	}
	cfg.ClientID = "bench-caller-" + idgen.New()[:8]
	cfg.Workspace = prov.Info().Workspace
	caller, err := rpc.Connect(ctx, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("caller: %w", err)
	}
	defer caller.Close()
	svc, err := caller.GetService(ctx, prov.Info().ClientID+":bench-echo")
	if err != nil {
		return Result{}, err
	}
	echo := svc.Func("echo")
	payload := make([]byte, o.Payload)
	var arg any = "ping"
	if o.Payload > 0 {
		arg = payload
	}
	// warm up
	for range 100 {
		if _, err := echo.Call(ctx, arg); err != nil {
			return Result{}, fmt.Errorf("warm-up call: %w", err)
		}
	}
	var calls, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, o.Concurrency)
	deadline := time.Now().Add(o.Duration)
	start := time.Now()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				_, err := echo.Call(ctx, arg)
				d := time.Since(t0)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				calls.Add(1)
				local = append(local, d)
			}
			lat[w] = local
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Result{Calls: calls.Load(), Errors: errs.Load(), Elapsed: elapsed}
	r.PerSec = float64(r.Calls) / elapsed.Seconds()
	if r.Calls > 0 {
		r.CPUPerCall = cpu / time.Duration(r.Calls)
	}
	if fe, ok := firstErr.Load().(error); ok {
		r.FirstErr = fe
	}
	if n := len(all); n > 0 {
		r.P50, r.P90, r.P99 = all[n*50/100], all[n*90/100], all[min(n-1, n*99/100)]
	}
	return r, nil
}
