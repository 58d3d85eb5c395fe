package localproc

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/worker"
)

// The default range of per-session app uids: 65536 ids from 2,000,000,000.
// No passwd entry is needed to run as a uid. The range is above the ids
// of accounts (UID_MAX 60000), of systemd's dynamic users (61184-65519),
// of the usual subordinate ids for user namespaces (login.defs SUB_UID_MIN
// 100000 to SUB_UID_MAX 600100000) and of systemd-nspawn's container
// ranges (524288-1879048191), and below 2^31, where tools that keep a uid
// in a signed 32-bit integer go wrong, and systemd's foreign range
// (2147352576 and up). The worker refuses a range that overlaps a user or
// group of /etc/passwd or /etc/group or a range of /etc/subuid or
// /etc/subgid.
const (
	DefaultAppUIDBase  = 2_000_000_000
	DefaultAppUIDCount = 65536
	maxUID             = 1<<32 - 2 // (uid_t)-1 means "unchanged"
)

// ErrAppUIDs marks a bad per-session uid range.
var ErrAppUIDs = errors.New("bad app uid range")

// ParseUIDRange parses "START-END" (inclusive) or "START+COUNT".
func ParseUIDRange(s string) (base, count int, err error) {
	bad := func(why string) (int, int, error) {
		return 0, 0, fmt.Errorf("%w: %q %s (want START-END, e.g. %d-%d)", ErrAppUIDs, s, why,
			DefaultAppUIDBase, DefaultAppUIDBase+DefaultAppUIDCount-1)
	}
	s = strings.TrimSpace(s)
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
		hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
		if err1 != nil || err2 != nil {
			return bad("is not two numbers")
		}
		if hi < lo {
			return bad("ends before it starts")
		}
		if hi > maxUID || hi-lo+1 > 1<<31-1 {
			return bad(fmt.Sprintf("goes past the largest uid %d", int64(maxUID)))
		}
		base, count = int(lo), int(hi-lo+1)
	} else if a, b, ok := strings.Cut(s, "+"); ok {
		lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
		n, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
		if err1 != nil || err2 != nil {
			return bad("is not two numbers")
		}
		base, count = int(lo), int(n)
	} else {
		return bad("is not a range")
	}
	if err := checkUIDRange(base, count); err != nil {
		return 0, 0, err
	}
	return base, count, nil
}

func checkUIDRange(base, count int) error {
	switch {
	case count <= 0:
		return fmt.Errorf("%w: the range %d+%d is empty", ErrAppUIDs, base, count)
	case base < 1000:
		return fmt.Errorf("%w: the range starts at %d, among the system accounts (start at 1000 or more; default %d)", ErrAppUIDs, base, DefaultAppUIDBase)
	case int64(base)+int64(count)-1 > maxUID:
		return fmt.Errorf("%w: the range %d-%d goes past the largest uid %d", ErrAppUIDs, base, int64(base)+int64(count)-1, int64(maxUID))
	}
	return nil
}

// rangeName renders a range, e.g. "2000000000-2000065535".
func rangeName(base, count int) string { return fmt.Sprintf("%d-%d", base, base+count-1) }

// checkUIDRangeFree refuses a range that holds an account or group of the
// host, or part of a subordinate id range (user namespaces): the worker
// kills every process of a uid it hands out, and a session must not get
// the files of an existing account.
func checkUIDRangeFree(base, count int) error {
	in := func(id int) bool { return id >= base && id < base+count }
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		err := scanLines(f, func(line string) error {
			fs := strings.Split(line, ":")
			if len(fs) < 3 {
				return nil
			}
			if id, err := strconv.Atoi(fs[2]); err == nil && in(id) {
				return fmt.Errorf("%w: %s has %q with id %d inside the app uid range %s; choose another --app-uids (HYPHA_APP_UIDS)",
					ErrAppUIDs, f, fs[0], id, rangeName(base, count))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		err := scanLines(f, func(line string) error {
			fs := strings.Split(line, ":")
			if len(fs) != 3 {
				return nil
			}
			lo, err1 := strconv.Atoi(fs[1])
			n, err2 := strconv.Atoi(fs[2])
			if err1 != nil || err2 != nil || n <= 0 {
				return nil
			}
			if lo < base+count && base < lo+n {
				return fmt.Errorf("%w: %s gives %q the ids %s, which overlap the app uid range %s; choose another --app-uids (HYPHA_APP_UIDS)",
					ErrAppUIDs, f, fs[0], rangeName(lo, n), rangeName(base, count))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scanLines calls fn on each non-comment line of a file; a missing file
// has no lines.
func scanLines(path string, fn func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("%w: read %s: %v", ErrAppUIDs, path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

// leasedUIDs are the uids held by a live session of any Worker of this
// process, and next the offset of the next candidate by range start
// (shared, so that a new Worker does not reuse the uids an old one just
// returned). Workers of other processes on the host are kept apart by a
// lock file (see uidLocker) and by the check for running processes.
var leasedUIDs = struct {
	sync.Mutex
	m    map[int]bool
	next map[int]int
}{m: map[int]bool{}, next: map[int]int{}}

// uidPool hands out the uids of one range, round robin so that a uid is
// reused as late as possible.
type uidPool struct {
	base, count int
	log         *slog.Logger
	lock        uidLocker
}

// uidLease is one session's uid. end releases it once.
type uidLease struct {
	pool *uidPool
	uid  int
	once sync.Once
}

func newUIDPool(base, count int, workDir string, log *slog.Logger) *uidPool {
	p := &uidPool{base: base, count: count, log: log}
	p.lock = openUIDLocker(log)
	// A worker (or the server) killed with SIGKILL leaves the processes of
	// its sessions running, children that left the group included, and
	// their working directories. Their uids are free now (the kernel
	// dropped the dead worker's locks): end those processes before
	// anything else, so that no session outlives its worker for longer
	// than it takes a new one to start.
	if n := p.killOrphans(); n > 0 {
		log.Warn("killed the processes that app sessions of an earlier run left behind", "processes", n)
	}
	// Files left in the shared temp folders by sessions of an earlier run
	// (a worker that died or was restarted) go before any uid is handed
	// out; uids that a live worker of another process holds are kept.
	n := removeUIDFiles(p.orphaned, log)
	if n > 0 {
		log.Info("removed what earlier app sessions left in the shared temp folders", "entries", n)
	}
	if n := removeStaleWorkDirs(workDir, p.orphaned, log); n > 0 {
		log.Info("removed the working directories of app sessions of an earlier run", "dir", workDir, "entries", n)
	}
	return p
}

// orphaned reports whether uid is of the range and no live worker holds
// it: no session of this process, and no worker of another process (its
// lock is free).
func (p *uidPool) orphaned(uid int) bool {
	if uid < p.base || uid >= p.base+p.count || !p.lock.tryLock(uid) {
		return false
	}
	leasedUIDs.Lock()
	ours := leasedUIDs.m[uid]
	leasedUIDs.Unlock()
	p.lock.unlock(uid)
	return !ours
}

// killOrphans kills every process that runs as a uid of the range that no
// live worker holds, and waits (10 s at most per uid) until they are gone.
// It holds the uid's lock meanwhile, so that no worker leases the uid and
// starts a session on it in between. It returns how many processes it
// found.
func (p *uidPool) killOrphans() int {
	found := 0
	for _, uid := range rangeProcUIDs(p.base, p.count) {
		leasedUIDs.Lock()
		if leasedUIDs.m[uid] || !p.lock.tryLock(uid) {
			leasedUIDs.Unlock()
			continue // a live session's
		}
		pids := uidProcs(uid)
		if len(pids) == 0 { // gone meanwhile
			p.lock.unlock(uid)
			leasedUIDs.Unlock()
			continue
		}
		found += len(pids)
		p.log.Warn("processes of an app uid no live worker holds (a worker that died): killing them", "uid", uid, "pids", pids)
		deadline := time.Now().Add(10 * time.Second)
		for len(pids) > 0 {
			_ = signalUID(uid, sigKill)
			if pids = uidProcs(uid); len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				p.log.Error("processes of an app uid do not die after SIGKILL: the uid stays unused while they run", "uid", uid, "pids", pids)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		p.lock.unlock(uid)
		leasedUIDs.Unlock()
	}
	return found
}

// lease gives a uid that no live session holds and no process runs as.
// A uid that still has processes but no session (left by a worker that
// died) is cleared for a later lease and skipped this time.
func (p *uidPool) lease() (*uidLease, error) {
	leasedUIDs.Lock()
	defer leasedUIDs.Unlock()
	busy := 0
	next := leasedUIDs.next[p.base]
	for i := 0; i < p.count; i++ {
		off := (next + i) % p.count
		uid := p.base + off
		if leasedUIDs.m[uid] {
			continue
		}
		if !p.lock.tryLock(uid) {
			busy++ // held by a worker of another process
			continue
		}
		if pids := uidProcs(uid); len(pids) > 0 {
			p.log.Warn("processes of a free app uid are still running (left by an ended session or a worker that died): killing them and using another uid",
				"uid", uid, "pids", pids)
			_ = signalUID(uid, sigKill)
			p.lock.unlock(uid)
			busy++
			continue
		}
		leasedUIDs.m[uid] = true
		leasedUIDs.next[p.base] = (off + 1) % p.count
		return &uidLease{pool: p, uid: uid}, nil
	}
	return nil, fmt.Errorf("%w: no free app uid: all %d uids of the range %s are held by live sessions or still have processes (%d); widen --app-uids (HYPHA_APP_UIDS) or lower --max-sessions",
		worker.ErrWorkerNotAvailable, p.count, rangeName(p.base, p.count), busy)
}

// end kills every process left with the lease's uid (setsid or
// double-forked escapees of the session included), waits until they are
// gone and returns the uid. A uid whose processes do not go (stuck in the
// kernel) is returned anyway: lease skips a uid while it has processes.
func (l *uidLease) end() {
	l.once.Do(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_ = signalUID(l.uid, sigKill)
			pids := uidProcs(l.uid)
			if len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				l.pool.log.Error("processes of an ended session do not die after SIGKILL: its uid stays unused while they run", "uid", l.uid, "pids", pids)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Files the session left in the shared temp folders would be the
		// next holder's of this uid, maybe another workspace's.
		if n := removeUIDFiles(func(uid int) bool { return uid == l.uid }, l.pool.log); n > 0 {
			l.pool.log.Info("removed what an ended session left in the shared temp folders", "uid", l.uid, "entries", n)
		}
		l.pool.lock.unlock(l.uid)
		leasedUIDs.Lock()
		delete(leasedUIDs.m, l.uid)
		leasedUIDs.Unlock()
	})
}

func (l *uidLease) runAs() runAs {
	return runAs{switchUser: true, uid: l.uid, gid: l.uid, name: fmt.Sprintf("uid %d (this session's own)", l.uid)}
}

func (p *uidPool) close() { p.lock.close() }

// UIDProcesses lists the live (not zombie) processes whose real,
// effective or saved uid is uid (none outside Linux). Tests and
// diagnostics use it to check that a session left nothing behind.
func UIDProcesses(uid int) []int { return uidProcs(uid) }

// KillUID sends SIGKILL to every process of uid (a uid of a session's own,
// never 0). Outside Linux it fails.
func KillUID(uid int) error { return signalUID(uid, sigKill) }
