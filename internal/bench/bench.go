// Package bench measures RPC round trips through a Hypha server.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
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
	// Clients is the number of caller connections (default 1); the
	// Concurrency callers are spread over them.
	Clients int
	// ServerPID, when set, is the server's process: its CPU time while
	// measuring is reported per call (Result.ServerCPUPerCall).
	ServerPID int
	// AnonymousCallers connects the callers without a token (each an
	// anonymous user of its own) and makes the echo service public: upstream
	// Hypha refuses a user's 200th connection, so many callers of one token
	// cannot be compared.
	AnonymousCallers bool
	Logger           *slog.Logger
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
	// ServerCPUPerCall is the server process's CPU time (user+system,
	// from /proc/<pid>/stat) per call, when Options.ServerPID is set.
	ServerCPUPerCall time.Duration
	// ServerReadsPerCall and ServerWritesPerCall are the server process's
	// read and write system calls per call (/proc/<pid>/io), with
	// Options.ServerPID: the batching that CPU per call depends on most.
	ServerReadsPerCall, ServerWritesPerCall float64
	FirstErr                                error
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r Result) String() string {
	return fmt.Sprintf("calls=%d errors=%d elapsed=%s calls/s=%.0f p50=%s p90=%s p99=%s cpu/call=%s server-cpu/call=%s",
		r.Calls, r.Errors, r.Elapsed.Round(time.Millisecond), r.PerSec, r.P50, r.P90, r.P99, r.CPUPerCall, r.ServerCPUPerCall)
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
	svcDef := rpc.Service{ID: "bench-echo", Functions: map[string]any{
		"echo": rpc.HandlerFunc(func(_ context.Context, c *rpc.Call) (any, error) { return c.Arg(0, "x"), nil }),
	}}
	svcID := prov.Info().ClientID + ":bench-echo"
	cfg.Workspace = prov.Info().Workspace
	if o.AnonymousCallers {
		svcDef.Config.Visibility = "public"
		svcID = prov.Info().Workspace + "/" + svcID
		cfg.Token, cfg.Workspace = "", ""
	}
	if _, err := prov.RegisterService(ctx, svcDef); err != nil {
		return Result{}, err
	}
	clients := max(o.Clients, 1)
	echos := make([]*rpc.RemoteFunc, 0, clients)
	for range clients {
		cfg.ClientID = "bench-caller-" + idgen.New()[:8]
		caller, err := rpc.Connect(ctx, cfg)
		if err != nil {
			return Result{}, fmt.Errorf("caller %d of %d: %w", len(echos)+1, clients, err)
		}
		defer caller.Close()
		svc, err := caller.GetService(ctx, svcID)
		if err != nil {
			return Result{}, err
		}
		echos = append(echos, svc.Func("echo"))
	}
	echo := echos[0]
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
	var srv0 time.Duration
	var io0 SyscallCounts
	if o.ServerPID > 0 {
		if srv0, err = ProcCPU(o.ServerPID); err != nil {
			return Result{}, err
		}
		io0, _ = ProcSyscalls(o.ServerPID) // zero where /proc/<pid>/io is not readable
	}
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		echo := echos[w%len(echos)]
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
	var srvCPU time.Duration
	var io1 SyscallCounts
	if o.ServerPID > 0 {
		srv1, err := ProcCPU(o.ServerPID)
		if err != nil {
			return Result{}, err
		}
		srvCPU = srv1 - srv0
		io1, _ = ProcSyscalls(o.ServerPID)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Result{Calls: calls.Load(), Errors: errs.Load(), Elapsed: elapsed}
	r.PerSec = float64(r.Calls) / elapsed.Seconds()
	if r.Calls > 0 {
		r.CPUPerCall = cpu / time.Duration(r.Calls)
		r.ServerCPUPerCall = srvCPU / time.Duration(r.Calls)
		if io0.Reads > 0 && io1.Reads > 0 {
			r.ServerReadsPerCall = float64(io1.Reads-io0.Reads) / float64(r.Calls)
			r.ServerWritesPerCall = float64(io1.Writes-io0.Writes) / float64(r.Calls)
		}
	}
	if fe, ok := firstErr.Load().(error); ok {
		r.FirstErr = fe
	}
	if n := len(all); n > 0 {
		r.P50, r.P90, r.P99 = all[n*50/100], all[n*90/100], all[min(n-1, n*99/100)]
	}
	return r, nil
}

// ProcCPU is the CPU time (user+system) process pid has used so far, from
// /proc/<pid>/stat (Linux), in clock ticks of 1/100 s (USER_HZ).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("server CPU time: /proc/%d/stat is not in the expected form", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state (field 3) … utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("server CPU time: /proc/%d/stat has %d fields after the name", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("server CPU time: /proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * (time.Second / 100), nil
}

// SyscallCounts are a process's read and write system calls so far.
type SyscallCounts struct{ Reads, Writes int64 }

// ProcSyscalls reads syscr and syscw from /proc/<pid>/io (Linux; readable
// for one's own processes).
func ProcSyscalls(pid int) (SyscallCounts, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return SyscallCounts{}, fmt.Errorf("server system calls: %w", err)
	}
	var sc SyscallCounts
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			sc.Reads = n
		case "syscw":
			sc.Writes = n
		}
	}
	return sc, nil
}
