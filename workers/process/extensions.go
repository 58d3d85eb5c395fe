package process

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/hypha-go/hypha/worker"
)

// The process worker's extension methods (docs/workers.md, "Extension
// methods"): beyond the worker API, a member of the worker's workspace
// (or the apps controller) can
//
//	get_resource_usage(session_id)   read        CPU time and memory of the session's processes
//	stream_logs(session_id, offset)  read        the session's logs as a generator, live
//	signal(session_id, name)         read_write  send SIGINT, SIGHUP, SIGUSR1 or SIGUSR2 to the app
//
// Each is about one session and confined to the caller's workspace by the
// adapter and again by Registry.LookupFor.

// Names of the extension methods.
const (
	ExtResourceUsage = "get_resource_usage"
	ExtStreamLogs    = "stream_logs"
	ExtSignal        = "signal"
)

// Extensions lists the worker's extension methods (worker.Extender).
func (w *Worker) Extensions() []worker.Extension {
	return []worker.Extension{
		{Name: ExtResourceUsage, Session: true, Permission: worker.PermissionRead,
			Description: "CPU time and resident memory of the session's processes (the app and its descendants), read from /proc",
			Func:        w.ResourceUsage},
		{Name: ExtStreamLogs, Session: true, Permission: worker.PermissionRead, Params: []string{"session_id", "offset?"},
			Description: "The session's log entries from offset (an absolute position; 0 for the start) as a generator that follows new output until the session ends",
			Func:        w.StreamLogs},
		{Name: ExtSignal, Session: true, Permission: worker.PermissionReadWrite, Params: []string{"session_id", "name"},
			Description: "Sends a signal (SIGINT, SIGHUP, SIGUSR1 or SIGUSR2) to the app's main process; use stop to end a session",
			Func:        w.Signal},
	}
}

var _ worker.Extender = (*Worker)(nil)

// ProcessUsage is one process of a session in ResourceUsage.
type ProcessUsage struct {
	PID        int     `json:"pid"`
	Command    string  `json:"command"`
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSBytes   int64   `json:"rss_bytes"`
}

// ResourceUsage is what get_resource_usage answers. Processes is empty
// once the session's processes have ended.
type ResourceUsage struct {
	SessionID  string         `json:"session_id"`
	Status     string         `json:"status"`
	CPUSeconds float64        `json:"cpu_seconds"`
	RSSBytes   int64          `json:"rss_bytes"`
	Processes  []ProcessUsage `json:"processes"`
}

// liveProc returns the session's handle and its app's pid, 0 when it is not
// running (not yet spawned, or its processes have ended).
func (w *Worker) liveProc(ctx context.Context, sessionID string) (*worker.Session, int, error) {
	s, err := w.Sessions.LookupFor(ctx, sessionID)
	if err != nil {
		return nil, 0, err
	}
	h, ok := worker.HandleOf[*proc](s)
	if !ok {
		return s, 0, nil
	}
	h.mu.Lock()
	ls, pid := h.ls, h.pid
	h.mu.Unlock()
	if ls == nil || pid == 0 {
		return s, 0, nil
	}
	select {
	case <-ls.Exited():
		return s, 0, nil
	default:
	}
	return s, pid, nil
}

// ResourceUsage adds up the CPU time (user and system) and the resident
// memory of the session's app process and all its descendants, read from
// /proc (Linux only). CPU seconds assume the kernel's USER_HZ of 100.
func (w *Worker) ResourceUsage(ctx context.Context, sessionID string) (ResourceUsage, error) {
	s, pid, err := w.liveProc(ctx, sessionID)
	if err != nil {
		return ResourceUsage{}, err
	}
	out := ResourceUsage{SessionID: s.ID(), Status: string(s.Status()), Processes: []ProcessUsage{}}
	if runtime.GOOS != "linux" {
		return ResourceUsage{}, fmt.Errorf("%w: %s reads /proc, which only Linux has", worker.ErrNotSupported, ExtResourceUsage)
	}
	if pid == 0 {
		return out, nil
	}
	all, err := readProcs()
	if err != nil {
		return ResourceUsage{}, fmt.Errorf("%w: read /proc: %v", worker.ErrWorkerNotAvailable, err)
	}
	for _, p := range subtree(all, pid) {
		out.Processes = append(out.Processes, p)
		out.CPUSeconds += p.CPUSeconds
		out.RSSBytes += p.RSSBytes
	}
	return out, nil
}

// statLine is one line of /proc/<pid>/stat, the fields we use.
type statLine struct {
	ProcessUsage
	ppid int
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat: the kernel
// reports USER_HZ, 100 on every Linux architecture Go supports.
const userHZ = 100

// readProcs reads the stat line of every process (a process that ends
// meanwhile is skipped).
func readProcs() ([]statLine, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	page := int64(os.Getpagesize())
	var out []statLine
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		if p, ok := parseStat(pid, string(b), page); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseStat reads "pid (comm) state ppid … utime stime … rss …" (proc(5));
// comm may hold spaces and parentheses, so the fields start after the last
// ')'.
func parseStat(pid int, line string, page int64) (statLine, bool) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return statLine{}, false
	}
	f := strings.Fields(line[end+1:])
	if len(f) < 22 { // f[0] is field 3 (state); rss is field 24
		return statLine{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	rss, err4 := strconv.ParseInt(f[21], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return statLine{}, false
	}
	return statLine{ppid: ppid, ProcessUsage: ProcessUsage{
		PID: pid, Command: line[open+1 : end],
		CPUSeconds: float64(utime+stime) / userHZ, RSSBytes: rss * page,
	}}, true
}

// subtree returns root and its descendants, root first.
func subtree(all []statLine, root int) []ProcessUsage {
	children := map[int][]statLine{}
	var out []ProcessUsage
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p)
		if p.PID == root {
			out = append(out, p.ProcessUsage)
		}
	}
	if len(out) == 0 {
		return out
	}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if c.PID == root {
				continue
			}
			out = append(out, c.ProcessUsage)
			queue = append(queue, c.PID)
		}
	}
	return out
}

// streamBatch bounds how many entries the stream copies out of the log
// store at a time: the generator holds at most this many.
const streamBatch = 64

// StreamLogs returns the session's log entries from offset (an absolute
// position, as LogEntry.Seq; 0 is the start) as a generator, following new
// output until the session's processes have ended and their output is
// read, the session is removed, or the reader stops. Each item is
// {"type", "content", "seq"} (plus "partial" for a piece of a long line).
//
// The generator reads an entry only when the caller asks for it, so a slow
// reader costs no memory beyond streamBatch entries; it does not hold the
// app back either (that takes get_logs' follower, which needs read_write):
// entries the log store drops before the reader reaches them are reported
// by one info item saying how many were lost.
func (w *Worker) StreamLogs(ctx context.Context, sessionID string, offset int64) (iter.Seq2[map[string]any, error], error) {
	s, err := w.Sessions.LookupFor(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("%w: offset: want a non-negative position, got %d", worker.ErrInvalidConfig, offset)
	}
	var ended <-chan struct{} = s.Done()
	if h, ok := worker.HandleOf[*proc](s); ok {
		ended = h.done // output drained and final status set
	}
	store := s.Logs()
	return func(yield func(map[string]any, error) bool) {
		from := offset
		for {
			batch, next, wait := store.Since(from, streamBatch)
			if len(batch) > 0 && batch[0].Seq > from {
				lost := batch[0].Seq - from
				if !yield(map[string]any{"type": string(worker.LogInfo), "seq": from,
					"content": fmt.Sprintf("%d log entries were dropped before this point (the session's log store is full)", lost)}, nil) {
					return
				}
			}
			for _, e := range batch {
				m := e.ToMap()
				m["seq"] = e.Seq
				if !yield(m, nil) {
					return
				}
			}
			from = next
			if len(batch) > 0 {
				continue
			}
			select {
			case <-ended:
			case <-s.Done():
			default:
				select {
				case <-wait:
					continue
				case <-ended:
				case <-s.Done():
				case <-ctx.Done():
					return
				}
			}
			// The session is over: read what is left, then end.
			if rest, _, _ := store.Since(from, 1); len(rest) == 0 {
				return
			}
		}
	}, nil
}

// signals are the signals a caller may send with the signal extension:
// the ones apps handle to reload, dump state or interrupt work. SIGTERM
// and SIGKILL are stop's (which also cleans up), SIGSTOP would freeze the
// session out of its supervisor's reach.
var signalNames = []string{"SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"}

// Signal sends the named signal ("SIGUSR1" or "USR1", any case) to the
// session's app process (its main process, not its children).
func (w *Worker) Signal(ctx context.Context, sessionID, name string) error {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if !slices.Contains(signalNames, n) {
		return fmt.Errorf("%w: signal %q is not one of %s (use stop to end a session)", worker.ErrInvalidConfig, name, strings.Join(signalNames, ", "))
	}
	s, pid, err := w.liveProc(ctx, sessionID)
	if err != nil {
		return err
	}
	if pid == 0 || !s.Status().Active() {
		return fmt.Errorf("%w: session %s has no running process (status %s)", worker.ErrInvalidConfig, s.ID(), s.Status())
	}
	if err := sendSignal(pid, n); err != nil {
		return fmt.Errorf("signal %s to pid %d: %w", n, pid, err)
	}
	s.Log(worker.LogInfo, fmt.Sprintf("sent %s to the app (pid %d) on request of %s", n, pid, requester(ctx)))
	return nil
}

// requester names the caller for the session's log.
func requester(ctx context.Context) string {
	c, ok := worker.CallerFromContext(ctx)
	switch {
	case !ok:
		return "the worker"
	case c.Trusted:
		return "the apps controller"
	case c.UserID() != "":
		return "user " + c.UserID()
	}
	return "a client of " + c.Workspace
}
