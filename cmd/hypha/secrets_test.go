package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"

	"github.com/hypha-go/hypha/internal/testserver"
)

// The secrets of these tests share a prefix that appears nowhere else, so
// that a hit anywhere is a leak. Apps build it by concatenation.
const secretPrefix = "HYPHASECRET"

func newSecret(what string) string { return secretPrefix + "-" + what + "-" + idgen.New() }

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// hyphaBinary builds cmd/hypha once, into a folder other users can reach
// (the server may run as another user in these tests).
func hyphaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "hypha-bin-"); buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "hypha"), ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "hypha")
}

// serverProc is a `hypha server` process.
type serverProc struct {
	cmd    *exec.Cmd
	url    string
	stdout *testserver.Buffer
	stderr *testserver.Buffer
	done   chan struct{}
	err    error
}

var serverListenRE = regexp.MustCompile(`Hypha server listening on (http://\S+)`)

// startServerProc runs `hypha server --port 0 args...` with env added to
// the test's environment and waits until it says where it listens.
func startServerProc(t *testing.T, env []string, cred *syscall.Credential, args ...string) *serverProc {
	t.Helper()
	cmd := exec.Command(hyphaBinary(t), append([]string{"server", "--host", "127.0.0.1", "--port", "0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	p := &serverProc{cmd: cmd, stdout: &testserver.Buffer{}, stderr: &testserver.Buffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(p.stdout, pw)
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := serverListenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case p.url = <-urlc:
	case <-p.done:
		t.Fatalf("server exited: %v\nstdout:\n%s\nstderr:\n%s", p.err, p.stdout, p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not start\nstdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
	}
	return p
}

// procFile reads /proc/<pid>/<name> with NULs as spaces.
func procFile(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Fatalf("read /proc/%d/%s: %v", pid, name, err)
	}
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

func needProc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("no /proc on this system")
	}
}

// TestHostileServerSecretsHidden: secrets given as flags or environment
// variables are gone from the running server's command line and
// environment (the server re-executes itself in place: same pid, so there
// is no parent holding them either); secret files work and loose ones are
// refused; SIGTERM still shuts the server down cleanly.
func TestHostileServerSecretsHidden(t *testing.T) {
	needProc(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("flags and env", func(t *testing.T) {
		root, jwt := newSecret("root"), newSecret("jwt")
		s := startServerProc(t, []string{"HYPHA_JWT_SECRET=" + jwt}, nil,
			"--data-dir", t.TempDir(), "--root-token", root)
		pid := s.cmd.Process.Pid
		cmdline, environ := procFile(t, pid, "cmdline"), procFile(t, pid, "environ")
		if strings.Contains(cmdline+environ, secretPrefix) {
			t.Fatalf("secret visible in the server process:\ncmdline: %s\nenviron: %s", cmdline, environ)
		}
		if !strings.Contains(cmdline, "server") || !strings.Contains(cmdline, "--secrets-fd=") {
			t.Fatalf("cmdline = %q: not the re-executed server", cmdline)
		}
		c, err := rpc.Connect(ctx, rpc.Config{ServerURL: s.url, Token: root, NoReconnect: true})
		if err != nil {
			t.Fatalf("root token given as a flag does not work: %v", err)
		}
		if c.Info().Workspace == "" {
			t.Fatal("no workspace")
		}
		c.Close()
		stopServer(t, s)
	})

	t.Run("env only", func(t *testing.T) {
		root, jwt := newSecret("root"), newSecret("jwt")
		s := startServerProc(t, []string{"HYPHA_ROOT_TOKEN=" + root, "HYPHA_JWT_SECRET=" + jwt}, nil, "--data-dir", t.TempDir())
		pid := s.cmd.Process.Pid
		if all := procFile(t, pid, "cmdline") + procFile(t, pid, "environ"); strings.Contains(all, secretPrefix) {
			t.Fatalf("secret visible in the server process: %s", all)
		}
		c, err := rpc.Connect(ctx, rpc.Config{ServerURL: s.url, Token: root, NoReconnect: true})
		if err != nil {
			t.Fatalf("root token from HYPHA_ROOT_TOKEN does not work: %v", err)
		}
		c.Close()
		stopServer(t, s)
	})

	t.Run("files", func(t *testing.T) {
		dir := t.TempDir()
		root := newSecret("root")
		rootFile, jwtFile := filepath.Join(dir, "root-token"), filepath.Join(dir, "jwt")
		if err := os.WriteFile(rootFile, []byte(root+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(jwtFile, []byte(newSecret("jwt")), 0o400); err != nil {
			t.Fatal(err)
		}
		s := startServerProc(t, []string{"HYPHA_JWT_SECRET_FILE=" + jwtFile}, nil, "--data-dir", filepath.Join(dir, "data"), "--root-token-file", rootFile)
		pid := s.cmd.Process.Pid
		cmdline := procFile(t, pid, "cmdline")
		if strings.Contains(cmdline+procFile(t, pid, "environ"), secretPrefix) || strings.Contains(cmdline, "--secrets-fd") {
			t.Fatalf("cmdline = %q: secrets from files need no re-exec and must not show", cmdline)
		}
		c, err := rpc.Connect(ctx, rpc.Config{ServerURL: s.url, Token: root, NoReconnect: true})
		if err != nil {
			t.Fatalf("root token from --root-token-file does not work: %v", err)
		}
		c.Close()
		stopServer(t, s)
	})

	// A server that is not root runs apps as its own user: they can read
	// its cmdline (clean) but not its environ or memory (non-dumpable).
	t.Run("non-root server is non-dumpable", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to start the server as another user (CI runs as root)")
		}
		dir, err := os.MkdirTemp("", "hypha-nonroot-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		nobody := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
		root := newSecret("root")
		s := startServerProc(t, []string{"HOME=" + dir, "HYPHA_JWT_SECRET=" + newSecret("jwt")}, nobody,
			"--data-dir", filepath.Join(dir, "data"), "--root-token", root)
		pid := s.cmd.Process.Pid
		if cmdline := procFile(t, pid, "cmdline"); strings.Contains(cmdline, secretPrefix) {
			t.Fatalf("cmdline = %q", cmdline)
		}
		for _, name := range []string{"environ", "mem", "fd/0"} {
			peek := exec.Command("cat", fmt.Sprintf("/proc/%d/%s", pid, name))
			peek.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
			out, err := peek.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "Permission denied") {
				t.Errorf("a process of the server's own user read /proc/%d/%s: %v %q", pid, name, err, out)
			}
		}
		if !strings.Contains(s.stdout.String()+s.stderr.String(), "apps run as its own user") {
			t.Errorf("the server does not say that apps run as its user:\n%s", s.stderr)
		}
		stopServer(t, s)
	})

	t.Run("loose or conflicting secret files refused", func(t *testing.T) {
		dir := t.TempDir()
		loose := filepath.Join(dir, "loose")
		if err := os.WriteFile(loose, []byte(newSecret("root")), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(loose, 0o644); err != nil {
			t.Fatal(err)
		}
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			env  []string
			want string
		}{
			{[]string{"--root-token-file", loose}, nil, "is accessible to group or others (mode -rw-r--r--); make it private with: chmod 600 " + loose},
			{nil, []string{"HYPHA_JWT_SECRET_FILE=" + loose}, "HYPHA_JWT_SECRET_FILE: " + loose + " is accessible to group or others"},
			{[]string{"--jwt-secret-file", empty}, nil, "is empty"},
			{[]string{"--jwt-secret-file", filepath.Join(dir, "missing")}, nil, "no such file"},
			{[]string{"--root-token", "x", "--root-token-file", empty}, nil, "give --root-token or --root-token-file, not both"},
			{nil, []string{"HYPHA_ROOT_TOKEN=x", "HYPHA_ROOT_TOKEN_FILE=" + empty}, "set HYPHA_ROOT_TOKEN or HYPHA_ROOT_TOKEN_FILE, not both"},
		} {
			data := filepath.Join(dir, "data-"+idgen.New())
			cmd := exec.CommandContext(ctx, hyphaBinary(t), append([]string{"server", "--port", "0", "--data-dir", data}, tc.args...)...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
				t.Errorf("%v %v: err %v, output %q; want exit 1 and %q", tc.args, tc.env, err, out, tc.want)
			}
			if strings.Contains(string(out), "listening") {
				t.Errorf("%v %v: the server started", tc.args, tc.env)
			}
			if _, err := os.Stat(data); err == nil {
				t.Errorf("%v %v: the data dir was created", tc.args, tc.env)
			}
		}
	})
}

// stopServer sends SIGTERM and checks a clean exit with no process left
// behind (no child of the server survives).
func stopServer(t *testing.T, s *serverProc) {
	t.Helper()
	pid := s.cmd.Process.Pid
	kids := childrenOf(pid)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not stop on SIGTERM\nstderr:\n%s", s.stderr)
	}
	if s.err != nil {
		t.Fatalf("server exit: %v\nstderr:\n%s", s.err, s.stderr)
	}
	if !strings.Contains(s.stdout.String(), "shutting down") {
		t.Fatalf("stdout = %q", s.stdout)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range kids {
		for processAlive(k) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d (a child of the server) survived", k)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// childrenOf lists the live children of pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, n)
		}
	}
	return out
}

func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// snoopApp looks, as an attacker's app would, for the server's secrets: in
// the server's (its grandparent's, past the session supervisor) and the
// supervisor's command line and environment, in every
// process's, in the data dir, in secret files, in inherited descriptors.
// It prints what it could read and any hit of the secret prefix.
const snoopServerApp = `import os, glob
PREFIX = "HYPHA" + "SECRET"
hits = []
def look(where, data):
    if PREFIX.encode() in data:
        hits.append(where)
        print("LEAK", where, data[:300])
def tryread(p):
    try:
        with open(p, "rb") as f:
            return f.read(1 << 20)
    except OSError as e:
        return None
# The parent as /proc (the server's) numbers it: in the session's PID
# namespace os.getppid() is 1.
st = tryread("/proc/self/stat").decode()
ppid = int(st[st.rindex(")") + 2:].split()[1])
print("uid=%d gid=%d groups=%s ppid=%d" % (os.getuid(), os.getgid(), os.getgroups(), ppid))
ancestors = [("parent", ppid)]
if b"__hypha_supervise" in (tryread("/proc/%d/cmdline" % ppid) or b""):
    # The session's supervisor, a child of the server.
    stat = (tryread("/proc/%d/stat" % ppid) or b"").decode()
    server = int(stat[stat.rindex(")") + 2:].split()[1])
    ancestors = [("supervisor", ppid), ("parent", server)]
for label, pid in ancestors:
    print(label + " cmdline:", (tryread("/proc/%d/cmdline" % pid) or b"?").replace(b"\0", b" ").decode())
    for name in ["cmdline", "environ", "mem", "maps", "fd/0"]:
        data = tryread("/proc/%d/%s" % (pid, name))
        print("%s %s: %s" % (label, name, "refused" if data is None else "read %d bytes" % len(data)))
        if data:
            look(label + " " + name, data)
n = {"cmdline": 0, "environ": 0}
for d in glob.glob("/proc/[0-9]*"):
    for name in n:
        data = tryread(d + "/" + name)
        if data is not None:
            n[name] += 1
            look(d + "/" + name, data)
print("read cmdline of %d processes, environ of %d" % (n["cmdline"], n["environ"]))
look("own environ", repr(os.environ).encode())
for p in [os.environ["DATA_DIR"], os.path.join(os.environ["DATA_DIR"], "apps")] + os.environ["SECRET_FILES"].split(":"):
    try:
        if os.path.isdir(p):
            print("listed", p, os.listdir(p))
            for root, dirs, files in os.walk(p):
                for f in files:
                    data = tryread(os.path.join(root, f))
                    if data is not None:
                        look(os.path.join(root, f), data)
        else:
            data = open(p, "rb").read()
            print("read", p)
            look(p, data)
    except OSError as e:
        print("refused", p, e.strerror)
for fd in range(3, 51):
    try:
        os.fstat(fd)
    except OSError:
        continue
    try:
        target = os.readlink("/proc/self/fd/%d" % fd)
    except OSError as e:
        target = e.strerror
    if target.startswith("/proc/"):
        continue
    print("open fd", fd, target)
    try:
        os.lseek(fd, 0, 0)
    except OSError:
        pass
    try:
        look("fd %d" % fd, os.read(fd, 4096))
    except OSError:
        pass
print("hits=%d" % len(hits))
print("done")
`

// TestHostileAppReadsServerSecrets runs the attack of issue 6 against a real
// `hypha server` started as root with --root-token and --jwt-secret flags
// (plus secret files): an app installed by a user looks for the secrets
// everywhere a process can. It runs as its session's own uid and finds
// nothing.
func TestHostileAppReadsServerSecrets(t *testing.T) {
	needProc(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a root server runs apps as the app user (CI runs as root); see docs/security.md for what apps reach otherwise")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is missing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, jwt := newSecret("root"), newSecret("jwt")
	// A folder everyone can search (t.TempDir's parent is 0700), so that
	// the refusals below come from the modes of the data dir and the
	// secret file themselves.
	dir, err := os.MkdirTemp("", "hypha-snoop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "other-secret")
	if err := os.WriteFile(secretFile, []byte(newSecret("file")), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	s := startServerProc(t, nil, nil, "--data-dir", dataDir, "--root-token", root, "--jwt-secret", jwt)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.stdout.String(), "apps run as") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // the line follows the listen line
	}
	if !strings.Contains(s.stdout.String(), "apps run as the per-session app uids 2000000000-2000065535") {
		t.Fatalf("the server does not say apps run as per-session uids: %s", s.stdout)
	}

	c, err := rpc.Connect(ctx, rpc.Config{ServerURL: s.url, Token: root, NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	apps, err := c.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	// The manifest's env holds a secret of its own: it is stored in the
	// (private) data dir, and the app gets it, which is its right.
	_, err = apps.Call(ctx, "install", rpc.Kwargs{
		"app_id": "snoop", "stage": true,
		"manifest": map[string]any{"type": "python-eval", "name": "snoop", "entry_point": "main.py",
			"env": map[string]any{"DATA_DIR": dataDir, "SECRET_FILES": secretFile + ":" + filepath.Join(dataDir, "apps")}},
		"files": []any{map[string]any{"path": "main.py", "content": snoopServerApp}},
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "snoop", rpc.Kwargs{"wait_for_service": false, "stage": true}) // the staged version
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid, _ := v.(map[string]any)["id"].(string)
	var out, diag bytes.Buffer
	status, err := streamLogs(ctx, apps, sid, "", true, &out, &diag)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	t.Logf("the app (status %s) saw:\n%s\n%s", status, out.String(), diag.String())
	got := out.String() + diag.String()
	if status != "completed" || !strings.Contains(got, "\ndone") {
		t.Fatalf("the app did not complete")
	}
	if strings.Contains(got, secretPrefix) || strings.Contains(got, "LEAK") || !strings.Contains(got, "hits=0") {
		t.Fatalf("the app found a secret:\n%s", got)
	}
	if m := regexp.MustCompile(`uid=(\d+) gid=(\d+) groups=\[\]`).FindStringSubmatch(got); m == nil || m[1] != m[2] || !strings.HasPrefix(m[1], "2000") || len(m[1]) != 10 {
		t.Errorf("the app did not run as a uid of the default range with no groups: %v", m)
	}
	for _, want := range []string{
		"parent environ: refused", "parent mem: refused", "parent fd/0: refused",
		// The session's supervisor runs as root too (non-dumpable).
		"supervisor environ: refused", "supervisor mem: refused", "supervisor fd/0: refused",
		"refused " + dataDir + " Permission denied",
		"refused " + secretFile + " Permission denied",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the app's output lacks %q", want)
		}
	}
	if strings.Contains(got, "open fd") {
		t.Errorf("the app inherited descriptors")
	}
	if m := regexp.MustCompile(`read cmdline of (\d+) processes`).FindStringSubmatch(got); m == nil || m[1] == "0" {
		t.Errorf("the app could not walk /proc: the test proves nothing")
	}
	if !strings.Contains(got, "parent cmdline: "+buildDir) {
		t.Errorf("the app did not read the server's command line: the test proves nothing")
	}
	stopServer(t, s)
}
