package browser

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/worker"
)

// The browser worker's measurements, with the system Chromium:
//
//	go test -run '^$' -bench 'StartToDefault' -benchtime 20x ./workers/browser
//	go test -run '^$' -bench 'ConcurrentSessions' -benchtime 1x ./workers/browser
//
// docs/benchmarks.md, "Browser worker sessions", has the numbers.

// BenchmarkStartToDefault: from Worker.Start of a window app to its
// default service answering a call from Go through our server (the page
// loads, imports the client from /assets, connects and exports). The
// browser is already running (a first session starts it); stop is not
// counted.
func BenchmarkStartToDefault(b *testing.B) {
	w := newWorker(b, nil)
	s := testserver.Start(b, server.Config{})
	fs := newFileServer(b)
	page, err := RenderPage(map[string]any{"type": TypeWindow, "name": "bench"}, `await api.export({ping: () => "pong"});`)
	if err != nil {
		b.Fatal(err)
	}
	fs.put("bench/index.html", page)
	caller := testserver.RootClient(b, s, "bench-caller")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(i int) {
		id := fmt.Sprintf("app-%d", i)
		sid, err := w.Start(ctx, worker.Config{ID: "ws-user-root/" + id, Workspace: "ws-user-root", ClientID: id, AppID: "bench",
			ServerURL: s.URL(), AppFilesBaseURL: fs.URL + "/files/bench", Token: testserver.RootToken,
			Manifest: worker.Manifest{"type": TypeWindow}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			var svc *rpc.RemoteService
			if svc, err = caller.GetService(ctx, "ws-user-root/"+id+":default"); err == nil {
				var got any
				if got, err = svc.Call(ctx, "ping"); err == nil && got == "pong" {
					break
				}
			}
			if ctx.Err() != nil {
				b.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		b.StopTimer()
		if err := w.Stop(ctx, sid); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	run(-1) // starts the browser
	i := 0
	for b.Loop() {
		run(i)
		i++
	}
}

// BenchmarkConcurrentSessions opens 10 and 50 window pages at once and
// reports the wall time until all have loaded and the browser's memory
// per session (the Pss of every Chromium process of the worker, less the
// browser with no session, divided by n).
func BenchmarkConcurrentSessions(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			w := newWorker(b, func(o *Options) { o.MaxSessions = n + 1 })
			fs := newFileServer(b)
			fs.put("p/index.html", `<!doctype html><html><body><h1>session</h1><script>window.x = Array.from({length: 1000}, (_, i) => i);</script></body></html>`)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			start := func(id string) string {
				sid, err := w.Start(ctx, worker.Config{ID: "ws-a/" + id, Workspace: "ws-a", ClientID: id,
					AppFilesBaseURL: fs.URL + "/files/p", Manifest: worker.Manifest{"type": TypeWindow}})
				if err != nil {
					b.Fatal(err)
				}
				return sid
			}
			if err := w.Stop(ctx, start("warm")); err != nil {
				b.Fatal(err)
			}
			base := rssOf(w.profileDirs()[0])
			var perSession float64
			round := 0
			for b.Loop() {
				ids := make([]string, n)
				done := make(chan struct{}, n)
				for i := range n {
					go func() {
						ids[i] = start(fmt.Sprintf("r%d-%d", round, i))
						done <- struct{}{}
					}()
				}
				for range n {
					<-done
				}
				b.StopTimer()
				perSession = float64(rssOf(w.profileDirs()[0])-base) / float64(n) / (1 << 20)
				for _, id := range ids {
					if err := w.Stop(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
				round++
				b.StartTimer()
			}
			b.ReportMetric(perSession, "MiB/session")
		})
	}
}

// rssOf sums the proportional set size (Pss: shared pages split between
// the processes that share them, so the shared libraries of the many
// Chromium processes are not counted once per process) of the processes
// whose command line contains dir.
func rssOf(dir string) int64 {
	var total int64
	for _, pid := range processesWith(dir) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}
