package localproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hypha-go/hypha/worker"
)

// ErrStopped: a session was stopped (Stop or Close) before its process
// started; Start refuses then.
var ErrStopped = errors.New("session stopped before the process started")

// Session is one session's processes and working directory. Make it with
// Runner.NewSession, fill Dir, Start one command, then either wait for
// Done or Stop it. A session that is never started must be Closed.
type Session struct {
	r     *Runner
	dir   string
	lock  *os.File  // flock on dir while the session lives (see lockWorkDir)
	lease *uidLease // the session's own uid; nil when sessions share a user
	user  runAs

	mu      sync.Mutex
	closed  bool // Close or Stop took over before a start
	started bool
	ch      child
	pid     int
	exit    Exit

	exited chan struct{} // the main process ended and the rest was killed
	done   chan struct{} // output drained, directory removed, uid returned
}

// Exit is how a session's main process ended.
type Exit struct {
	// Code is the exit code; -1 when it was killed by a signal or its end
	// could not be observed.
	Code int
	// Desc is "exited with code N", "ended: signal: killed", ...
	Desc string
	// Err is set when the end could not be observed (a supervisor that
	// died without a word, say).
	Err error
}

// NewSession leases the session's uid (with per-session uids) and creates
// its working directory (mode 0700, in WorkDir, named hypha-app-*),
// locked while the session lives. Errors about the uid range wrap
// worker.ErrWorkerNotAvailable.
func (r *Runner) NewSession() (*Session, error) {
	if !r.ready() {
		return nil, fmt.Errorf("%w: local process runner: Setup has not succeeded", worker.ErrWorkerNotAvailable)
	}
	s := &Session{r: r, user: r.user, exited: make(chan struct{}), done: make(chan struct{})}
	if r.uids != nil {
		lease, err := r.uids.lease()
		if err != nil {
			return nil, err
		}
		s.lease, s.user = lease, lease.runAs()
	}
	dir, err := os.MkdirTemp(r.workDir, "hypha-app-")
	if err != nil {
		s.release()
		return nil, fmt.Errorf("create working directory: %w", err)
	}
	s.dir = dir
	lock, err := lockWorkDir(dir)
	if err != nil {
		s.release()
		return nil, fmt.Errorf("lock working directory: %w", err)
	}
	s.lock = lock
	return s, nil
}

// Dir is the session's working directory. The worker writes the
// session's files there before Start; Start gives it to the session's
// user.
func (s *Session) Dir() string { return s.dir }

// User is who the session's processes run as.
func (s *Session) User() User { return s.user.export() }

// UID is the session's own uid, 0 when sessions share a user.
func (s *Session) UID() int {
	if s.lease == nil {
		return 0
	}
	return s.lease.uid
}

// PID is the main process's pid (leader of its own process group), 0
// before Start.
func (s *Session) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// release removes the directory and returns the uid of a session that
// has no process.
func (s *Session) release() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	if s.lock != nil {
		s.lock.Close()
	}
	if s.lease != nil {
		s.lease.end()
	}
}

// Close releases a session that was not started (its directory, its
// uid) and makes a later Start fail with ErrStopped. On a started session
// it does nothing: Stop ends it, or it ends by itself.
func (s *Session) Close() {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.release()
	close(s.exited)
	close(s.done)
}

// Command is what a session runs.
type Command struct {
	// Path is the program (absolute, or as exec.Cmd.Path takes it); Args
	// includes the program name as Args[0].
	Path string
	Args []string
	// Env is the whole environment: nothing of the worker's is added.
	Env []string
	// Logs receives stdout and stderr line by line (worker.LogStdout,
	// worker.LogStderr) and the runner's info entries. It must not be nil.
	Logs *worker.LogStore
	// LogContext bounds the waits of the output pumps for a follower that
	// is behind (see worker.LogStore.AppendWait): typically the session's
	// context, so that a stop ends the waiting. Nil means no bound.
	LogContext context.Context
	// TTY, when set, is the slave side of a pseudo-terminal: it becomes
	// the program's stdin, stdout and stderr and its controlling terminal
	// (the program leads a session of its own, which is also its process
	// group). The runner then reads no output: whoever holds the master
	// side does (the terminal worker). The caller closes its copy of TTY
	// once Start returned.
	TTY *os.File
	// Stdin, when set, is the program's stdin instead of /dev/null, and
	// Stdout, when set, its stdout instead of a pipe into Logs: the ends
	// of pipes the worker speaks a protocol over (the MCP proxy's stdio
	// servers). Stderr still goes to Logs. The caller closes its copies
	// once Start returned.
	Stdin, Stdout *os.File
	// LinePrefix is put before every output line in Logs (say "name: "
	// when one app runs several programs).
	LinePrefix string
}

// Start runs cmd in the session's working directory as the session's
// user, in its own process group, with stdin /dev/null (or cmd.Stdin) and only
// descriptors 0, 1 and 2. When sessions run as another user, the
// directory tree is given to that user first. It returns once the
// process runs; Done closes when it has ended, its output is in the logs
// and its directory is gone. Start is called once.
func (s *Session) Start(cmd Command) error {
	if cmd.Logs == nil {
		return errors.New("localproc: Command.Logs is nil")
	}
	if cmd.LogContext == nil {
		cmd.LogContext = context.Background()
	}
	if !supported {
		return fmt.Errorf("%w: process groups are not supported on this platform", worker.ErrWorkerNotAvailable)
	}
	if s.user.switchUser {
		// The session's user owns its working directory (0700) and
		// nobody else can read it. Nothing ran there yet: no link to
		// follow.
		if err := chownTree(s.dir, s.user); err != nil {
			return fmt.Errorf("give the working directory to %s: %w", s.user.name, err)
		}
	}
	if cmd.TTY != nil {
		return s.startTTY(cmd)
	}
	var outR, outW *os.File
	var err error
	if cmd.Stdout == nil {
		if outR, outW, err = os.Pipe(); err != nil {
			return fmt.Errorf("create pipe: %w", err)
		}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeFiles(outR, outW)
		return fmt.Errorf("create pipe: %w", err)
	}
	s.mu.Lock()
	if s.closed || s.started {
		s.mu.Unlock()
		closeFiles(outR, outW, errR, errW)
		if s.started {
			return errors.New("localproc: Start called twice")
		}
		return ErrStopped
	}
	closeInheritedFDs()
	out := outW
	if cmd.Stdout != nil {
		out = cmd.Stdout
	}
	ch, err := s.r.startChild(s, cmd, out, errW)
	if err == nil {
		s.started, s.ch, s.pid = true, ch, ch.pid()
	}
	s.mu.Unlock()
	closeFiles(outW, errW) // the child holds its own copies
	if err != nil {
		closeFiles(outR, errR)
		return fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	go s.monitor(ch, cmd, outR, errR)
	return nil
}

// startTTY is Start for a command on a pseudo-terminal.
func (s *Session) startTTY(cmd Command) error {
	if s.user.switchUser {
		// The terminal belongs to the session's user, as a login's does:
		// programs that open it by name (ttyname(0), /dev/tty users such
		// as less or ssh) can, and nobody else's can.
		if err := cmd.TTY.Chown(s.user.uid, s.user.gid); err != nil {
			return fmt.Errorf("give the terminal to %s: %w", s.user.name, err)
		}
	}
	s.mu.Lock()
	if s.closed || s.started {
		s.mu.Unlock()
		if s.started {
			return errors.New("localproc: Start called twice")
		}
		return ErrStopped
	}
	closeInheritedFDs()
	ch, err := s.r.startChild(s, cmd, nil, nil)
	if err == nil {
		s.started, s.ch, s.pid = true, ch, ch.pid()
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	go s.monitor(ch, cmd, nil, nil)
	return nil
}

// startChild starts the command: through a supervisor when the platform
// and the program allow it (see MaybeSupervise), otherwise directly.
func (r *Runner) startChild(s *Session, cmd Command, out, errw *os.File) (child, error) {
	uid := s.UID()
	u := s.user
	if r.Supervised() {
		cfg := supervisorConfig{
			Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: s.dir,
			SwitchUser: u.switchUser, UID: u.uid, GID: u.gid, KillUID: uid > 0,
			TTY: cmd.TTY != nil,
		}
		if !r.opts.NoPIDNamespace && !r.pidNSRefused.Load() {
			cfg.PIDNamespace = true
			ch, err := startSupervised(cfg, cmd.TTY, cmd.Stdin, out, errw, s.lock)
			if !errors.Is(err, errNamespaceRefused) {
				return ch, err
			}
			if r.pidNSRefused.CompareAndSwap(false, true) {
				r.opts.Logger.Warn("sessions run without a PID namespace of their own: an app of the worker's user can kill its supervisor, and a process it detaches then outlives the session",
					"error", err)
			}
			cfg.PIDNamespace = false
		}
		return startSupervised(cfg, cmd.TTY, cmd.Stdin, out, errw, s.lock)
	}
	if cmd.TTY != nil {
		return startDirect(&exec.Cmd{
			Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: s.dir,
			Stdin: cmd.TTY, Stdout: cmd.TTY, Stderr: cmd.TTY,
			SysProcAttr: ttyProcAttr(u),
		}, uid)
	}
	var stdin io.Reader // nil: /dev/null
	if cmd.Stdin != nil {
		stdin = cmd.Stdin
	}
	return startDirect(&exec.Cmd{
		Path:        cmd.Path,
		Args:        cmd.Args,
		Env:         cmd.Env,
		Dir:         s.dir,
		Stdin:       stdin,
		Stdout:      out,
		Stderr:      errw,
		SysProcAttr: sysProcAttr(u),
	}, uid)
}

// monitor waits for the process, kills whatever is left of its group (or
// subtree), drains the output and removes the working directory.
func (s *Session) monitor(ch child, cmd Command, outR, errR *os.File) {
	store := cmd.Logs
	var readers sync.WaitGroup
	var progress atomic.Int64
	if outR != nil {
		readers.Add(1)
		go func() { defer readers.Done(); s.r.pump(cmd, outR, worker.LogStdout, &progress) }()
	}
	if errR != nil {
		readers.Add(1)
		go func() { defer readers.Done(); s.r.pump(cmd, errR, worker.LogStderr, &progress) }()
	}

	// The child kills what the app left in its group (supervised: in its
	// whole subtree). With a uid of its own, every process of the session
	// goes, also those that left the group (setsid, double fork), and the
	// uid is free again.
	ex := ch.wait()
	if s.lease != nil {
		s.lease.end()
	}
	s.mu.Lock()
	s.exit = Exit{Code: ex.code, Desc: ex.desc, Err: ex.err}
	s.mu.Unlock()
	close(s.exited)

	// The pipes reach EOF when every holder is gone. A process that left the
	// group (setsid) may keep them open; do not wait for it forever. What
	// the app wrote before it ended is read to the end: the wait only gives
	// up after 2 s without a line while no reader waits for a follower.
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	tick := time.NewTicker(250 * time.Millisecond)
	last, idleSince := progress.Load(), time.Now()
drain:
	for {
		select {
		case <-drained:
			break drain
		case <-tick.C:
			if n := progress.Load(); n != last || store.Waiting() > 0 {
				last, idleSince = n, time.Now()
			} else if time.Since(idleSince) >= 2*time.Second {
				closeFiles(outR, errR)
				<-drained
				break drain
			}
		}
	}
	tick.Stop()
	closeFiles(outR, errR)

	if err := os.RemoveAll(s.dir); err != nil {
		store.Append(worker.LogError, "remove working directory: "+err.Error())
	}
	if s.lock != nil {
		s.lock.Close()
	}
	close(s.done)
}

// closeFiles closes the files that are not nil.
func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// Exited closes once the main process has ended and every other process
// of the session was killed (its uid, if its own, is free again).
func (s *Session) Exited() <-chan struct{} { return s.exited }

// Done closes once the session is over: Exited, the output read to the
// end (or given up on after 2 s of silence from a process that keeps the
// pipes open), and the working directory removed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Exit is how the main process ended; valid once Exited is closed.
func (s *Session) Exit() Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exit
}

// Terminate asks every process of the session to end (SIGTERM).
func (s *Session) Terminate() {
	if ch := s.child(); ch != nil {
		ch.terminate()
	}
}

// Kill ends every process of the session now (SIGKILL).
func (s *Session) Kill() {
	if ch := s.child(); ch != nil {
		ch.kill()
	}
}

func (s *Session) child() child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Stop ends the session: SIGTERM to every process of it, SIGKILL after
// Options.StopGrace (or at once when ctx ends), then it waits for Done.
// It logs each step into logs (may be nil). A session never started is
// Closed. Safe to call more than once and concurrently.
func (s *Session) Stop(ctx context.Context, logs *worker.LogStore) error {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		s.Close()
		return nil
	}
	ch := s.ch
	s.mu.Unlock()
	info := func(msg string) {
		if logs != nil {
			logs.Append(worker.LogInfo, msg)
		}
	}
	select {
	case <-s.exited:
	default:
		info("stopping: SIGTERM to the session's processes")
		ch.terminate()
		grace := time.NewTimer(s.r.opts.StopGrace)
		select {
		case <-s.exited:
		case <-grace.C:
			info(fmt.Sprintf("still running after %s: SIGKILL to the session's processes", s.r.opts.StopGrace))
		case <-ctx.Done():
			info("stop cancelled: SIGKILL to the session's processes")
		}
		grace.Stop()
		ch.kill()
	}
	// SIGKILL cannot be ignored; the wait below only guards against a
	// process stuck in the kernel (uninterruptible I/O).
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-s.done:
		return nil
	case <-t.C:
		return fmt.Errorf("process group %d did not end after SIGKILL", s.PID())
	}
}

// Wait waits until the session is Done and returns how its main process
// ended, or ctx's error.
func (s *Session) Wait(ctx context.Context) (Exit, error) {
	select {
	case <-s.done:
		return s.Exit(), nil
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
}

// pump reads one stream line by line into the logs, in order. A line
// longer than MaxLineBytes is split, never cut: its pieces are entries
// marked Partial (cut at a character boundary), and an info entry says so.
// It appends with AppendWait: while a live follower is behind and the
// store is full it stops reading, so the app blocks on its output instead
// of its lines being dropped. progress counts the entries appended.
func (r *Runner) pump(cmd Command, rd io.Reader, typ worker.LogType, progress *atomic.Int64) {
	store, ctx := cmd.Logs, cmd.LogContext
	br := bufio.NewReaderSize(rd, r.opts.MaxLineBytes)
	var carry []byte     // the start of a character cut by a split
	pieces, size := 0, 0 // of the line being split
	lineCap := r.opts.MaxLineBytes
	emit := func(text string, partial bool) {
		store.AppendWait(ctx, typ, cmd.LinePrefix+text, partial)
		progress.Add(1)
	}
	for {
		line, err := br.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		data := line
		if len(carry) > 0 {
			data = append(carry, line...)
			carry = nil
		}
		if !full {
			data = bytes.TrimRight(data, "\r\n")
		}
		for len(data) > lineCap {
			cut := splitPoint(data[:lineCap])
			emit(strings.ToValidUTF8(string(data[:cut]), "\uFFFD"), true)
			pieces++
			size += cut
			data = data[cut:]
		}
		switch {
		case full:
			carry = append([]byte(nil), data...) // ReadSlice reuses its buffer
		case len(line) > 0 || pieces > 0 || len(data) > 0:
			size += len(data)
			emit(strings.ToValidUTF8(string(data), "\uFFFD"), false)
			if pieces > 0 {
				store.Append(worker.LogInfo, fmt.Sprintf("a %s line of %d bytes was longer than the line cap (%d bytes): it is split into %d entries",
					typ, size, lineCap, pieces+1))
			}
			pieces, size = 0, 0
		}
		if err != nil && !full {
			return
		}
	}
}

// splitPoint returns where to cut b so that no UTF-8 character is split:
// before a trailing incomplete character, else at the end.
func splitPoint(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) && i > 0 {
				return i
			}
			break
		}
	}
	return len(b)
}

// chownTree gives every entry under dir to u, never following a link.
func chownTree(dir string, u runAs) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
}
