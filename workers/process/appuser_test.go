package process

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hypha-go/hypha/worker"

	"github.com/hypha-go/hypha/internal/testserver"
)

// needRoot skips tests of the app user: only a root worker changes user.
// CI runs as root, so this is the path it exercises.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a worker running as root runs apps as the app user (CI runs as root)")
	}
}

// snoopApp is a python app that looks for what it must not get: it prints
// its uid, its environment, every descriptor above 2 it has, the worker's
// environment and a private file of the worker.
const snoopApp = `import os
print("uid=%d gid=%d groups=%s" % (os.getuid(), os.getgid(), os.getgroups()))
print("home=" + os.environ.get("HOME", ""))
print("cwd-mode=%o" % (os.stat(".").st_mode & 0o7777))
print("env=" + repr(sorted(os.environ.items())))
for fd in range(3, 51):
    try:
        os.fstat(fd)
    except OSError:
        continue
    try:
        target = os.readlink("/proc/self/fd/%d" % fd)
    except OSError as e:
        target = str(e)
    if target.startswith("/proc/") or target == os.path.realpath("/proc/self/fd"):
        continue  # the listing above
    data = ""
    try:
        os.lseek(fd, 0, 0)
        data = os.read(fd, 200).decode(errors="replace")
    except OSError as e:
        data = str(e)
    print("open-fd %d -> %s: %s" % (fd, target, data))
for what in ["/proc/%d/environ" % os.getppid(), os.environ["SNOOP_FILE"]]:
    try:
        print("read %s: %s" % (what, open(what, "rb").read(200)))
    except OSError as e:
        print("refused %s: %s" % (what, e.strerror))
print("done")
`

// TestHostileAppGetsNoSecretsFromWorker: a worker running as root with
// secrets in its environment and an inherited, non-close-on-exec
// descriptor on a secret file runs an app that looks for them. The app runs
// as its session's own uid (gid the same) from the default range with no
// supplementary groups, in a 0700 working directory it owns (HOME), sees
// none of the worker's variables, has no descriptor above 2 and cannot
// read the worker's environ or private files.
func TestHostileAppGetsNoSecretsFromWorker(t *testing.T) {
	needRoot(t)
	needPython(t)
	const secret = "S3CRET-worker-7f1c"
	for _, k := range []string{"HYPHA_ROOT_TOKEN", "HYPHA_JWT_SECRET", "HYPHA_TOKEN", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(k, secret+"-"+k)
	}
	private := filepath.Join(t.TempDir(), "root-token")
	if err := os.WriteFile(private, []byte(secret+"-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	// As if the worker had been started with "3<secret-file": an open
	// descriptor without close-on-exec.
	f, err := os.Open(private)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_SETFD, 0); e != 0 {
		t.Fatal(e)
	}
	// The same file as the app could find it: reachable folders, 0600.
	shared := filepath.Join(testserver.SharedTempDir(t), "private")
	if err := os.WriteFile(shared, []byte(secret+"-shared"), 0o600); err != nil {
		t.Fatal(err)
	}

	as := newAppServer(t, map[string]string{"main.py": snoopApp})
	w := newWorker(t, Options{})
	cfg := config(t, as.base(), "snoop", TypePython, "main.py", map[string]any{"env": map[string]any{"SNOOP_FILE": shared}})
	id, err := w.Start(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, id, worker.StatusCompleted)
	page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{})
	out := strings.Join(contents(page, worker.LogStdout), "\n")
	t.Logf("the app saw:\n%s", out)
	if !strings.Contains(out, "\ndone") {
		t.Fatalf("the app did not finish: %s\nstderr: %s", out, contents(page, worker.LogStderr))
	}
	if strings.Contains(out, secret) {
		t.Fatalf("a secret reached the app:\n%s", out)
	}
	if strings.Contains(out, "open-fd") {
		t.Fatalf("the app inherited descriptors:\n%s", out)
	}
	m := regexp.MustCompile(`uid=(\d+) gid=(\d+) groups=\[\]`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] {
		t.Fatalf("the app's uid/gid line is missing or uid != gid:\n%s", out)
	}
	if uid, _ := strconv.Atoi(m[1]); uid < DefaultAppUIDBase || uid >= DefaultAppUIDBase+DefaultAppUIDCount {
		t.Errorf("the app ran as uid %d, outside the default range %s", uid, rangeName(DefaultAppUIDBase, DefaultAppUIDCount))
	}
	for _, want := range []string{"cwd-mode=700",
		"refused /proc/", "environ: Permission denied", "refused " + shared + ": Permission denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("the app's output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "home=/") || strings.Contains(out, "home=/root") {
		t.Errorf("HOME is not the working directory:\n%s", out)
	}
	infos := strings.Join(contents(page, worker.LogInfo), "\n")
	if !strings.Contains(infos, "running as uid "+m[1]+" (this session's own)") {
		t.Errorf("info logs do not say who the app runs as:\n%s", infos)
	}
}

// TestHostileInterpreterOutOfReach: an interpreter under a private folder
// (like a pyenv install under root's 0700 home) cannot be run by the app
// user. A bare name falls back to a system interpreter with a warning that
// names the flag; an explicit path is refused with the fix.
func TestHostileInterpreterOutOfReach(t *testing.T) {
	needRoot(t)
	sys, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Skip("no /usr/bin/python3 to fall back to")
	}
	private := filepath.Join(t.TempDir(), "bin") // t.TempDir's parent is 0700
	if err := os.Mkdir(private, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sys, filepath.Join(private, "python3")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", private+string(filepath.ListSeparator)+os.Getenv("PATH"))

	var logs testserver.Buffer
	w := newWorker(t, Options{Logger: logs.Logger()})
	as := newAppServer(t, map[string]string{"main.py": "import sys, os\nprint(sys.executable, os.environ['PATH'])\n"})
	id, err := w.Start(ctxT(t), config(t, as.base(), "fallback", TypePython, "main.py", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w, id, worker.StatusCompleted)
	page, _ := w.GetLogs(context.Background(), id, worker.LogQuery{})
	out := strings.Join(contents(page, worker.LogStdout), "\n")
	if !strings.HasPrefix(out, "/usr/bin/python3") || strings.Contains(out, private) {
		t.Fatalf("app ran %q; want /usr/bin/python3 and the private folder off its PATH", out)
	}
	if l := logs.String(); !strings.Contains(l, "cannot be run by the per-session app uids "+rangeName(DefaultAppUIDBase, DefaultAppUIDCount)) ||
		!strings.Contains(l, "using /usr/bin/python3 instead (pass --python to choose)") {
		t.Fatalf("no fallback warning in logs:\n%s", l)
	}

	logs = testserver.Buffer{}
	w2 := newWorker(t, Options{Python: filepath.Join(private, "python3"), Logger: logs.Logger()})
	_, err = w2.Start(ctxT(t), config(t, as.base(), "explicit", TypePython, "main.py", nil))
	if !errors.Is(err, worker.ErrWorkerNotAvailable) || !strings.Contains(err.Error(), "pass --python with an interpreter any user can run (a system install such as /usr/bin/python3)") ||
		!strings.Contains(err.Error(), "is not searchable by the per-session app uids") {
		t.Fatalf("explicit unreachable interpreter: %v", err)
	}
	if w2.Sessions.Len() != 0 {
		t.Fatal("a session was kept")
	}
}

// TestHostileAppUserChoices: an unknown app user stops the worker from
// registering with a clear error; an explicit app user runs every session
// as that one user and warns that sessions can reach each other; a uid
// range that is too small for --max-sessions or holds an account is
// refused at start-up; the explicit opt-out runs apps as root and says so
// loudly.
func TestHostileAppUserChoices(t *testing.T) {
	needRoot(t)
	var one testserver.Buffer
	w1 := newWorker(t, Options{Python: "sh", AppUser: "nobody", AppUIDCount: 5, Logger: one.Logger()})
	as1 := newAppServer(t, map[string]string{"main.sh": "id -u\n"})
	for _, cid := range []string{"one-a", "one-b"} {
		id, err := w1.Start(ctxT(t), config(t, as1.base(), cid, TypePython, "main.sh", nil))
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, w1, id, worker.StatusCompleted)
		page, _ := w1.GetLogs(context.Background(), id, worker.LogQuery{})
		if got := contents(page, worker.LogStdout); len(got) != 1 || got[0] != "65534" {
			t.Fatalf("explicit --app-user nobody: app ran as %v, want 65534", got)
		}
	}
	if l := one.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "every app session runs as the same app user") ||
		!strings.Contains(l, "--app-uids ignored") {
		t.Fatalf("single-user mode was not warned about:\n%s", l)
	}

	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"range smaller than max sessions", Options{AppUIDBase: 2_100_000_000, AppUIDCount: 10, MaxSessions: 11},
			"the app uid range 2100000000-2100000009 has 9 uids for sessions (its first is kept for start-up checks), fewer than the 11 sessions allowed (--max-sessions)"},
		{"range holding an account", Options{AppUIDBase: 65000, AppUIDCount: 1000, MaxSessions: 10},
			`/etc/passwd has "nobody" with id 65534 inside the app uid range 65000-65999`},
		{"range among system accounts", Options{AppUIDBase: 10, AppUIDCount: 100, MaxSessions: 10},
			"the range starts at 10, among the system accounts"},
	} {
		w := newWorker(t, c.opts)
		err := w.Check(ctxT(t))
		if !errors.Is(err, worker.ErrWorkerNotAvailable) || !errors.Is(err, ErrAppUIDs) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	w := newWorker(t, Options{AppUser: "no-such-user-hypha"})
	if _, err := w.setup(ctxT(t)); !errors.Is(err, worker.ErrWorkerNotAvailable) || !strings.Contains(err.Error(), `app user "no-such-user-hypha"`) ||
		!strings.Contains(err.Error(), "--app-user") {
		t.Fatalf("unknown user: %v", err)
	}

	var logs testserver.Buffer
	w2 := newWorker(t, Options{Python: "sh", RunAsWorkerUser: true, Logger: logs.Logger()})
	as := newAppServer(t, map[string]string{"main.sh": "id -u\n"})
	id, err := w2.Start(ctxT(t), config(t, as.base(), "asroot", TypePython, "main.sh", nil))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, w2, id, worker.StatusCompleted)
	page, _ := w2.GetLogs(context.Background(), id, worker.LogQuery{})
	if got := contents(page, worker.LogStdout); len(got) != 1 || got[0] != "0" {
		t.Fatalf("opt-out app ran as %v, want uid 0", got)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "APPS RUN AS ROOT") {
		t.Fatalf("the opt-out was not logged loudly:\n%s", l)
	}
}
