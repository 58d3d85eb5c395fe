package bench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hypha-go/hypha/server"
)

func startServer(tb testing.TB) *server.Server {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Config{JWTSecret: "bench", RootToken: "bench-root-token", Logger: log, MsgRateLimit: 1e9, MsgBurstLimit: 1e9})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// TestRPCSmoke runs the benchmark briefly so that CI exercises it.
func TestRPCSmoke(t *testing.T) {
	srv := startServer(t)
	r, err := RPC(context.Background(), Options{ServerURL: srv.URL(), Token: "bench-root-token",
		Duration: 300 * time.Millisecond, Concurrency: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if r.Calls == 0 || r.Errors != 0 {
		t.Fatalf("bench: %v (first error %v)", r, r.FirstErr)
	}
}

// TestRPCClientsAndServerCPU: several caller connections share the
// callers, and the server process's CPU time is read (here the server runs
// in this process, so its pid is ours and the time cannot be zero).
func TestRPCClientsAndServerCPU(t *testing.T) {
	srv := startServer(t)
	r, err := RPC(context.Background(), Options{ServerURL: srv.URL(), Token: "bench-root-token",
		Duration: 500 * time.Millisecond, Concurrency: 6, Clients: 3, ServerPID: os.Getpid(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if r.Calls == 0 || r.Errors != 0 || r.ServerCPUPerCall <= 0 {
		t.Fatalf("bench: %v (first error %v)", r, r.FirstErr)
	}
	if _, err := ProcCPU(1 << 30); err == nil {
		t.Fatal("ProcCPU of a process that does not exist gave no error")
	}
}

func BenchmarkEchoConcurrency16(b *testing.B) {
	srv := startServer(b)
	b.ResetTimer()
	r, err := RPC(context.Background(), Options{ServerURL: srv.URL(), Token: "bench-root-token",
		Duration: 5 * time.Second, Concurrency: 16, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.PerSec, "calls/s")
	b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
}
