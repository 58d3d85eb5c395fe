package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"

	"github.com/hypha-go/hypha/internal/testserver"
)

func TestParseUIDRange(t *testing.T) {
	for _, c := range []struct {
		in          string
		base, count int
		err         string
	}{
		{in: "2000000000-2000065535", base: 2_000_000_000, count: 65536},
		{in: " 100000 - 100009 ", base: 100000, count: 10},
		{in: "300000+50", base: 300000, count: 50},
		{in: "5000-4000", err: "ends before it starts"},
		{in: "abc", err: "is not a range"},
		{in: "1-x", err: "is not two numbers"},
		{in: "0-100", err: "among the system accounts"},
		{in: "4294967000-4294967295", err: "goes past the largest uid 4294967294"},
		{in: "5000+0", err: "is empty"},
	} {
		base, count, err := ParseUIDRange(c.in)
		if c.err != "" {
			if !errors.Is(err, ErrAppUIDs) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || base != c.base || count != c.count {
			t.Errorf("%q: %d, %d, %v; want %d, %d", c.in, base, count, err, c.base, c.count)
		}
	}
}

// sessionPID is the pid of a session's interpreter and its working
// directory.
func sessionPID(t *testing.T, w *Worker, id string) (int, string, int) {
	t.Helper()
	s, err := w.Sessions.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := worker.HandleOf[*proc](s)
	h.mu.Lock()
	defer h.mu.Unlock()
	uid := -1
	if h.uid > 0 {
		uid = h.uid
	}
	return h.pid, h.workdir, uid
}

// victimApp keeps a private file in its working directory and waits.
const victimApp = `import os, time
with open("private.txt", "w") as f:
    f.write("victim-data-4e1d")
print("ready", flush=True)
time.sleep(600)
`

// attackerApp tries every way to reach another session, given its pid and
// working directory, and prints one line per attempt: "refused WHAT: errno
// name" or "GOT WHAT: what it got".
const attackerApp = `import ctypes, errno, os, signal
pid = int(os.environ["VICTIM_PID"])
d = os.environ["VICTIM_DIR"]
def attempt(what, fn):
    try:
        got = fn()
        print("GOT %s: %r" % (what, got))
    except OSError as e:
        print("refused %s: %s" % (what, errno.errorcode.get(e.errno, e.errno)))
attempt("environ", lambda: open("/proc/%d/environ" % pid, "rb").read())
attempt("mem", lambda: open("/proc/%d/mem" % pid, "rb").read(1))
attempt("cwd", lambda: os.readlink("/proc/%d/cwd" % pid))
attempt("fd", lambda: os.listdir("/proc/%d/fd" % pid))
attempt("listdir", lambda: os.listdir(d))
attempt("read", lambda: open(os.path.join(d, "private.txt")).read())
attempt("write", lambda: open(os.path.join(d, "private.txt"), "w").write("owned"))
attempt("create", lambda: open(os.path.join(d, "planted.txt"), "w").write("owned"))
attempt("signal0", lambda: os.kill(pid, 0))
attempt("sigterm", lambda: os.kill(pid, signal.SIGTERM))
attempt("sigkill", lambda: os.kill(pid, signal.SIGKILL))
libc = ctypes.CDLL(None, use_errno=True)
def ptrace():
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return "attached"
attempt("ptrace", ptrace)
print("done", flush=True)
`

// TestHostileSessionsCannotReachEachOther: two sessions of two workspaces
// run as two different uids. The attacker in ws-a, given the victim's pid
// and working directory, cannot read the victim's environment (its
// HYPHA_TOKEN acts in ws-b; here also a secret of its manifest env), memory, cwd or descriptors, cannot list, read, write or
// plant files in its working directory, cannot signal it (not even signal
// 0) and cannot ptrace it. The victim is still running afterwards with its
// file intact and nothing planted.
func TestHostileSessionsCannotReachEachOther(t *testing.T) {
	needRoot(t)
	needPython(t)
	as := newAppServer(t, map[string]string{"victim.py": victimApp, "attack.py": attackerApp})
	w := newWorker(t, Options{})

	vcfg := config(t, as.base(), "victim", TypePython, "victim.py", map[string]any{"env": map[string]any{"VICTIM_SECRET": "victim-secret-ws-b-9c2f"}})
	vcfg.ID, vcfg.Workspace = "ws-b/victim", "ws-b"
	vid, err := w.Start(ctxT(t), vcfg)
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, w, vid, worker.LogStdout, "^ready$")
	vpid, vdir, vuid := sessionPID(t, w, vid)

	acfg := config(t, as.base(), "attacker", TypePython, "attack.py",
		map[string]any{"env": map[string]any{"VICTIM_PID": strconv.Itoa(vpid), "VICTIM_DIR": vdir}})
	aid, err := w.Start(ctxT(t), acfg)
	if err != nil {
		t.Fatal(err)
	}
	_, _, auid := sessionPID(t, w, aid)
	if vuid < DefaultAppUIDBase || auid < DefaultAppUIDBase || vuid == auid {
		t.Fatalf("sessions run as uids %d and %d; want two different uids of the range", vuid, auid)
	}
	waitStatus(t, w, aid, worker.StatusCompleted)
	page, _ := w.GetLogs(context.Background(), aid, worker.LogQuery{})
	out := strings.Join(contents(page, worker.LogStdout), "\n")
	t.Logf("the attacker (uid %d) against the victim (uid %d, pid %d):\n%s", auid, vuid, vpid, out)
	if !strings.HasSuffix(out, "done") {
		t.Fatalf("the attacker did not finish: %s\nstderr: %v", out, contents(page, worker.LogStderr))
	}
	if strings.Contains(out, "GOT ") || strings.Contains(out, "victim-secret") || strings.Contains(out, "victim-data") {
		t.Fatalf("the attacker reached the victim:\n%s", out)
	}
	for _, want := range []string{
		"refused environ: EACCES", "refused mem: EACCES", "refused cwd: EACCES", "refused fd: EACCES",
		"refused listdir: EACCES", "refused read: EACCES", "refused write: EACCES", "refused create: EACCES",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Another uid cannot be signalled or traced (EPERM); in a PID
	// namespace of its own the victim cannot even be named (ESRCH).
	for _, what := range []string{"signal0", "sigterm", "sigkill", "ptrace"} {
		if !strings.Contains(out, "refused "+what+": EPERM") && !strings.Contains(out, "refused "+what+": ESRCH") {
			t.Errorf("%s of the victim not refused with EPERM or ESRCH in:\n%s", what, out)
		}
	}
	// Nothing happened to the victim.
	if info, _ := w.GetSessionInfo(context.Background(), vid); info.Status != worker.StatusRunning || !alive(vpid) {
		t.Fatalf("the victim is %s (pid %d alive: %v)", info.Status, vpid, alive(vpid))
	}
	if b, err := os.ReadFile(filepath.Join(vdir, "private.txt")); err != nil || string(b) != "victim-data-4e1d" {
		t.Fatalf("the victim's file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(vdir, "planted.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was planted in the victim's directory: %v", err)
	}
	if err := w.Stop(ctxT(t), vid); err != nil {
		t.Fatal(err)
	}
	if pids := uidProcs(vuid); len(pids) != 0 {
		t.Fatalf("processes of the victim's uid after stop: %v", pids)
	}
}

// escapeeApp starts a grandchild in a session of its own (out of the
// session's process group), prints its pid and then sleeps, or exits when
// EXIT_NOW is set.
const escapeeApp = hostChildPy + `import os, subprocess, time
p = subprocess.Popen(["sleep", "600"], start_new_session=True)
print("grandchild", host_child(), flush=True)
if os.environ.get("EXIT_NOW"):
    os._exit(0)
time.sleep(600)
`

// TestHostileUIDReuse: in a range of two uids, two live sessions hold
// both; a third start is refused; a uid comes back only once its session
// ended and its processes are gone (the setsid grandchild of a stopped
// session and of a session that exited by itself is killed); a uid on
// which a stray process runs is not handed out (and the stray is killed).
// The worker's own credentials never change.
func TestHostileUIDReuse(t *testing.T) {
	needRoot(t)
	needPython(t)
	const base = 2_000_070_000 // a range of its own: not the default one other tests use
	var logs testserver.Buffer
	as := newAppServer(t, map[string]string{"main.py": escapeeApp})
	// The first uid of the range is kept for the start-up probes.
	w := newWorker(t, Options{AppUIDBase: base, AppUIDCount: 3, MaxSessions: 2, StopGrace: 200e6, Logger: logs.Logger()})
	start := func(cid string, env map[string]any) (string, error) {
		return w.Start(ctxT(t), config(t, as.base(), cid, TypePython, "main.py", map[string]any{"env": env}))
	}
	grandchild := func(id string) int {
		m := waitLog(t, w, id, worker.LogStdout, `^grandchild (\d+)$`)
		pid, _ := strconv.Atoi(m[1])
		return pid
	}

	id1, err := start("s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := start("s2", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, uid1 := sessionPID(t, w, id1)
	_, _, uid2 := sessionPID(t, w, id2)
	if uid1 == uid2 || uid1 < base+1 || uid2 < base+1 || uid1 > base+2 || uid2 > base+2 {
		t.Fatalf("uids %d and %d; want %d and %d", uid1, uid2, base+1, base+2)
	}
	g1 := grandchild(id1)
	if _, err := start("s3", nil); err == nil {
		t.Fatal("a third session started with two uids")
	}

	// Stop s1: its escapee dies with it and uid1 is free again.
	if err := w.Stop(ctxT(t), id1); err != nil {
		t.Fatal(err)
	}
	if alive(g1) {
		t.Fatalf("the setsid grandchild %d of the stopped session survived", g1)
	}
	if pids := uidProcs(uid1); len(pids) != 0 {
		t.Fatalf("processes of uid %d after stop: %v", uid1, pids)
	}
	id3, err := start("s3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, uid3 := sessionPID(t, w, id3); uid3 != uid1 {
		t.Fatalf("s3 runs as %d, want the freed %d", uid3, uid1)
	}

	// A session that exits by itself: its escapee goes too.
	if err := w.Stop(ctxT(t), id2); err != nil {
		t.Fatal(err)
	}
	id4, err := start("s4", map[string]any{"EXIT_NOW": "1"})
	if err != nil {
		t.Fatal(err)
	}
	g4 := grandchild(id4)
	waitStatus(t, w, id4, worker.StatusCompleted)
	waitGone(t, []int{g4}, nil)
	if err := w.Stop(ctxT(t), id3); err != nil {
		t.Fatal(err)
	}

	// A stray process on a free uid: that uid is skipped (and the stray
	// killed); the session gets the other one.
	next := w.runner.NextUID() // the pool starts after the probes' uid
	stray := exec.Command("sleep", "600")
	stray.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(next), Gid: uint32(next), Groups: []uint32{}}}
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan error, 1)
	go func() { strayDone <- stray.Wait() }()
	id5, err := start("s5", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, uid5 := sessionPID(t, w, id5); uid5 == next {
		t.Fatalf("s5 got uid %d, on which a stray process runs", uid5)
	}
	if err := <-strayDone; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the stray process was not killed: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "processes of a free app uid are still running") || !strings.Contains(l, fmt.Sprintf("uid=%d", next)) {
		t.Fatalf("the stray was not logged:\n%s", l)
	}

	// The worker process itself stays root through all of this.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") && strings.Join(strings.Fields(line)[1:], " ") != "0 0 0 0" {
			t.Fatalf("the worker's credentials changed: %s", line)
		}
	}
}

// leftoverApp writes files outside its working directory, in the shared
// temp folders, then says so and waits.
const leftoverApp = `import os, sys, time
uid = os.getuid()
for d in ("/tmp", "/dev/shm"):
    p = "%s/hypha-leftover-%d" % (d, uid)
    with open(p, "w") as f:
        f.write("secret of " + os.environ.get("HYPHA_WORKSPACE", "?"))
    os.chmod(p, 0o600)
os.makedirs("/tmp/hypha-leftover-dir-%d/sub" % uid, exist_ok=True)
print("written", flush=True)
time.sleep(60)
`

// TestHostileUIDLeftovers: files a session leaves in the shared temp
// folders (owned by its uid, mode 0600) would belong to the next session
// that gets the uid, maybe of another workspace. They are removed when the
// session ends, and when a new worker starts (left by a worker that died).
func TestHostileUIDLeftovers(t *testing.T) {
	needRoot(t)
	needPython(t)
	const base = 2_000_080_000 // a range of its own
	as := newAppServer(t, map[string]string{"main.py": leftoverApp})
	w := newWorker(t, Options{AppUIDBase: base, AppUIDCount: 2, MaxSessions: 1, StopGrace: 200e6})
	id, err := w.Start(ctxT(t), config(t, as.base(), "left", TypePython, "main.py", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, w, id, worker.LogStdout, `^written$`)
	uid := base + 1 // the first uid of the range is kept for the start-up probes
	files := []string{
		fmt.Sprintf("/tmp/hypha-leftover-%d", uid), fmt.Sprintf("/dev/shm/hypha-leftover-%d", uid),
		fmt.Sprintf("/tmp/hypha-leftover-dir-%d", uid),
	}
	for _, f := range files {
		if _, err := os.Lstat(f); err != nil {
			t.Fatalf("the app did not leave %s: %v", f, err)
		}
	}
	if err := w.Stop(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Fatalf("%s is still there after the session ended (err %v)", f, err)
		}
	}

	// Left by an earlier run: a new worker's pool removes them before it
	// hands out the uid, and keeps files of uids outside its range.
	stale := fmt.Sprintf("/tmp/hypha-leftover-stale-%d", base)
	other := fmt.Sprintf("/tmp/hypha-leftover-other-%d", base)
	for f, uid := range map[string]int{stale: base, other: base + 1} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(f) })
		if err := os.Lchown(f, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	// (A runner whose pool is the one uid base: the range's first uid is
	// kept for probes.)
	p := localproc.New(localproc.Options{AppUIDBase: base - 1, AppUIDCount: 2, MaxSessions: 1,
		WorkDir: testserver.SharedTempDir(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := p.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Fatalf("%s, left by an earlier run, is still there (err %v)", stale, err)
	}
	if _, err := os.Lstat(other); err != nil {
		t.Fatalf("a file of a uid outside the range was removed: %v", err)
	}
}

// TestHostileOrphansOfDeadWorker: a worker (or the server) killed with
// SIGKILL leaves the processes of its sessions running as their uids (a
// setsid tree included) and their working directories. A new worker kills
// every process of a range uid that no live worker holds and removes those
// working directories before it hands out a uid; the live session of
// another worker of the range, and whatever belongs to a uid outside the
// range, are left alone.
func TestHostileOrphansOfDeadWorker(t *testing.T) {
	needRoot(t)
	const base = 2_000_090_000 // a range of its own
	workDir := testserver.SharedTempDir(t)
	as := newAppServer(t, map[string]string{"main.sh": "echo live\nexec sleep 300\n"})
	live := newWorker(t, Options{Python: "sh", AppUIDBase: base, AppUIDCount: 3, MaxSessions: 1, WorkDir: workDir, StopGrace: 200e6})
	id, err := live.Start(ctxT(t), config(t, as.base(), "live", TypePython, "main.sh", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, live, id, worker.LogStdout, `^live$`)
	livePID, _, liveUID := sessionPID(t, live, id)

	// What a dead worker left: a process tree of a range uid, without a
	// lease, and its working directory; the same of a uid outside the range.
	orphanUID := base + 1 // the first uid of the range is kept for the start-up probes
	for orphanUID == liveUID {
		orphanUID++
	}
	const outsideUID = base + 10
	spawn := func(uid int) *exec.Cmd {
		cmd := exec.Command("/bin/sh", "-c", "sleep 300 & exec sleep 300")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait() // reap it once killed
		return cmd
	}
	spawn(orphanUID)
	spawn(outsideUID)
	t.Cleanup(func() { _ = localproc.KillUID(outsideUID) })
	dirOf := func(name string, uid int) string {
		d := filepath.Join(workDir, name)
		if err := os.MkdirAll(filepath.Join(d, "pkg"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "pkg", "x.py"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := chownTree(d, uid); err != nil {
			t.Fatal(err)
		}
		return d
	}
	staleDir := dirOf("hypha-app-stale", orphanUID)
	outsideDir := dirOf("hypha-app-outside", outsideUID)
	for deadline := time.Now().Add(10 * time.Second); len(uidProcs(orphanUID)) < 2 || len(uidProcs(outsideUID)) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the orphan process trees did not start")
		}
	}

	var logs testserver.Buffer
	fresh := newWorker(t, Options{Python: "sh", AppUIDBase: base, AppUIDCount: 3, MaxSessions: 1, WorkDir: workDir, Logger: logs.Logger()})
	if _, err := fresh.setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if pids := uidProcs(orphanUID); len(pids) != 0 {
		t.Fatalf("processes of the dead worker's uid %d survive a new worker's start: %v", orphanUID, pids)
	}
	if _, err := os.Lstat(staleDir); !os.IsNotExist(err) {
		t.Fatalf("the dead worker's working directory %s is still there (err %v)", staleDir, err)
	}
	if !strings.Contains(logs.String(), "killed the processes that app sessions of an earlier run left behind") {
		t.Errorf("no warning about the killed orphans:\n%s", logs.String())
	}
	// The live worker's session and the uid outside the range are intact.
	if !alive(livePID) {
		t.Fatal("the live session of another worker was killed")
	}
	if st, _ := live.GetSessionInfo(ctxT(t), id); st.Status != worker.StatusRunning {
		t.Fatalf("live session status %s", st.Status)
	}
	if pids := uidProcs(outsideUID); len(pids) != 2 {
		t.Fatalf("processes of uid %d outside the range: %v, want 2", outsideUID, pids)
	}
	if _, err := os.Lstat(filepath.Join(outsideDir, "pkg", "x.py")); err != nil {
		t.Fatalf("a directory of a uid outside the range was touched: %v", err)
	}
}

// TestSessionsSurviveOtherSessionsEnds: ending a session discards the OS
// thread that dropped to its uid to kill its processes. A child forked from
// that thread would get its parent-death signal (SIGKILL) then: live
// sessions must not die because other sessions ended.
func TestSessionsSurviveOtherSessionsEnds(t *testing.T) {
	needRoot(t)
	const base = 2_000_100_000 // a range of its own
	as := newAppServer(t, map[string]string{"main.sh": "exec sleep 60\n"})
	w := newWorker(t, Options{Python: "sh", AppUIDBase: base, AppUIDCount: 40, MaxSessions: 30, StopGrace: 200e6})
	var live []int
	for round := range 6 {
		id, err := w.Start(ctxT(t), config(t, as.base(), fmt.Sprintf("live%d", round), TypePython, "main.sh", nil))
		if err != nil {
			t.Fatal(err)
		}
		pid, _, _ := sessionPID(t, w, id)
		live = append(live, pid)
		// Sessions that end right away, each ending on a discarded thread.
		for i := range 4 {
			sid, err := w.Start(ctxT(t), config(t, as.base(), fmt.Sprintf("short%d-%d", round, i), TypePython, "main.sh", nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Stop(ctxT(t), sid); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range live {
			if !alive(p) {
				t.Fatalf("round %d: the live session's process %d died when other sessions ended", round, p)
			}
		}
	}
}
