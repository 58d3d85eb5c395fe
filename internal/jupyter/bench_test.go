package jupyter

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmarks compare this client with jupyter_client in Python doing
// the same work against the same kind of kernel (Debian's ipykernel), in
// the same run:
//
//	go test -run '^$' -bench 'Execute$' -benchtime 1000x ./internal/jupyter
//	go test -run '^$' -bench 'StartToReady$' -benchtime 10x ./internal/jupyter
//
// docs/benchmarks.md, "Jupyter kernel", has the numbers.

func BenchmarkExecute(b *testing.B) {
	k, _ := startKernel(b, Options{})
	ctx := context.Background()
	for range 20 { // warm up, as the Python side does
		if _, err := k.Execute(ctx, "1+1", nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := k.Execute(ctx, "1+1", nil)
		if err != nil || r.Status != "ok" {
			b.Fatal(r, err)
		}
	}
}

func BenchmarkStartToReady(b *testing.B) {
	needKernel(b)
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for b.Loop() {
		k, err := Start(ctx, Options{Python: python, ConnDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := k.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// runPythonBench runs testdata/bench_jupyter_client.py once for b.N
// operations and reports the mean it measured (around the operations only,
// as the Go benchmarks do) as this benchmark's ns/op.
func runPythonBench(b *testing.B, mode string) {
	needKernel(b)
	out, err := exec.Command(python, "testdata/bench_jupyter_client.py", mode, strconv.Itoa(b.N)).Output()
	if err != nil {
		b.Fatalf("%s: %v", mode, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		b.Fatalf("unexpected output %q", out)
	}
	mean, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(mean*1e9, "ns/op")
}

func BenchmarkJupyterClientExecute(b *testing.B) { runPythonBench(b, "execute") }

func BenchmarkJupyterClientStartToReady(b *testing.B) { runPythonBench(b, "start") }
