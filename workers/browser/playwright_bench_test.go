package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/worker"
)

// The browser worker against what a user would write instead: the same
// page opened by Playwright (playwright-core, bench/playwright) driving the
// same Chromium executable, headless, a new browser context per session.
// Both sides run in one benchmark, alternating, against one server:
//
//	(cd bench/playwright && npm ci)   # once: installs the pinned playwright-core
//	go test -run '^$' -bench 'VersusPlaywright' -benchtime 10x -count 3 -timeout 60m ./workers/browser
//
// docs/benchmarks.md §8 has the numbers.

// playwrightDir is the node project of the Playwright side.
const playwrightDir = "../../bench/playwright"

// pwDriver is bench/playwright/driver.mjs running under node: one
// Chromium launched by Playwright, sessions opened and closed on request.
type pwDriver struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the reader ended

	mu      sync.Mutex
	waiters map[string]chan error
	failed  map[string]string // page errors by session id
	wmu     sync.Mutex        // one request line at a time
}

// startPlaywright starts the driver on chromium, or skips the benchmark
// when node or the driver's playwright-core is not installed.
func startPlaywright(b *testing.B, chromium string) *pwDriver {
	b.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		b.Skip("node is not installed: the Playwright side needs Node.js 18 or later")
	}
	if _, err := os.Stat(filepath.Join(playwrightDir, "node_modules", "playwright-core")); err != nil {
		b.Skip("playwright-core is not installed: run `npm ci` in bench/playwright")
	}
	cmd := exec.Command(node, "driver.mjs", chromium)
	cmd.Dir = playwrightDir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	d := &pwDriver{cmd: cmd, stdin: stdin, done: make(chan struct{}), waiters: map[string]chan error{}, failed: map[string]string{}}
	ready := make(chan error, 1)
	go d.read(stdout, ready)
	b.Cleanup(func() {
		_ = d.stdin.Close() // the driver closes its browser and exits
		<-d.done
		_ = d.cmd.Wait()
	})
	select {
	case err := <-ready:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		b.Fatal("the Playwright driver did not start within 2 minutes")
	}
	return d
}

func (d *pwDriver) read(r io.Reader, ready chan<- error) {
	defer close(d.done)
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		var m struct {
			Ready  bool   `json:"ready"`
			ID     string `json:"id"`
			OK     bool   `json:"ok"`
			Error  string `json:"error"`
			Failed string `json:"failed"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		if first {
			first = false
			if !m.Ready {
				ready <- fmt.Errorf("playwright driver: %s", sc.Text())
				return
			}
			ready <- nil
			continue
		}
		if m.Failed != "" {
			d.mu.Lock()
			d.failed[m.ID] = m.Failed
			d.mu.Unlock()
			continue
		}
		d.mu.Lock()
		ch := d.waiters[m.ID]
		delete(d.waiters, m.ID)
		d.mu.Unlock()
		if ch != nil {
			if m.Error != "" {
				ch <- errors.New(m.Error)
			} else {
				ch <- nil
			}
		}
	}
	if first {
		ready <- errors.New("the Playwright driver exited before it was ready")
	}
	d.mu.Lock()
	for id, ch := range d.waiters {
		ch <- errors.New("the Playwright driver exited")
		delete(d.waiters, id)
	}
	d.mu.Unlock()
}

// do sends one request and waits for its answer.
func (d *pwDriver) do(ctx context.Context, req map[string]string) error {
	ch := make(chan error, 1)
	d.mu.Lock()
	d.waiters[req["id"]] = ch
	d.mu.Unlock()
	line, _ := json.Marshal(req)
	d.wmu.Lock()
	_, err := d.stdin.Write(append(line, '\n'))
	d.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pssOfTree sums the Pss (see rssOf) of the Chromium processes among root
// and its descendants: the same count for both sides (for ours root is
// the browser process, for Playwright's the node driver, not counted).
func pssOfTree(root int) int64 {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 {
				ppid, _ := strconv.Atoi(f[1])
				children[ppid] = append(children[ppid], pid)
			}
		}
	}
	var total int64
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		queue = append(queue, children[pid]...)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if !strings.HasPrefix(string(comm), "chrom") {
			continue
		}
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

// pwBench is the shared setup: our server, the app's page, a Go caller,
// our worker and the Playwright driver.
type pwBench struct {
	w      *Worker
	pw     *pwDriver
	s      *server.Server
	fs     *fileServer
	caller *rpc.Client
}

func newPWBench(b *testing.B, maxSessions int) *pwBench {
	w := newWorker(b, func(o *Options) { o.MaxSessions = maxSessions; o.LoadTimeout = 5 * time.Minute })
	chromium := needChromium(b)
	pw := startPlaywright(b, chromium)
	s := testserver.Start(b, server.Config{MsgRateLimit: 1e9, MsgBurstLimit: 1e9})
	fs := newFileServer(b)
	page, err := RenderPage(map[string]any{"type": TypeWindow, "name": "bench"}, `await api.export({ping: () => "pong"});`)
	if err != nil {
		b.Fatal(err)
	}
	fs.put("bench/index.html", page)
	return &pwBench{w: w, pw: pw, s: s, fs: fs, caller: testserver.RootClient(b, s, "bench-caller")}
}

// config is the session both sides load: our worker from the config, the
// Playwright side the URL the worker would load for it.
func (p *pwBench) config(clientID string) worker.Config {
	return worker.Config{ID: "ws-user-root/" + clientID, Workspace: "ws-user-root", ClientID: clientID, AppID: "bench",
		ServerURL: p.s.URL(), AppFilesBaseURL: p.fs.URL + "/files/bench", Token: testserver.RootToken,
		Manifest: worker.Manifest{"type": TypeWindow}}
}

// errPageFailed: the page reported an error (it will not connect).
var errPageFailed = errors.New("the page failed")

// waitDefault waits until the app's default service answers ping, or
// failed (polled every 100 ms) reports an error of the page.
func (p *pwBench) waitDefault(ctx context.Context, clientID string, failed func() string) error {
	last := time.Now()
	for {
		if failed != nil && time.Since(last) > 100*time.Millisecond {
			last = time.Now()
			if msg := failed(); msg != "" {
				return fmt.Errorf("%w: %s", errPageFailed, msg)
			}
		}
		svc, err := p.caller.GetService(ctx, "ws-user-root/"+clientID+":default")
		if err == nil {
			var got any
			if got, err = svc.Call(ctx, "ping"); err == nil && got == "pong" {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", clientID, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// side is one way of running a session: open it (returning once loaded)
// and close it.
type side struct {
	name   string
	open   func(ctx context.Context, clientID string) error
	close  func(ctx context.Context, clientID string) error
	pss    func() int64
	failed func(clientID string) string // the page's first error, "" if none
}

func (p *pwBench) sides() []side {
	ours := side{name: "worker",
		open: func(ctx context.Context, id string) error {
			sid, err := p.w.Start(ctx, p.config(id))
			if err == nil && sid != "ws-user-root/"+id {
				err = fmt.Errorf("session id %q", sid)
			}
			return err
		},
		close: func(ctx context.Context, id string) error { return p.w.Stop(ctx, "ws-user-root/"+id) },
		failed: func(id string) string {
			page, _ := p.w.GetLogs(context.Background(), "ws-user-root/"+id, worker.LogQuery{})
			for _, e := range page.Items {
				if e.Type == worker.LogError || strings.HasPrefix(e.Content, "[error] app failed") {
					return e.Content
				}
			}
			return ""
		},
		pss: func() int64 {
			p.w.mu.Lock()
			defer p.w.mu.Unlock()
			if p.w.browser == nil {
				return 0
			}
			return pssOfTree(p.w.browser.pid)
		},
	}
	theirs := side{name: "playwright",
		open: func(ctx context.Context, id string) error {
			full, _, err := pageURL(p.config(id))
			if err != nil {
				return err
			}
			return p.pw.do(ctx, map[string]string{"id": id, "op": "open", "url": full})
		},
		close: func(ctx context.Context, id string) error {
			p.pw.mu.Lock()
			delete(p.pw.failed, id)
			p.pw.mu.Unlock()
			return p.pw.do(ctx, map[string]string{"id": id, "op": "close"})
		},
		pss: func() int64 { return pssOfTree(p.pw.cmd.Process.Pid) },
		failed: func(id string) string {
			p.pw.mu.Lock()
			defer p.pw.mu.Unlock()
			return p.pw.failed[id]
		},
	}
	return []side{ours, theirs}
}

func median(ds []float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkVersusPlaywright/start: one session at a time, from the open
// (Worker.Start; Playwright's newContext, newPage and goto) until the
// app's default service answers a call from Go. Each iteration runs one
// session on each side, alternating which goes first; the medians are
// reported (ms), and the page-loaded share (open returned).
//
// BenchmarkVersusPlaywright/concurrent-N: N sessions opened at once on one
// side, then on the other; wall time until every default service answers,
// and the Chromium memory (Pss) per session with all N open, less the
// browser with no session.
func BenchmarkVersusPlaywright(b *testing.B) {
	b.Run("start", func(b *testing.B) {
		p := newPWBench(b, 4)
		sides := p.sides()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		total := map[string][]float64{}
		loaded := map[string][]float64{}
		run := func(sd side, id string) (time.Duration, time.Duration) {
			t0 := time.Now()
			if err := sd.open(ctx, id); err != nil {
				b.Fatalf("%s: open: %v", sd.name, err)
			}
			t1 := time.Since(t0)
			if err := p.waitDefault(ctx, id, func() string { return sd.failed(id) }); err != nil {
				b.Fatalf("%s: %v", sd.name, err)
			}
			t2 := time.Since(t0)
			if err := sd.close(ctx, id); err != nil {
				b.Fatalf("%s: close: %v", sd.name, err)
			}
			return t1, t2
		}
		for _, sd := range sides { // warm-up: starts both browsers
			run(sd, "warm-"+sd.name)
		}
		i := 0
		for b.Loop() {
			order := sides
			if i%2 == 1 {
				order = []side{sides[1], sides[0]}
			}
			for _, sd := range order {
				t1, t2 := run(sd, fmt.Sprintf("%s-%d", sd.name, i))
				loaded[sd.name] = append(loaded[sd.name], float64(t1)/1e6)
				total[sd.name] = append(total[sd.name], float64(t2)/1e6)
			}
			i++
		}
		for _, sd := range sides {
			b.ReportMetric(median(total[sd.name]), sd.name+"-ms")
			b.ReportMetric(median(loaded[sd.name]), sd.name+"-loaded-ms")
		}
		b.ReportMetric(median(total["worker"])/median(total["playwright"]), "ratio")
	})
	for _, n := range []int{10, 50} {
		b.Run("concurrent-"+strconv.Itoa(n), func(b *testing.B) {
			p := newPWBench(b, n+1)
			sides := p.sides()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			base := map[string]int64{}
			for _, sd := range sides {
				id := "warm-" + sd.name
				if err := sd.open(ctx, id); err != nil {
					b.Fatalf("%s: %v", sd.name, err)
				}
				if err := sd.close(ctx, id); err != nil {
					b.Fatalf("%s: %v", sd.name, err)
				}
				time.Sleep(time.Second) // let the closed context's renderer exit
				base[sd.name] = sd.pss()
			}
			counters := map[string]*atomic.Int64{"worker": {}, "playwright": {}}
			wall := map[string][]float64{}
			mem := map[string][]float64{}
			round := 0
			for b.Loop() {
				order := sides
				if round%2 == 1 {
					order = []side{sides[1], sides[0]}
				}
				for _, sd := range order {
					retries := counters[sd.name]
					ids := make([]string, n)
					errs := make(chan error, n)
					t0 := time.Now()
					for i := range n {
						ids[i] = fmt.Sprintf("%s-%d-%d", sd.name, round, i)
						go func() {
							// A page that reports an error (under load,
							// a failed fetch of the client module) never
							// connects: it is closed and opened again, as
							// a user would have to, and counted.
							var err error
							for try := 0; try < 5; try++ {
								if try > 0 {
									retries.Add(1)
									if err = sd.close(ctx, ids[i]); err != nil {
										break
									}
								}
								if err = sd.open(ctx, ids[i]); err != nil {
									break
								}
								wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
								err = p.waitDefault(wctx, ids[i], func() string { return sd.failed(ids[i]) })
								cancel()
								if !errors.Is(err, errPageFailed) {
									break
								}
								b.Logf("%s: %s: %v", sd.name, ids[i], err)
							}
							errs <- err
						}()
					}
					for range n {
						if err := <-errs; err != nil {
							b.Fatalf("%s: %v", sd.name, err)
						}
					}
					wall[sd.name] = append(wall[sd.name], time.Since(t0).Seconds())
					mem[sd.name] = append(mem[sd.name], float64(sd.pss()-base[sd.name])/float64(n)/(1<<20))
					for _, id := range ids {
						if err := sd.close(ctx, id); err != nil {
							b.Fatalf("%s: close: %v", sd.name, err)
						}
					}
				}
				round++
			}
			for _, sd := range sides {
				b.ReportMetric(median(wall[sd.name]), sd.name+"-s")
				b.ReportMetric(median(mem[sd.name]), sd.name+"-MiB/session")
			}
			for _, sd := range sides {
				b.ReportMetric(float64(counters[sd.name].Load()), sd.name+"-retries")
			}
			b.ReportMetric(median(wall["worker"])/median(wall["playwright"]), "wall-ratio")
			b.ReportMetric(median(mem["worker"])/median(mem["playwright"]), "mem-ratio")
		})
	}
}
