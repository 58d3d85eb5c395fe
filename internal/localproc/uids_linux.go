//go:build linux

package localproc

import (
	"bufio"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// uidProcs lists the live (not zombie) processes whose real, effective or
// saved uid is uid. A zombie runs no code; its parent reaps it.
func uidProcs(uid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.Itoa(uid)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open("/proc/" + e.Name() + "/status")
		if err != nil {
			continue // gone meanwhile
		}
		match, zombie := false, false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				zombie = strings.HasPrefix(strings.TrimSpace(v), "Z")
			}
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				ids := strings.Fields(v)
				for i := 0; i < len(ids) && i < 3; i++ {
					if ids[i] == want {
						match = true
					}
				}
				break // Uid comes after State
			}
		}
		f.Close()
		if match && !zombie {
			out = append(out, pid)
		}
	}
	return out
}

// rangeProcUIDs lists the uids of [base, base+count) that live (not
// zombie) processes run as (real, effective or saved uid, as uidProcs).
func rangeProcUIDs(base, count int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	seen := map[int]bool{}
	var out []int
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue // gone meanwhile
		}
		zombie := false
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				zombie = strings.HasPrefix(strings.TrimSpace(v), "Z")
			}
			v, ok := strings.CutPrefix(line, "Uid:")
			if !ok {
				continue
			}
			ids := strings.Fields(v)
			for _, f := range ids[:min(len(ids), 3)] { // real, effective, saved: what signalUID reaches
				id, err := strconv.Atoi(f)
				if err == nil && !zombie && id >= base && id < base+count && !seen[id] {
					seen[id] = true
					out = append(out, id)
				}
			}
			break // Uid comes after State
		}
	}
	return out
}

// removeStaleWorkDirs removes the session working directories
// (hypha-app-*) in workDir that a uid matched by owned owns: left by a
// worker that died before it could remove them. It never follows a
// symbolic link. It returns how many it removed.
func removeStaleWorkDirs(workDir string, owned func(uid int) bool, log *slog.Logger) int {
	ents, err := os.ReadDir(workDir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "hypha-app-") {
			continue
		}
		p := workDir + "/" + e.Name()
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR || !owned(int(st.Uid)) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			log.Warn("could not remove the working directory of an app session of an earlier run", "path", p, "err", err.Error())
			continue
		}
		removed++
	}
	return removed
}

// signalUID sends sig to every process of uid at once: kill(-1, sig) from
// a thread that runs as uid reaches exactly the processes that uid may
// signal (those whose real or saved uid is uid), and the kernel does it
// under the lock that fork takes, so a process forking in a loop cannot
// outrun it. kill(-1) skips the caller's own process.
//
// The thread changes only its own credentials (a raw setresuid, not Go's
// all-threads one) and is never unlocked, so the runtime ends it with the
// goroutine: no other goroutine ever runs with those credentials. The main
// thread is never used: the runtime keeps it when its goroutine exits, and
// its credentials are those the kernel shows and checks for the whole
// process (a session could then signal the worker).
func signalUID(uid int, sig syscall.Signal) error {
	if uid <= 0 {
		return errors.New("refusing to signal the processes of uid <= 0")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if syscall.Gettid() == os.Getpid() {
			// On the main thread: keep it busy with this goroutine so
			// that the one below gets another thread.
			done := make(chan error, 1)
			go func() { done <- signalAsUID(uid, sig) }()
			err := <-done
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		errc <- signalAsUID(uid, sig)
	}()
	return <-errc
}

// signalAsUID locks its goroutine to a thread that is not the main one,
// drops that thread to uid and sends kill(-1, sig). It returns with the
// thread still locked, so the runtime discards the thread.
func signalAsUID(uid int, sig syscall.Signal) error {
	runtime.LockOSThread() // never unlocked: see signalUID
	if syscall.Gettid() == os.Getpid() {
		return errors.New("refusing to change the credentials of the main thread")
	}
	// While this thread runs as uid, a process of that uid must not be able
	// to ptrace it (the thread shares the worker's memory): the process is
	// made non-dumpable first, so attaching needs CAP_SYS_PTRACE. (The
	// kernel also does this on a uid change unless fs.suid_dumpable says
	// otherwise; this does not depend on that setting.)
	const prSetDumpable = 4
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(sysSetresuid, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return e
	}
	_, _, e := syscall.RawSyscall(syscall.SYS_KILL, ^uintptr(0), uintptr(sig), 0) // pid -1
	if e != 0 && e != syscall.ESRCH {                                             // ESRCH: none left
		return e
	}
	return nil
}

// The per-uid lock file: one open file description per Worker, with an
// open-file-description lock on the byte at offset uid for each leased
// uid. Workers of other processes on the host that use the same range
// (a server and a "hypha worker process", say) then never lease the same
// uid. The kernel drops the locks when the process dies.
const uidLockPath = "/run/hypha-app-uids.lock"

const (
	fOFDSetlk = 37 // F_OFD_SETLK, Linux 3.15
)

type uidLocker struct{ f *os.File }

func openUIDLocker(log *slog.Logger) uidLocker {
	f, err := os.OpenFile(uidLockPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		log.Warn("no lock file for app uids: workers of other processes on this host must use other --app-uids ranges",
			"path", uidLockPath, "err", err.Error())
		return uidLocker{}
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		log.Warn("the lock file for app uids is not a regular file: workers of other processes on this host must use other --app-uids ranges", "path", uidLockPath)
		return uidLocker{}
	}
	return uidLocker{f: f}
}

func (l uidLocker) lk(uid int, typ int16) bool {
	if l.f == nil {
		return true
	}
	fl := syscall.Flock_t{Type: typ, Whence: 0, Start: int64(uid), Len: 1}
	for {
		err := syscall.FcntlFlock(l.f.Fd(), fOFDSetlk, &fl)
		if err == syscall.EINTR {
			continue
		}
		return err == nil
	}
}

func (l uidLocker) tryLock(uid int) bool { return l.lk(uid, syscall.F_WRLCK) }
func (l uidLocker) unlock(uid int)       { l.lk(uid, syscall.F_UNLCK) }
func (l uidLocker) close() {
	if l.f != nil {
		l.f.Close()
	}
}

// perSessionUIDs: Linux has what the per-session uids need (/proc to find
// a uid's processes, kill(-1) to end them).
const perSessionUIDs = true

// sharedTempDirs are the folders every user may write to: a session can
// leave files there, outside its working directory, owned by its uid.
var sharedTempDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

// removeUIDFiles removes what processes of a uid matched by owned left in
// the shared temp folders (see sharedTempDirs), so that the next session
// that gets the uid, of any workspace, does not inherit them. It descends
// into world-writable folders owned by others (at most a few levels) and
// removes whole trees owned by a matched uid; it never follows symbolic
// links (os.RemoveAll does not either). It runs when no process of those
// uids is alive, so nothing it looks at can be swapped meanwhile by them,
// and the sticky bit of the shared folders keeps other users from
// replacing entries they do not own. It returns how many entries it
// removed.
func removeUIDFiles(owned func(uid int) bool, log *slog.Logger) int {
	const maxDepth = 3
	const maxEntries = 100000 // a bound on the walk of a crowded /tmp
	seen, removed := 0, 0
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			if seen++; seen > maxEntries {
				return
			}
			p := dir + "/" + e.Name()
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				continue
			}
			if owned(int(st.Uid)) {
				if err := os.RemoveAll(p); err != nil {
					log.Warn("could not remove a file an app session left behind", "path", p, "err", err.Error())
				} else {
					removed++
				}
				continue
			}
			// Only a folder anyone may write to can hold files of the uid.
			if st.Mode&syscall.S_IFMT == syscall.S_IFDIR && st.Mode&0o002 != 0 && depth < maxDepth {
				walk(p, depth+1)
			}
		}
	}
	for _, d := range sharedTempDirs {
		walk(d, 1)
	}
	return removed
}
