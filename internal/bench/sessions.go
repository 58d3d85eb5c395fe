package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	appsctl "github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/workers/process"
)

// SessionsOptions of the app-sessions benchmark.
type SessionsOptions struct {
	// Samples is the number of python-eval starts timed in part (a)
	// (default 20), each paired with a bare interpreter run.
	Samples int
	// Sessions is the number of concurrent sleeping sessions of part (b)
	// (default 200).
	Sessions int
	// Concurrency bounds the concurrent start and stop calls of part (b)
	// (default 16).
	Concurrency int
	// Python is the interpreter of both the worker and the bare baseline
	// (default "python3", resolved once through PATH).
	Python string
	// MaxSessions is the process worker's session cap; 0 means enough for
	// Sessions (and at least process.DefaultMaxSessions).
	MaxSessions int
	// Logger receives the embedded server's logs (default: discarded).
	Logger *slog.Logger
	// Progress, when set, receives one line per phase.
	Progress io.Writer
}

// Dist summarises a sample of durations.
type Dist struct {
	N           int
	Median, P90 time.Duration
	Min, Max    time.Duration
}

func distOf(d []time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return Dist{N: len(s), Median: s[len(s)/2], P90: s[min(len(s)-1, len(s)*90/100)], Min: s[0], Max: s[len(s)-1]}
}

func (d Dist) String() string {
	r := func(x time.Duration) string { return x.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("median %s p90 %s (min %s max %s, n=%d)", r(d.Median), r(d.P90), r(d.Min), r(d.Max), d.N)
}

// SessionsResult is what Sessions measured.
type SessionsResult struct {
	Python string // resolved interpreter path

	// (a) one python-eval app whose script is "pass".
	// StartToRunning: controller start(wait_for_service=False) until it
	// returns; the worker returns once the process has been spawned.
	StartToRunning Dist
	// StartToExited: controller start until the controller's
	// get_session_info reports the app completed (polled every
	// millisecond; includes the interpreter's own run).
	StartToExited Dist
	// Bare: exec + wait of "<python> -c pass" from this process.
	Bare Dist

	// (b) Sessions concurrent sessions sleeping 600 s.
	Sessions       int
	Concurrency    int
	StartAll       time.Duration // wall time to start them all
	StartEach      Dist          // latency of each start call under load
	Running        int           // app processes found in /proc after the starts
	RSSBefore      int64         // this process (server + controller + worker), bytes
	RSSAfter       int64         // after all sessions started and a 1 s settle
	ChildRSS       int64         // sum of the app processes' RSS, bytes
	Supervisors    int           // session supervisors found (see internal/localproc.MaybeSupervise)
	SupervisorPSS  int64         // their proportional set size (shared pages split among sharers), bytes
	PSSUnreadable  int           // supervisors whose PSS this user may not read (non-dumpable, another owner)
	StopAll        time.Duration // wall time to stop them all
	Remaining      int           // app processes, supervisors (or children of ours) left right after the stops
	RemainingLater int           // the same, 2 s later
	WorkDirsLeft   int           // session working directories left after the stops
}

// Report renders the result for humans.
func (r SessionsResult) Report() string {
	var b strings.Builder
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Fprintf(&b, "interpreter: %s\n", r.Python)
	fmt.Fprintf(&b, "(a) python-eval start overhead (script: pass)\n")
	fmt.Fprintf(&b, "  start -> running (start() returned):  %s\n", r.StartToRunning)
	fmt.Fprintf(&b, "  start -> exited (status completed):   %s\n", r.StartToExited)
	fmt.Fprintf(&b, "  bare exec+wait '%s -c pass':  %s\n", filepath.Base(r.Python), r.Bare)
	if r.Bare.Median > 0 {
		fmt.Fprintf(&b, "  ratio start->running / bare: %.2f (median), %.2f (p90)\n",
			ms(r.StartToRunning.Median)/ms(r.Bare.Median), ms(r.StartToRunning.P90)/ms(r.Bare.P90))
		fmt.Fprintf(&b, "  ratio start->exited / bare:  %.2f (median), %.2f (p90); overhead %.1f ms (median difference)\n",
			ms(r.StartToExited.Median)/ms(r.Bare.Median), ms(r.StartToExited.P90)/ms(r.Bare.P90),
			ms(r.StartToExited.Median-r.Bare.Median))
	}
	fmt.Fprintf(&b, "(b) %d concurrent sleeping sessions, start/stop concurrency %d\n", r.Sessions, r.Concurrency)
	perSec := 0.0
	if r.StartAll > 0 {
		perSec = float64(r.Sessions) / r.StartAll.Seconds()
	}
	fmt.Fprintf(&b, "  start all: %s (%.1f starts/s); each start call: %s\n", r.StartAll.Round(time.Millisecond), perSec, r.StartEach)
	fmt.Fprintf(&b, "  app processes running: %d\n", r.Running)
	mb := func(n int64) float64 { return float64(n) / (1 << 20) }
	per := 0.0
	if r.Sessions > 0 {
		per = float64(r.RSSAfter-r.RSSBefore) / float64(r.Sessions) / 1024
	}
	fmt.Fprintf(&b, "  our RSS (server+controller+worker): %.1f MB -> %.1f MB (+%.1f MB, %.1f KB/session)\n",
		mb(r.RSSBefore), mb(r.RSSAfter), mb(r.RSSAfter-r.RSSBefore), per)
	fmt.Fprintf(&b, "  app processes' RSS: %.1f MB total\n", mb(r.ChildRSS))
	if read := r.Supervisors - r.PSSUnreadable; read > 0 {
		fmt.Fprintf(&b, "  session supervisors: %d, PSS %.1f MB total (%.1f KB each)",
			r.Supervisors, mb(r.SupervisorPSS), float64(r.SupervisorPSS)/float64(read)/1024)
		if r.PSSUnreadable > 0 {
			fmt.Fprintf(&b, "; the PSS of %d more could not be read", r.PSSUnreadable)
		}
		b.WriteString("\n")
	} else if r.Supervisors > 0 {
		fmt.Fprintf(&b, "  session supervisors: %d, PSS not readable by this user (non-dumpable processes: run as root)\n", r.Supervisors)
	}
	fmt.Fprintf(&b, "  stop all: %s\n", r.StopAll.Round(time.Millisecond))
	fmt.Fprintf(&b, "  processes left: %d right after the stops, %d after 2 s; working directories left: %d\n",
		r.Remaining, r.RemainingLater, r.WorkDirsLeft)
	return b.String()
}

// Sessions starts the embedded system in-process (server, apps controller,
// process worker; a temporary data directory) and measures (a) the
// python-eval start overhead against a bare interpreter run and (b) many
// concurrent sleeping sessions on the one process worker: start time,
// memory, stop time, and that no app process survives the stops.
func Sessions(ctx context.Context, o SessionsOptions) (SessionsResult, error) {
	if o.Samples <= 0 {
		o.Samples = 20
	}
	if o.Sessions <= 0 {
		o.Sessions = 200
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = max(process.DefaultMaxSessions, o.Sessions+16)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}
	// A bare name is resolved by the worker (which, running as root,
	// picks an interpreter the app user can run); a path is made absolute
	// since apps run in their own working directories.
	py := o.Python
	if strings.ContainsRune(py, filepath.Separator) {
		abs, err := filepath.Abs(py)
		if err != nil {
			return SessionsResult{}, err
		}
		py = abs
	}
	if _, err := exec.LookPath(py); err != nil {
		return SessionsResult{}, fmt.Errorf("python interpreter: %w", err)
	}
	res := SessionsResult{Python: py, Sessions: o.Sessions, Concurrency: o.Concurrency}

	dataDir, err := os.MkdirTemp("", "hypha-bench-sessions-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dataDir)
	// Apart from the (private) data dir: when the bench runs as root, the
	// apps run as the app user, who must reach its working directories.
	workDir, err := os.MkdirTemp("", "hypha-bench-work-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(workDir)
	if err := os.Chmod(workDir, 0o711); err != nil {
		return res, err
	}
	sys, err := embedded.Start(ctx, embedded.Options{
		Server: server.Config{Logger: o.Logger, DataDir: filepath.Join(dataDir, "data"), JWTSecret: idgen.New() + idgen.New(),
			MsgRateLimit: 1e9, MsgBurstLimit: 1e9},
		// every bench session runs in one workspace
		Apps:    appsctl.Limits{MaxSessionsPerWorkspace: o.MaxSessions + o.Sessions + 1},
		Addr:    "127.0.0.1:0",
		Process: process.Options{Python: py, MaxSessions: o.MaxSessions, WorkDir: workDir, Logger: o.Logger},
	})
	if err != nil {
		return res, err
	}
	defer sys.Close()
	if pw := sys.ProcessWorker(); pw != nil {
		if py, err = pw.Interpreter(ctx, process.TypePython); err != nil {
			return res, err
		}
		res.Python = py
	}
	tok, err := sys.RootToken(24 * time.Hour)
	if err != nil {
		return res, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := rpc.Connect(cctx, rpc.Config{ServerURL: sys.Server.URL(), Token: tok, Logger: o.Logger, NoReconnect: true,
		ClientID: "bench-sessions-" + idgen.New()[:8]})
	cancel()
	if err != nil {
		return res, err
	}
	defer c.Close()
	apps, err := c.GetService(ctx, "public/server-apps")
	if err != nil {
		return res, err
	}
	progress("embedded server at %s, interpreter %s, worker max sessions %d", sys.Server.URL(), py, o.MaxSessions)

	if err := sessionsOverhead(ctx, apps, py, o, &res, progress); err != nil {
		return res, fmt.Errorf("(a): %w", err)
	}
	if err := sessionsMany(ctx, apps, o, workDir, &res, progress); err != nil {
		return res, fmt.Errorf("(b): %w", err)
	}
	return res, nil
}

func installBenchApp(ctx context.Context, apps *rpc.RemoteService, id, entry, script string, daemon bool) error {
	m := map[string]any{"id": id, "name": id, "type": process.TypePython, "version": "0.1.0",
		"entry_point": entry, "daemon": daemon}
	v, err := apps.Call(ctx, "install", rpc.Kwargs{"manifest": m, "overwrite": true, "wait_for_service": false,
		"files": []any{map[string]any{"path": entry, "content": script, "format": "text"}}})
	if err != nil {
		return fmt.Errorf("install %s: %w", id, err)
	}
	if got, _ := v.(map[string]any)["id"].(string); got != id {
		return fmt.Errorf("install %s returned the app %v", id, v)
	}
	return nil
}

func startSession(ctx context.Context, apps *rpc.RemoteService, appID string) (string, error) {
	v, err := apps.Call(ctx, "start", appID, rpc.Kwargs{"wait_for_service": false, "timeout": 60})
	if err != nil {
		return "", err
	}
	sid, _ := v.(map[string]any)["id"].(string)
	if sid == "" {
		return "", fmt.Errorf("start returned %v", v)
	}
	return sid, nil
}

// sessionsOverhead is part (a): pairs of a bare "<python> -c pass" and a
// python-eval session running "pass", interleaved, after two warm-ups.
func sessionsOverhead(ctx context.Context, apps *rpc.RemoteService, py string, o SessionsOptions, res *SessionsResult, progress func(string, ...any)) error {
	appID := "bench-pass-" + strings.ToLower(idgen.New()[:6])
	if err := installBenchApp(ctx, apps, appID, "main.py", "pass\n", false); err != nil {
		return err
	}
	defer apps.Call(context.WithoutCancel(ctx), "uninstall", appID)
	var running, exited, bare []time.Duration
	for i := -2; i < o.Samples; i++ {
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, py, "-c", "pass")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("bare %s -c pass: %w: %s", py, err, out)
		}
		db := time.Since(t0)

		t0 = time.Now()
		sid, err := startSession(ctx, apps, appID)
		if err != nil {
			return fmt.Errorf("start %s: %w", appID, err)
		}
		dr := time.Since(t0)
		var de time.Duration
		for {
			v, err := apps.Call(ctx, "get_session_info", sid)
			if err != nil {
				return fmt.Errorf("get_session_info %s: %w", sid, err)
			}
			st, _ := v.(map[string]any)["status"].(string)
			if st == "completed" {
				de = time.Since(t0)
				break
			}
			if st == "failed" {
				return fmt.Errorf("session %s failed: %v", sid, v)
			}
			if time.Since(t0) > 30*time.Second {
				return fmt.Errorf("session %s did not complete within 30 s (status %q)", sid, st)
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := apps.Call(ctx, "stop", sid); err != nil {
			return fmt.Errorf("stop %s: %w", sid, err)
		}
		if i >= 0 {
			bare, running, exited = append(bare, db), append(running, dr), append(exited, de)
		}
	}
	res.Bare, res.StartToRunning, res.StartToExited = distOf(bare), distOf(running), distOf(exited)
	progress("(a) done: %d samples", o.Samples)
	return nil
}

// sessionsMany is part (b).
func sessionsMany(ctx context.Context, apps *rpc.RemoteService, o SessionsOptions, workDir string, res *SessionsResult, progress func(string, ...any)) error {
	marker := "hypha_bench_sleep_" + strings.ToLower(idgen.New()[:10])
	entry := marker + ".py"
	appID := "bench-sleep-" + strings.ToLower(idgen.New()[:6])
	// daemon: the controller otherwise returns the running instance of a
	// non-daemon app instead of starting another one in the same workspace.
	if err := installBenchApp(ctx, apps, appID, entry, "import time\ntime.sleep(600)\n", true); err != nil {
		return err
	}
	defer apps.Call(context.WithoutCancel(ctx), "uninstall", appID)

	time.Sleep(500 * time.Millisecond) // let the install's trial run settle
	before, err := RSS(os.Getpid())
	if err != nil {
		return err
	}
	res.RSSBefore = before

	sids := make([]string, o.Sessions)
	lat := make([]time.Duration, o.Sessions)
	errs := make([]error, o.Sessions)
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range o.Sessions {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s := time.Now()
			sids[i], errs[i] = startSession(ctx, apps, appID)
			lat[i] = time.Since(s)
		}()
	}
	wg.Wait()
	res.StartAll = time.Since(t0)
	res.StartEach = distOf(lat)
	startErr := errors.Join(errs...)
	progress("(b) started %d sessions in %s", o.Sessions, res.StartAll.Round(time.Millisecond))

	// Whatever happens now, every started session is stopped.
	stopAll := func() error {
		clear(errs)
		t := time.Now()
		for i, sid := range sids {
			if sid == "" {
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				_, errs[i] = apps.Call(context.WithoutCancel(ctx), "stop", sid)
			}()
		}
		wg.Wait()
		res.StopAll = time.Since(t)
		return errors.Join(errs...)
	}
	if startErr != nil {
		_ = stopAll()
		return fmt.Errorf("start: %w", startErr)
	}

	time.Sleep(time.Second)
	after, err := RSS(os.Getpid())
	if err != nil {
		_ = stopAll()
		return err
	}
	res.RSSAfter = after
	procs, sups := appProcesses(marker)
	res.Running, res.Supervisors = len(procs), len(sups)
	for _, p := range procs {
		if n, err := RSS(p); err == nil {
			res.ChildRSS += n
		}
	}
	for _, p := range sups {
		if n, err := PSS(p); err == nil {
			res.SupervisorPSS += n
		} else {
			res.PSSUnreadable++
		}
	}
	if err := stopAll(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	progress("(b) stopped %d sessions in %s", o.Sessions, res.StopAll.Round(time.Millisecond))
	left := func() int { a, s := appProcesses(marker); return len(a) + len(s) }
	res.Remaining = left()
	time.Sleep(2 * time.Second)
	res.RemainingLater = left()
	if ents, err := os.ReadDir(workDir); err == nil {
		res.WorkDirsLeft = len(ents)
	}
	if res.Running != o.Sessions {
		return fmt.Errorf("%d app processes running after %d starts", res.Running, o.Sessions)
	}
	return nil
}

// appProcesses scans /proc for processes whose parent is this process or
// whose command line contains marker (zombies included). Session
// supervisors (the process worker's, see internal/localproc.MaybeSupervise)
// that are children of ours, or of such a supervisor (a non-root worker's
// start two per session), come apart in sups.
func appProcesses(marker string) (apps, sups []int) {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, nil
	}
	isSup := map[int]bool{}
	parent := map[int]int{}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		ppid, ok := parentOf(pid)
		if !ok {
			continue
		}
		parent[pid] = ppid
		pids = append(pids, pid)
		if bytes.Contains(cl, []byte("\x00__hypha_supervise")) {
			isSup[pid] = true
		} else if bytes.Contains(cl, []byte(marker)) {
			apps = append(apps, pid)
		} else if ppid == self {
			apps = append(apps, pid)
		}
	}
	for _, pid := range pids {
		if isSup[pid] && (parent[pid] == self || isSup[parent[pid]] && parent[parent[pid]] == self) {
			sups = append(sups, pid)
		}
	}
	return apps, sups
}

// parentOf reads the parent pid from /proc/PID/stat ("pid (comm) state ppid ...";
// comm may contain spaces and parentheses, so parse after the last ')').
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// PSS returns a process's proportional set size in bytes (Linux): its
// private pages plus its share of the pages it shares, which RSS counts
// whole in every process.
func PSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no Pss for pid %d", pid)
}
