package conda

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/jupyter"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

// The benchmarks compare a conda session with a kernel started by hand and
// driven by jupyter_client in Python (what upstream's conda worker uses),
// in the same run, against the same kernel (Debian's ipykernel, in the
// cached environment the FAKE conda made over /usr/bin/python3):
//
//	go test -run '^$' -bench 'StartToReady|SessionStart' -benchtime 10x ./workers/conda
//	go test -run '^$' -bench 'Execute' -benchtime 500x ./workers/conda
//
// docs/benchmarks.md, "Conda worker sessions", has the numbers.

const benchEntry = "import os\nready = os.environ['HYPHA_APP_ID']\n"

// BenchmarkSessionStartCached: Worker.Start of a session whose environment
// is cached, until the kernel is ready and the entry point has run (the
// cache hit with its proof, the working directory and staged entry point,
// the session's uid and supervisor, the kernel, the entry point). Stop is
// not counted.
func BenchmarkSessionStartCached(b *testing.B) {
	w := newWorker(b, nil)
	fs := newFileServer(b, map[string]string{"main.py": benchEntry})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := func(i int) string {
		id, err := w.Start(ctx, config(fs, "ws-bench", fmt.Sprintf("s%d", i), nil))
		if err != nil {
			b.Fatal(err)
		}
		return id
	}
	// the first start builds the environment
	if err := w.Stop(ctx, start(-1)); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		id := start(i)
		i++
		b.StopTimer()
		if err := w.Stop(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkKernelStartToReady: internal/jupyter's Start alone, with the
// same Python, for the share of the kernel in a session's start.
func BenchmarkKernelStartToReady(b *testing.B) {
	fakeConda(b)
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for b.Loop() {
		k, err := jupyter.Start(ctx, jupyter.Options{Python: "/usr/bin/python3", ConnDir: dir})
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

// BenchmarkExecuteWorker: Worker.Execute of "1+1" in a running session,
// in process.
func BenchmarkExecuteWorker(b *testing.B) {
	w := newWorker(b, nil)
	fs := newFileServer(b, map[string]string{"main.py": benchEntry})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	id, err := w.Start(ctx, config(fs, "ws-bench", "exec", nil))
	if err != nil {
		b.Fatal(err)
	}
	run := func() {
		v, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: id, Script: "1+1"})
		if err != nil || v.(map[string]any)["status"] != "ok" {
			b.Fatal(v, err)
		}
	}
	for range 20 { // warm up, as the Python side does
		run()
	}
	b.ResetTimer()
	for b.Loop() {
		run()
	}
}

// BenchmarkExecuteRPC: execute of "1+1" over RPC through our server: on
// the worker service directly (by root in the session's workspace: a
// worker in public serves only the controller and root), and by the
// session's user through the apps controller's relay (public/server-apps
// execute), which checks the caller's right and calls the worker.
func BenchmarkExecuteRPC(b *testing.B) {
	a := newAppsSetup(b)
	sid := a.installStart(b, benchEntry)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ru := auth.RootUser()
	ru.Scope.CurrentWorkspace, ru.CurrentWorkspace = "ws-user-alice", "ws-user-alice"
	tok, err := a.s.Issuer().Generate(ru, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	root := testserver.Connect(b, a.s, rpc.Config{Token: tok, Workspace: "ws-user-alice", ClientID: "bench-root"})
	svc, err := root.GetService(ctx, a.hosted.ServiceID)
	if err != nil {
		b.Fatal(err)
	}
	for _, via := range []struct {
		name string
		call func() (any, error)
	}{
		{"worker", func() (any, error) { return svc.Call(ctx, "execute", sid, "1+1") }},
		{"relay", func() (any, error) { return appsOf(b, a.alice).Call(ctx, "execute", sid, "1+1") }},
	} {
		b.Run(via.name, func(b *testing.B) {
			run := func() {
				v, err := via.call()
				if err != nil {
					b.Fatal(err)
				}
				if m, _ := v.(map[string]any); m["status"] != "ok" {
					b.Fatal(v)
				}
			}
			for range 20 {
				run()
			}
			b.ResetTimer()
			for b.Loop() {
				run()
			}
		})
	}
}

// runJupyterClientBench runs internal/jupyter's reference script (the
// kernel started by hand with `python -m ipykernel_launcher -f FILE` and
// driven by jupyter_client) once for b.N operations and reports the mean it
// measured around the operations as this benchmark's ns/op.
func runJupyterClientBench(b *testing.B, mode string) {
	fakeConda(b) // the same skip: Debian's python3 with ipykernel
	out, err := exec.Command("/usr/bin/python3", "../../internal/jupyter/testdata/bench_jupyter_client.py", mode, strconv.Itoa(b.N)).Output()
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

func BenchmarkJupyterClientStartToReady(b *testing.B) { runJupyterClientBench(b, "start") }

func BenchmarkJupyterClientExecute(b *testing.B) { runJupyterClientBench(b, "execute") }
