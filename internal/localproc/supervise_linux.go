//go:build linux

package localproc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// canSupervise: the supervisor needs child subreapers (Linux 3.4) and
// /proc.
const canSupervise = true

const (
	prSetChildSubreaper = 36
	prSetDumpable       = 4
)

// errNamespaceRefused: the system would not give the supervisor a PID
// namespace (user namespaces disabled, a container's seccomp profile, the
// namespace limits): the caller starts it without one.
var errNamespaceRefused = errors.New("the system refused a PID namespace for the session supervisor")

// startSupervised starts a supervisor (this binary, re-executed) that
// starts the app described by cfg. out and errw become the app's stdout
// and stderr (the supervisor passes them straight through). It returns
// once the app runs, or with the reason it could not start. The
// supervisor also holds dirLock (see lockWorkDir) until it ends. stdin,
// when not nil, is the app's stdin (else /dev/null). With tty (cfg.TTY),
// tty is the app's stdin, stdout and stderr instead.
func startSupervised(cfg supervisorConfig, tty, stdin, out, errw, dirLock *os.File) (child, error) {
	var pipes []*os.File
	closeAll := func() {
		for _, f := range pipes {
			f.Close()
		}
	}
	for range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("create pipe: %w", err)
		}
		pipes = append(pipes, r, w)
	}
	cfgR, cfgW, stR, stW, lifeR, lifeW := pipes[0], pipes[1], pipes[2], pipes[3], pipes[4], pipes[5]
	attr := &syscall.SysProcAttr{
		// Its own process group: a terminal's Ctrl-C reaches the worker,
		// which stops its sessions, not the supervisor.
		Setpgid: true,
	}
	args := []string{"hypha-supervisor", SupervisorArg}
	if cfg.PIDNamespace {
		if uid, gid := os.Geteuid(), os.Getegid(); uid == 0 {
			attr.Cloneflags = syscall.CLONE_NEWPID
		} else {
			// Without root, a PID namespace needs a user namespace, whose
			// id maps the parent must write into the child's /proc files.
			// This worker is non-dumpable (those files of its forks then
			// belong to root), so a fresh process of this binary, which
			// holds nothing secret yet, starts the supervisor (outerMain).
			args = append(args, outerArg, fmt.Sprintf("%d:%d", uid, gid))
		}
	}
	cmd := &exec.Cmd{
		// The running binary, even if replaced on disk since.
		Path: "/proc/self/exe",
		Args: args,
		Env:  []string{}, // nothing of the worker's: the app's env travels in cfg
		Dir:  "/",
		// Stdin nil: /dev/null (or stdin, below), passed on to the app.
		Stdout:      out,
		Stderr:      errw,
		ExtraFiles:  []*os.File{cfgR, stW, dirLock, lifeR},
		SysProcAttr: attr,
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	}
	err := startCmd(cmd) // see spawn.go
	cfgR.Close()
	stW.Close()
	lifeR.Close()
	if err != nil {
		cfgW.Close()
		stR.Close()
		lifeW.Close()
		if cfg.PIDNamespace && namespaceRefusal(err) {
			return nil, fmt.Errorf("%w: %w", errNamespaceRefused, err)
		}
		return nil, fmt.Errorf("start the session supervisor: %w", err)
	}
	c := &supervisedChild{cmd: cmd, status: bufio.NewReader(stR), statusFile: stR, lifeline: lifeW, pidNS: cfg.PIDNamespace}
	// The config can exceed a pipe's buffer: the supervisor reads it all
	// before it answers.
	err = json.NewEncoder(cfgW).Encode(cfg)
	cfgW.Close()
	line, rerr := c.status.ReadString('\n')
	switch {
	case strings.HasPrefix(line, "pid "):
		c.appPID, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
		if c.appPID > 0 {
			return c, nil
		}
	case strings.HasPrefix(line, "error "):
		err = errors.New(strings.TrimSpace(strings.TrimPrefix(line, "error ")))
	case strings.HasPrefix(line, "nsrefused "):
		err = fmt.Errorf("%w: %s", errNamespaceRefused, strings.TrimSpace(strings.TrimPrefix(line, "nsrefused ")))
	case err == nil && rerr != nil:
		err = fmt.Errorf("the session supervisor ended before it started the app: %w", rerr)
	}
	if err == nil {
		err = fmt.Errorf("the session supervisor said %q", line)
	}
	_ = cmd.Process.Signal(supKill)
	_ = cmd.Wait()
	stR.Close()
	lifeW.Close()
	return nil, err
}

// namespaceRefusal tells whether a failed start of a supervisor in a PID
// namespace is the system refusing the namespace (clone or the id maps).
func namespaceRefusal(err error) bool {
	for _, e := range []error{syscall.EPERM, syscall.EINVAL, syscall.ENOSPC, syscall.EUSERS, syscall.EACCES, syscall.ENOSYS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// supervisedChild is an app started through a supervisor.
type supervisedChild struct {
	cmd        *exec.Cmd // the supervisor
	appPID     int       // as this worker sees it
	status     *bufio.Reader
	statusFile *os.File
	lifeline   *os.File // closed when the supervisor is waited for, or with the worker
	pidNS      bool     // the supervisor is the init of the session's PID namespace
}

func (c *supervisedChild) pid() int   { return c.appPID }
func (c *supervisedChild) terminate() { _ = c.cmd.Process.Signal(supStop) }
func (c *supervisedChild) kill()      { _ = c.cmd.Process.Signal(supKill) }

func (c *supervisedChild) wait() appExit {
	// The supervisor reports the app's end, then kills its subtree and
	// exits; its own exit comes last.
	rest, _ := io.ReadAll(io.LimitReader(c.status, 4096))
	werr := c.cmd.Wait()
	c.statusFile.Close()
	c.lifeline.Close()
	var code, sig int
	if _, err := fmt.Sscanf(string(rest), "exit %d %d", &code, &sig); err == nil {
		if sig > 0 {
			return appExit{code: -1, desc: "ended: signal: " + syscall.Signal(sig).String()}
		}
		return appExit{code: code, desc: fmt.Sprintf("exited with code %d", code)}
	}
	// The supervisor died without a word (killed by someone who may). In
	// a PID namespace the kernel killed every process of it with its
	// init; otherwise the app got SIGKILL through its own parent-death
	// signal: kill what is left of its group.
	if !c.pidNS {
		_ = signalGroup(c.appPID, sigKill)
	}
	err := fmt.Errorf("session supervisor %s", describeExit(c.cmd.ProcessState, werr))
	return appExit{code: -1, desc: err.Error(), err: err}
}

// superviseMain is the supervisor's main: it returns the exit code.
//
// It runs as the worker's user (root when sessions have uids of their
// own: it must be able to kill their processes and remove their working
// directory). It is non-dumpable, so an app of another uid cannot trace
// it or read its memory, and it reads nothing from the app: it only waits
// for processes and signals them.
func superviseMain() int {
	// The app's parent-death signal fires when the forking thread ends:
	// fork from the main thread, which lives as long as the process.
	runtime.LockOSThread()
	for _, fd := range []int{3, 4, 6} { // 5, the lock on the working directory, may be absent
		if !fdOpen(fd) {
			fmt.Fprintf(os.Stderr, "%s is the process worker's session supervisor, started by the worker with descriptors 3, 4 and 6; it is not run by hand (descriptor %d is not open)\n", SupervisorArg, fd)
			return 2
		}
	}
	if len(os.Args) == 4 && os.Args[2] == outerArg {
		return outerMain(os.Args[3])
	}
	statusW := os.NewFile(4, "status")
	say := func(format string, a ...any) {
		if statusW != nil {
			fmt.Fprintf(statusW, format+"\n", a...)
		}
	}
	fail := func(err error) int {
		say("error %s", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	// Nothing but 0, 1 and 2 reaches the app: 3 to 7 are the supervisor's
	// (5, the lock on the working directory, is kept open, not passed
	// on), and a descriptor the worker inherited without close-on-exec
	// from whoever started it must not leak through.
	closeOnExecAbove(2)
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); e != 0 {
		return fail(fmt.Errorf("session supervisor: make non-dumpable: %w", e))
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return fail(fmt.Errorf("session supervisor: become a child subreaper: %w", e))
	}
	sigc := make(chan os.Signal, 64)
	// SIGHUP is caught only to be ignored: an app of the same user (no
	// PID namespace) could send it.
	signal.Notify(sigc, supStop, supKill, syscall.SIGHUP, syscall.SIGCHLD)
	// The worker never writes to the lifeline: the read returns when its
	// last write end closes, that is when the worker is gone. Started by
	// outerMain, a second lifeline (7) ends with that process.
	workerGone := make(chan struct{})
	var goneOnce sync.Once
	lifelines := []int{6}
	if len(os.Args) == 3 && os.Args[2] == outerLifelineArg {
		// Named, not probed: descriptor 7 may be anything otherwise.
		lifelines = append(lifelines, 7)
	}
	for _, fd := range lifelines {
		syscall.CloseOnExec(fd)
		go func() {
			var b [1]byte
			_, _ = os.NewFile(uintptr(fd), "lifeline").Read(b[:])
			goneOnce.Do(func() { close(workerGone) })
		}()
	}
	var cfg supervisorConfig
	cfgFile := os.NewFile(3, "config")
	derr := json.NewDecoder(io.LimitReader(cfgFile, 64<<20)).Decode(&cfg)
	cfgFile.Close()
	if derr != nil {
		return fail(fmt.Errorf("session supervisor: read config: %w", derr))
	}
	select {
	case <-workerGone:
		return fail(errors.New("session supervisor: the worker is gone"))
	default:
	}
	if cfg.PIDNamespace && os.Getpid() != 1 {
		return fail(errors.New("session supervisor: not the first process of a PID namespace"))
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cfg.TTY {
		// A session of its own with descriptor 0 as its controlling
		// terminal; its group is the session's (pgid = pid), so the
		// group signals below reach it as before.
		attr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	}
	if cfg.SwitchUser {
		attr.Credential = &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}}
	}
	appPID, err := syscall.ForkExec(cfg.Path, cfg.Args, &syscall.ProcAttr{
		Dir: cfg.Dir, Env: cfg.Env, Files: []uintptr{0, 1, 2}, Sys: attr,
	})
	if err != nil {
		return fail(&os.PathError{Op: "fork/exec", Path: cfg.Path, Err: err})
	}
	shownPID := appPID
	if cfg.PIDNamespace {
		// The worker sees the app by its pid outside the namespace: /proc
		// is the worker's, and there the app is the child of the forking
		// thread whose innermost pid is appPID (not yet reaped, so still
		// there; a process it left may already be reparented here too).
		if shownPID = outerPID(appPID); shownPID <= 0 {
			_ = syscall.Kill(appPID, syscall.SIGKILL)
			return fail(fmt.Errorf("session supervisor: cannot tell the app's pid outside its namespace (children %v)", childrenOfThread()))
		}
	}
	say("pid %d", shownPID)

	s := &supervisor{cfg: cfg, appPID: appPID}
	parentGone := false
wait:
	for !s.appDone {
		select {
		case sig := <-sigc:
			switch sig {
			case syscall.SIGCHLD:
				s.reap()
			case supStop:
				s.signalAll(syscall.SIGTERM)
			case supKill:
				break wait
			}
		case <-workerGone:
			parentGone = true
			break wait
		}
	}
	left := s.killAll()
	if parentGone && cfg.Dir != "" {
		// Nobody else will: the worker is gone.
		_ = os.RemoveAll(cfg.Dir)
	}
	if !s.appDone {
		// Killed above and reaped by killAll, unless it is stuck.
		say("exit -1 %d", int(syscall.SIGKILL))
	} else if s.appStatus.Signaled() {
		say("exit -1 %d", int(s.appStatus.Signal()))
	} else {
		say("exit %d 0", s.appStatus.ExitStatus())
	}
	if left > 0 {
		fmt.Fprintf(os.Stderr, "[hypha supervisor] %d process(es) of the session did not die after SIGKILL\n", left)
		return 2
	}
	return 0
}

// outerArg makes the supervisor an outer one (outerMain), followed by
// "UID:GID".
const outerArg = "outer"

// outerLifelineArg tells a supervisor started by outerMain that descriptor
// 7 is that process's lifeline.
const outerLifelineArg = "outer-lifeline"

// closeOnExecAbove marks every open descriptor above fd close-on-exec.
func closeOnExecAbove(fd int) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		for i := fd + 1; i < 1024; i++ {
			syscall.CloseOnExec(i)
		}
		return
	}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > fd {
			syscall.CloseOnExec(n)
		}
	}
}

// fdOpen tells whether descriptor fd is open.
func fdOpen(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil
}

// outerMain starts the supervisor of a non-root worker in a user and PID
// namespace of its own, then relays the worker's signals to it and ends
// with it. It runs freshly executed, so it is dumpable (the parent of a
// user namespace must write the child's id maps, files that belong to
// root when the parent is non-dumpable) and holds nothing secret: it
// never reads the config (descriptor 3), which it passes on unread with
// the others. Once the supervisor runs it becomes non-dumpable too. Its
// end (killed, say) ends the session: the supervisor watches a lifeline
// of it (descriptor 7) as it watches the worker's.
func outerMain(ids string) int {
	statusW := os.NewFile(4, "status")
	var uid, gid int
	if _, err := fmt.Sscanf(ids, "%d:%d", &uid, &gid); err != nil || uid <= 0 || gid < 0 {
		fmt.Fprintf(statusW, "error session supervisor: bad ids %q\n", ids)
		return 1
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(statusW, "error session supervisor: create pipe: %v\n", err)
		return 1
	}
	files := []*os.File{os.NewFile(3, "config"), statusW, nil, os.NewFile(6, "lifeline"), lifeR}
	if fdOpen(5) {
		files[2] = os.NewFile(5, "lock")
	}
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, supStop, supKill, syscall.SIGHUP)
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{"hypha-supervisor", SupervisorArg, outerLifelineArg},
		Env:        []string{},
		Dir:        "/",
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
			// The worker's own uid and gid and nothing else: nobody gains
			// a privilege anywhere.
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
			GidMappingsEnableSetgroups: false,
		},
	}
	startErr := cmd.Start()
	for _, f := range files {
		if f != nil && f != statusW {
			f.Close()
		}
	}
	if startErr != nil {
		// The system refused the namespaces: the worker starts the
		// supervisor without them.
		fmt.Fprintf(statusW, "nsrefused %s\n", strings.ReplaceAll(startErr.Error(), "\n", " "))
		return 1
	}
	statusW.Close()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); e != 0 {
		fmt.Fprintf(os.Stderr, "[hypha supervisor] make non-dumpable: %v\n", e)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigc:
				if sig != syscall.SIGHUP {
					// The supervisor is the init of its namespace: it
					// gets the signals it handles, these among them.
					_ = cmd.Process.Signal(sig)
				}
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	lifeW.Close()
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() >= 0 {
		return cmd.ProcessState.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "[hypha supervisor] the session supervisor %v\n", err)
	return 1
}

type supervisor struct {
	cfg       supervisorConfig
	appPID    int
	appDone   bool
	appStatus syscall.WaitStatus
}

// reap collects every child that ended: the app and the orphans
// reparented to the supervisor.
func (s *supervisor) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if pid == s.appPID {
			s.appDone, s.appStatus = true, ws
		}
	}
}

// signalAll signals the app's process group, every descendant of the
// supervisor and, with a uid of the session's own, every process of that
// uid. It returns how many descendants it found, zombies included.
func (s *supervisor) signalAll(sig syscall.Signal) int {
	if s.cfg.PIDNamespace {
		// Every process of the namespace but its init (the supervisor),
		// and only those: -1 cannot reach beyond the namespace. The
		// subtree scan below must not run here: /proc is the worker's,
		// where pid 1 is the host's init. A zombie can be signalled too,
		// so nothing left means nothing left to reap either.
		if err := syscall.Kill(-1, sig); err == syscall.ESRCH {
			return 0
		}
		return 1
	}
	if !s.appDone {
		// The group cannot be reused while its leader is unreaped.
		_ = syscall.Kill(-s.appPID, sig)
	}
	if s.cfg.KillUID && s.cfg.UID > 0 {
		_ = signalUID(s.cfg.UID, sig)
	}
	// A pid found here is a live process or an unreaped zombie of the
	// subtree: it cannot be reused before its parent (the subtree or the
	// supervisor) reaps it, which needs the parent to run on, which it
	// rarely does between the scan and the kill.
	d, all := descendants(os.Getpid())
	for _, p := range d {
		_ = syscall.Kill(p, sig)
	}
	return all
}

// killAll kills the whole subtree until nothing of it is left and reaps
// it. Processes forking meanwhile are found by a later pass: they are
// descendants too. A pass reads the children of each process one after
// the other, so it can miss a process that is being reparented to the
// supervisor meanwhile; but the kernel reparents a dying process's
// children before it shows as a zombie, so once a pass finds nothing at
// all, not even a zombie, nothing is left; a second such pass confirms
// it. It returns how many processes survived a generous bound (stuck in
// the kernel).
func (s *supervisor) killAll() int {
	deadline := time.Now().Add(30 * time.Second)
	empty := 0
	for i := 0; ; i++ {
		n := s.signalAll(syscall.SIGKILL)
		s.reap()
		if n > 0 {
			empty = 0
		} else if empty++; empty == 2 {
			return 0
		}
		if time.Now().After(deadline) {
			return n
		}
		if n > 0 {
			time.Sleep(min(time.Millisecond<<min(i, 6), 50*time.Millisecond))
		}
	}
}

// descendants lists the live (not zombie) processes below pid, and counts
// all of them, zombies included. It follows
// /proc/<pid>/task/<tid>/children down the subtree, which costs in
// proportion to the subtree; without those files (a kernel without
// CONFIG_PROC_CHILDREN) it scans the parent links of every process.
func descendants(pid int) (live []int, all int) {
	if _, err := os.Stat("/proc/thread-self/children"); err != nil {
		return descendantsByScan(pid)
	}
	var out []int
	seen := map[int]bool{pid: true}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range childrenOf(p) {
			if seen[k] {
				continue
			}
			seen[k] = true
			queue = append(queue, k)
			all++
			if st, ok := statOf(k); ok && st.state != 'Z' {
				out = append(out, k)
			}
		}
	}
	return out, all
}

// outerPID finds, among the children of the calling thread, the one whose
// pid in its innermost namespace is inner, and returns its pid as /proc
// numbers it (0 when none is). Without NSpid lines (kernels before 4.1)
// an only child is taken.
func outerPID(inner int) int {
	kids := childrenOfThread()
	for _, k := range kids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(k) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "NSpid:" {
				continue
			}
			if f[len(f)-1] == strconv.Itoa(inner) {
				return k
			}
			break
		}
		if !strings.Contains(string(b), "\nNSpid:") && len(kids) == 1 {
			return k
		}
	}
	return 0
}

// childrenOfThread lists the children of the calling thread, as the
// mounted /proc numbers them.
func childrenOfThread() []int {
	b, err := os.ReadFile("/proc/thread-self/children")
	if err != nil {
		// No children files: the processes whose parent is this one (the
		// supervisor forks from one thread only).
		self, err := os.Readlink("/proc/self")
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(self)
		if err != nil {
			return nil
		}
		live, _ := descendantsByScan(pid)
		var kids []int
		for _, k := range live {
			if st, ok := statOf(k); ok && st.ppid == pid {
				kids = append(kids, k)
			}
		}
		return kids
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if k, err := strconv.Atoi(f); err == nil {
			out = append(out, k)
		}
	}
	return out
}

// childrenOf lists the children of every thread of pid.
func childrenOf(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil // gone meanwhile
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(f); err == nil {
				out = append(out, k)
			}
		}
	}
	return out
}

type stat struct {
	ppid  int
	state byte
}

// statOf reads the state and parent of a process from /proc/<pid>/stat.
func statOf(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	st := string(b)
	i := strings.LastIndexByte(st, ')')
	if i < 0 || i+2 >= len(st) {
		return stat{}, false
	}
	f := strings.Fields(st[i+2:])
	if len(f) < 2 {
		return stat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return stat{ppid: ppid, state: f[0][0]}, true
}

// descendantsByScan is descendants through the parent links of every
// process in /proc.
func descendantsByScan(pid int) (live []int, all int) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, 0
	}
	kids := map[int][]int{}
	zombie := map[int]bool{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := statOf(p)
		if !ok {
			continue // gone meanwhile
		}
		kids[st.ppid] = append(kids[st.ppid], p)
		zombie[p] = st.state == 'Z'
	}
	var out []int
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			if seen[k] {
				continue
			}
			seen[k] = true
			queue = append(queue, k)
			all++
			if !zombie[k] {
				out = append(out, k)
			}
		}
	}
	return out, all
}
