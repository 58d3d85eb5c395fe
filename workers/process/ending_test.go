package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypha-go/hypha/worker"

	"github.com/hypha-go/hypha/internal/testserver"
)

// treeApp leaves every kind of process behind: a child in its group, an
// orphan of a double fork, and a setsid daemon with a child of its own,
// the last three ignoring SIGTERM and holding stdout open. It waits until
// they all run, says so, then exits with code 3 (TREE_MODE=exit) or waits
// (ignoring SIGTERM with TREE_IGNORE_TERM=1). Every process of the tree
// carries TREE_MARK in its environment, which the test scans for.
const treeApp = `import os, signal, subprocess, sys, time
if os.environ.get("TREE_IGNORE_TERM") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
r, w = os.pipe()
subprocess.Popen(["sleep", "300"])
def leaf():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.write(w, b"x")
    time.sleep(300)
    os._exit(0)
if os.fork() == 0:
    if os.fork() == 0:
        leaf()
    os._exit(0)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        leaf()
    leaf()
os.close(w)
got = b""
while len(got) < 3:
    got += os.read(r, 3)
print("tree up", flush=True)
if os.environ.get("TREE_ATTACK") == "1" and os.fork() == 0:
    # A detached process kills every supervisor it can find, as a user
    # who would rather its processes outlived the session.
    import errno
    os.setsid()
    res = []
    for e in os.listdir("/proc"):
        try:
            if e.isdigit() and open("/proc/%s/cmdline" % e, "rb").read().startswith(b"hypha-supervisor"):
                os.kill(int(e), signal.SIGKILL)
                res.append("killed " + e)
        except OSError as ex:
            res.append("refused %s: %s" % (e, errno.errorcode[ex.errno]))
    try:
        os.kill(1, signal.SIGKILL)
        res.append("sent SIGKILL to 1")
    except OSError as ex:
        res.append("refused 1: " + errno.errorcode[ex.errno])
    # In a PID namespace of its own, its pid differs from the one /proc
    # (the worker's) gives it.
    print("attack:", "; ".join(res), "| own pid namespace:", os.getpid() != int(os.readlink("/proc/self")), flush=True)
    time.sleep(300)
    os._exit(0)
if os.environ["TREE_MODE"] == "exit":
    sys.exit(3)
time.sleep(300)
`

// markedProcs lists the live processes whose environment holds mark.
func markedProcs(mark string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, []byte("\x00"+mark+"\x00")) && !bytes.HasPrefix(env, []byte(mark+"\x00")) {
			continue
		}
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// waitTreeGone waits (generously) until no process of the tree is alive
// and its working directory is gone.
func waitTreeGone(t *testing.T, mark, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := markedProcs(mark)
		_, err := os.Lstat(dir)
		if len(left) == 0 && errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the session ended: processes %v still run; working directory %s: %v", left, dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTreeUp waits until the whole tree runs (at least five processes).
func waitTreeUp(t *testing.T, mark string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(markedProcs(mark)) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the app's process tree did not start: %v", markedProcs(mark))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// endingModes: each session has a uid of its own (root only), or runs as
// the worker's user (no uid to kill by: only the supervisor's subtree).
var endingModes = []struct {
	name         string
	ownUID       bool
	runAsWorker  bool
	needsRootRun bool
	noNS         bool // supervisors without a PID namespace (the fallback)
}{
	{name: "own-uid", ownUID: true, needsRootRun: true},
	{name: "worker-user", runAsWorker: true},
	{name: "own-uid-no-pid-namespace", ownUID: true, needsRootRun: true, noNS: true},
	{name: "worker-user-no-pid-namespace", runAsWorker: true, noNS: true},
}

// copyFile copies src to dst with the given mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestHostileSessionEndsLeaveNothing ends a session whose app leaves
// children, double-fork orphans and setsid daemons that ignore SIGTERM, in
// every way a session ends, and checks that every process it started is
// gone and its working directory removed.
func TestHostileSessionEndsLeaveNothing(t *testing.T) {
	needPython(t)
	if _, ok := readStat(os.Getpid()); !ok {
		t.Skip("no /proc")
	}
	py := realPython(t)
	as := newAppServer(t, map[string]string{"main.py": treeApp})
	for _, m := range endingModes {
		t.Run(m.name, func(t *testing.T) {
			if m.needsRootRun {
				needRoot(t)
			}
			for _, way := range []struct {
				name   string
				mode   string
				ignore bool
				grace  time.Duration
				end    func(t *testing.T, w *Worker, id string)
			}{
				{name: "stop", mode: "wait", grace: 5 * time.Second, end: func(t *testing.T, w *Worker, id string) {
					if err := w.Stop(ctxT(t), id); err != nil {
						t.Fatal(err)
					}
				}},
				{name: "app-exit", mode: "exit", grace: 5 * time.Second, end: func(t *testing.T, w *Worker, id string) {
					info := waitStatus(t, w, id, worker.StatusFailed)
					if info.ExitCode == nil || *info.ExitCode != 3 {
						t.Errorf("exit_code = %v, want the app's own 3", info.ExitCode)
					}
				}},
				{name: "ignores-sigterm", mode: "wait", ignore: true, grace: 300 * time.Millisecond, end: func(t *testing.T, w *Worker, id string) {
					if err := w.Stop(ctxT(t), id); err != nil {
						t.Fatal(err)
					}
				}},
				{name: "stop-timeout", mode: "wait", ignore: true, grace: time.Minute, end: func(t *testing.T, w *Worker, id string) {
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					defer cancel()
					if err := w.Stop(ctx, id); err != nil {
						t.Fatal(err)
					}
				}},
				{name: "shutdown", mode: "wait", ignore: true, grace: 300 * time.Millisecond, end: func(t *testing.T, w *Worker, id string) {
					if err := w.Shutdown(ctxT(t)); err != nil {
						t.Fatal(err)
					}
				}},
			} {
				t.Run(way.name, func(t *testing.T) {
					mark := fmt.Sprintf("TREE_MARK=%s-%s-%d", m.name, way.name, time.Now().UnixNano())
					k, v, _ := strings.Cut(mark, "=")
					ignore := "0"
					if way.ignore {
						ignore = "1"
					}
					w := newWorker(t, Options{Python: py, RunAsWorkerUser: m.runAsWorker, StopGrace: way.grace, NoPIDNamespace: m.noNS})
					cfg := config(t, as.base(), "tree-"+way.name, TypePython, "main.py", map[string]any{
						"env": map[string]any{k: v, "TREE_MODE": way.mode, "TREE_IGNORE_TERM": ignore},
					})
					id, err := w.Start(ctxT(t), cfg)
					if err != nil {
						t.Fatal(err)
					}
					h := procOf(t, w, id)
					if (h.uid > 0) != m.ownUID {
						t.Fatalf("session has a uid of its own: %v, want %v", h.uid > 0, m.ownUID)
					}
					if !w.supervised() {
						t.Fatal("the session runs without a supervisor")
					}
					dir := h.workdir
					if way.mode != "exit" {
						waitLog(t, w, id, worker.LogStdout, `^tree up$`)
						waitTreeUp(t, mark)
					}
					way.end(t, w, id)
					waitTreeGone(t, mark, dir)
				})
			}
		})
	}
	noChildren(t)
}

// treeHelperEnv makes the test binary a worker process that starts one
// treeApp session, prints "TREE <workdir>" once the tree runs, and waits
// to be killed (TestHostileWorkerKilledLeavesNothing).
const treeHelperEnv = "PROCESS_WORKER_TREE_HELPER"

func runTreeHelper() {
	// As cmd/hypha does (harden): a non-dumpable worker, whose forks'
	// /proc files belong to root.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, 4 /* PR_SET_DUMPABLE */, 0, 0); e != 0 {
		fmt.Println("ERROR make non-dumpable:", e)
		os.Exit(1)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, treeApp)
	}))
	attack := os.Getenv("TREE_ATTACK")
	w := New(Options{
		Python: os.Getenv("TREE_PYTHON"), WorkDir: os.Getenv("PROCESS_WORKER_TEST_DIR"),
		RunAsWorkerUser: os.Getenv("TREE_RUN_AS_WORKER") == "1",
		NoPIDNamespace:  os.Getenv("TREE_NO_PID_NAMESPACE") == "1",
	})
	k, v, _ := strings.Cut(os.Getenv("TREE_MARK_FOR_APP"), "=")
	cfg := worker.Config{
		ID: "ws/tree", Workspace: "ws", ClientID: "tree", AppFilesBaseURL: srv.URL,
		EntryPoint: "main.py", Manifest: worker.Manifest{"type": TypePython,
			"env": map[string]any{k: v, "TREE_MODE": "wait", "TREE_IGNORE_TERM": "1", "TREE_ATTACK": attack}},
	}
	if _, err := w.Start(context.Background(), cfg); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	s, _ := w.Sessions.Lookup("ws/tree")
	h, _ := worker.HandleOf[*proc](s)
	said := ""
	for said == "" {
		page, err := w.GetLogs(context.Background(), "ws/tree", worker.LogQuery{Type: worker.LogStdout})
		for _, line := range contents(page, worker.LogStdout) {
			if err == nil && (attack != "1" || strings.HasPrefix(line, "attack:")) {
				said = line
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("TREE %s\t%s\n", h.workdir, said)
	select {}
}

// TestHostileWorkerKilledLeavesNothing kills a worker process with SIGKILL
// (no chance to stop anything) while its session's app runs a tree of
// children, double-fork orphans and setsid daemons that ignore SIGTERM:
// the supervisor kills them all and removes the working directory.
func TestHostileWorkerKilledLeavesNothing(t *testing.T) {
	needPython(t)
	if _, ok := readStat(os.Getpid()); !ok {
		t.Skip("no /proc")
	}
	py := realPython(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	modes := []struct {
		name    string
		ownUID  bool // root worker, a uid per session
		nonRoot bool // the worker runs as nobody, and the app attacks its supervisor
		noNS    bool
	}{
		{name: "own-uid", ownUID: true},
		{name: "worker-user"},
		{name: "worker-user-no-pid-namespace", noNS: true},
		{name: "non-root-worker-attacked", nonRoot: true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if m.ownUID {
				needRoot(t)
			}
			mark := fmt.Sprintf("TREE_MARK=killed-%s-%d", m.name, time.Now().UnixNano())
			env := []string{treeHelperEnv + "=1", "TREE_PYTHON=" + py, "TREE_MARK_FOR_APP=" + mark}
			if !m.ownUID {
				env = append(env, "TREE_RUN_AS_WORKER=1")
			}
			if m.noNS {
				env = append(env, "TREE_NO_PID_NAMESPACE=1")
			}
			workDir := testserver.SharedTempDir(t)
			cmd := exec.Command(exe, "-test.run=^$")
			if m.nonRoot {
				env = append(env, "TREE_ATTACK=1")
				if os.Geteuid() == 0 {
					// The worker runs as nobody: a copy of this binary it
					// may run, and a working directory it owns.
					bin := filepath.Join(testserver.SharedTempDir(t), "worker.test")
					copyFile(t, exe, bin, 0o755)
					cmd = exec.Command(bin, "-test.run=^$")
					cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
					if err := os.Chown(workDir, 65534, 65534); err != nil {
						t.Fatal(err)
					}
				}
			}
			cmd.Env = append(os.Environ(), append(env, "PROCESS_WORKER_TEST_DIR="+workDir)...)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("helper: %v", err)
			}
			said, ok := strings.CutPrefix(strings.TrimSpace(line), "TREE ")
			if !ok {
				t.Fatalf("helper said %q", line)
			}
			dir, app, _ := strings.Cut(said, "\t")
			t.Logf("the app said: %s", app)
			if m.nonRoot && !strings.HasPrefix(app, "attack:") {
				t.Fatalf("the app did not attack: %q", app)
			}
			if m.nonRoot && !strings.HasSuffix(app, "| own pid namespace: True") {
				// Unless the system refuses user namespaces.
				if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
					t.Skip("unprivileged user namespaces are disabled here (kernel.unprivileged_userns_clone=0): the non-root worker falls back")
				}
				t.Fatalf("the app of a non-root worker does not run in a PID namespace of its own: %q", app)
			}
			waitTreeUp(t, mark)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			waitTreeGone(t, mark, dir)
		})
	}
}

// supervisorAttackApp tries to get rid of (or take over) its session's
// supervisor, by the pid it sees as its parent (1 in a PID namespace of
// its own) and by the supervisor's pid in /proc: every signal the
// supervisor acts on, ptrace, and its /proc files. It prints "sent WHAT",
// "refused WHAT: ERRNO" or "GOT WHAT" per attempt.
const supervisorAttackApp = `import ctypes, errno, os, signal, time
hp = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[1])
print("parent", open("/proc/%d/cmdline" % hp, "rb").read().replace(b"\0", b" ").decode(), flush=True)
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
for how, pp in sorted({("parent", os.getppid()), ("proc", hp)}):
    for name in ["SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGSTOP"]:
        try:
            os.kill(pp, getattr(signal, name))
            print("sent kill", how, name, flush=True)
        except OSError as e:
            print("refused kill %s %s: %s" % (how, name, errno.errorcode[e.errno]), flush=True)
    if libc.ptrace(16, pp, None, None) == 0:
        print("GOT ptrace", how, flush=True)
    else:
        print("refused ptrace %s: %s" % (how, errno.errorcode[ctypes.get_errno()]), flush=True)
for name in ["environ", "mem", "fd/3"]:
    try:
        open("/proc/%d/%s" % (hp, name), "rb").read(1)
        print("GOT", name, flush=True)
    except OSError as e:
        print("refused %s: %s" % (name, errno.errorcode[e.errno]), flush=True)
print("done", flush=True)
time.sleep(300)
`

// TestHostileAppAttacksSupervisor: an app running as its session's own uid
// tries to kill, stop, trace or read its root supervisor, which would let
// its processes outlive the session: every attempt is refused and the
// session (supervisor included) still runs. With and without a PID
// namespace.
func TestHostileAppAttacksSupervisor(t *testing.T) {
	needPython(t)
	needRoot(t)
	as := newAppServer(t, map[string]string{"main.py": supervisorAttackApp})
	for _, noNS := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-pid-namespace=%v", noNS), func(t *testing.T) {
			w := newWorker(t, Options{Python: realPython(t), NoPIDNamespace: noNS})
			id, err := w.Start(ctxT(t), config(t, as.base(), "attack-sup", TypePython, "main.py", nil))
			if err != nil {
				t.Fatal(err)
			}
			waitLog(t, w, id, worker.LogStdout, `^done$`)
			page, _ := w.GetLogs(ctxT(t), id, worker.LogQuery{Type: worker.LogStdout})
			out := strings.Join(contents(page, worker.LogStdout), "\n")
			t.Logf("the app against its supervisor:\n%s", out)
			if !strings.Contains(out, "parent hypha-supervisor "+supervisorArg) {
				t.Fatalf("the app's parent is not its supervisor: the test proves nothing\n%s", out)
			}
			if n := strings.Count(out, "refused kill "); n < 5 {
				t.Errorf("%d kills refused, want all (at least 5)", n)
			}
			for _, want := range []string{"refused environ: EACCES", "refused mem: EACCES", "refused fd/3: EACCES"} {
				if !strings.Contains(out, want) {
					t.Errorf("the app's output lacks %q", want)
				}
			}
			if strings.Contains(out, "GOT") || strings.Contains(out, "sent kill") || !strings.Contains(out, "refused ptrace") {
				t.Errorf("the app reached its supervisor:\n%s", out)
			}
			app := procOf(t, w, id).pid
			st, _ := readStat(app)
			if !alive(st.ppid) || !alive(app) {
				t.Fatal("the supervisor or the app is gone")
			}
			if info, _ := w.GetSessionInfo(ctxT(t), id); info.Status != worker.StatusRunning {
				t.Fatalf("status %s, want running", info.Status)
			}
		})
	}
}

// TestHostileStaleWorkDirRemovedAtNextStart: when a worker and its
// supervisors were all killed at once (no chance to remove anything), the
// next worker of the same user removes their working directories, and only
// those: a live session's directory (held locked by its worker and
// supervisor), another user's, and a symbolic link stay.
func TestHostileStaleWorkDirRemovedAtNextStart(t *testing.T) {
	if _, ok := readStat(os.Getpid()); !ok {
		t.Skip("no /proc")
	}
	workDir := testserver.SharedTempDir(t)
	as := newAppServer(t, map[string]string{"main.sh": "echo live\nexec sleep 300\n"})
	live := newWorker(t, Options{Python: "sh", RunAsWorkerUser: true, WorkDir: workDir})
	id, err := live.Start(ctxT(t), config(t, as.base(), "live", TypePython, "main.sh", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, live, id, worker.LogStdout, `^live$`)
	liveDir := procOf(t, live, id).workdir

	stale := workDir + "/hypha-app-stale"
	if err := os.MkdirAll(stale+"/pkg", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale+"/pkg/x.py", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if err := os.Symlink(target, workDir+"/hypha-app-link"); err != nil {
		t.Fatal(err)
	}
	other := ""
	if os.Geteuid() == 0 {
		other = workDir + "/hypha-app-other"
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}

	fresh := newWorker(t, Options{Python: "sh", RunAsWorkerUser: true, WorkDir: workDir})
	if _, err := fresh.setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale working directory is still there: %v", err)
	}
	for _, p := range []string{liveDir, workDir + "/hypha-app-link", target, other} {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if info, _ := live.GetSessionInfo(ctxT(t), id); info.Status != worker.StatusRunning {
		t.Fatalf("the live session is %s", info.Status)
	}
}
