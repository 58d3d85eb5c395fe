package condaenv

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/localproc"
)

// The child mode of the test binary: one Get against a shared cache dir,
// progress lines on stdout, used to prove that the build lock holds across
// processes.
const childEnv = "CONDAENV_TEST_CHILD_DIR"

// childDepsEnv names the child's one dependency (default numpy).
const childDepsEnv = "CONDAENV_TEST_CHILD_DEPS"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(localproc.SpawnerFunction))
}

func runChild(dir string) int {
	fake, _ := filepath.Abs("testdata/fake-conda")
	c := &Cache{Dir: dir, Manager: &Manager{Name: Conda, Path: fake}, Pip: PipOptions{Disabled: true}}
	var mu sync.Mutex
	deps := []string{"numpy"}
	if d := os.Getenv(childDepsEnv); d != "" {
		deps = []string{d}
	}
	env, err := c.Get(context.Background(), Spec{Dependencies: deps}, func(line string) {
		mu.Lock()
		fmt.Println("progress:", line)
		mu.Unlock()
	})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer env.Release()
	fmt.Println("ready:", env.Prefix)
	return 0
}

const waitLong = 2 * time.Minute

func fakeConda(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/fake-conda")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("the fake conda needs /usr/bin/python3")
	}
	return p
}

// newFakeCache is a cache whose manager is the fake conda; FAKE_CONDA_LOG
// counts its builds.
func newFakeCache(t *testing.T) (*Cache, string) {
	t.Helper()
	fake := fakeConda(t)
	log := filepath.Join(t.TempDir(), "fake-conda.log")
	t.Setenv("FAKE_CONDA_LOG", log)
	return &Cache{Dir: t.TempDir(), Manager: &Manager{Name: Conda, Path: fake}, Pip: PipOptions{Disabled: true}}, log
}

func builds(t *testing.T, log string) int {
	t.Helper()
	data, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

type lines struct {
	mu  sync.Mutex
	all []string
	ch  chan string
}

func newLines() *lines { return &lines{ch: make(chan string, 10000)} }

func (l *lines) add(s string) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
	select {
	case l.ch <- s:
	default:
	}
}

func (l *lines) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.all {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// waitFor waits until a line containing sub arrives.
func (l *lines) waitFor(t *testing.T, sub string) {
	t.Helper()
	if l.has(sub) {
		return
	}
	timeout := time.After(waitLong)
	for {
		select {
		case s := <-l.ch:
			if strings.Contains(s, sub) {
				return
			}
		case <-timeout:
			t.Fatalf("no line with %q; got %q", sub, l.all)
		}
	}
}

func TestCacheMissThenHit(t *testing.T) {
	c, log := newFakeCache(t)
	ctx := context.Background()
	spec := Spec{Dependencies: []string{"numpy"}}
	p1 := newLines()
	env, err := c.Get(ctx, spec, p1.add)
	if err != nil {
		t.Fatal(err)
	}
	if !p1.has("conda: Solving environment: done") || !p1.has("ready") {
		t.Fatalf("build progress: %q", p1.all)
	}
	if env.Manager != Conda || env.Hash != spec.Normalize().Hash() || env.Python != filepath.Join(env.Prefix, "bin", "python") {
		t.Fatalf("env %+v", env)
	}
	// The environment is a real one: its python runs the kernel package.
	if out, err := exec.Command(env.Python, "-c", "import ipykernel, sys; print(sys.prefix)").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != env.Prefix {
		t.Fatalf("env python: %s %v", out, err)
	}
	env.Release()
	env.Release()

	p2 := newLines()
	env2, err := c.Get(ctx, spec, p2.add)
	if err != nil {
		t.Fatal(err)
	}
	defer env2.Release()
	if env2.Prefix != env.Prefix || !p2.has("using cached environment") {
		t.Fatalf("second Get: %+v %q", env2, p2.all)
	}
	if n := builds(t, log); n != 1 {
		t.Fatalf("built %d times", n)
	}
	ents := c.Entries()
	if len(ents) != 1 || ents[0].Manager != Conda || ents[0].Path != env.Prefix {
		t.Fatalf("index %+v", ents)
	}
	// Readable and runnable by other uids, writable by none of them.
	for _, p := range []string{c.Dir, filepath.Join(c.Dir, "envs"), env.Prefix, filepath.Join(env.Prefix, "bin")} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("%s: %v %v", p, st.Mode(), err)
		}
	}
	_ = filepath.WalkDir(env.Prefix, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink != 0 || d.Name() == ReadyMarker {
			return err // the marker is read by the worker only
		}
		info, _ := d.Info()
		if info.Mode().Perm()&0o022 != 0 || info.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s has mode %v", p, info.Mode())
		}
		return nil
	})
}

// clock is a settable time source for age and LRU tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestEvictionByCountSkipsEnvsInUse(t *testing.T) {
	c, log := newFakeCache(t)
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.Now, c.MaxEnvs, c.TrustReadyMarker = clk.now, 1, true
	ctx := context.Background()
	get := func(dep string) Env {
		t.Helper()
		clk.add(time.Minute)
		env, err := c.Get(ctx, Spec{Dependencies: []string{dep}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	a := get("pkg-a") // held: in use
	b := get("pkg-b")
	b.Release()
	if !exists(a.Prefix) || !exists(b.Prefix) {
		t.Fatal("an environment was evicted while in use")
	}
	// B is unused and least recent after C; A is still held.
	cEnv := get("pkg-c")
	if exists(b.Prefix) || !exists(a.Prefix) || !exists(cEnv.Prefix) {
		t.Fatalf("after C: a=%v b=%v c=%v", exists(a.Prefix), exists(b.Prefix), exists(cEnv.Prefix))
	}
	a.Release()
	cEnv.Release()
	d := get("pkg-d")
	defer d.Release()
	if exists(a.Prefix) || exists(cEnv.Prefix) || !exists(d.Prefix) {
		t.Fatalf("after D: a=%v c=%v d=%v", exists(a.Prefix), exists(cEnv.Prefix), exists(d.Prefix))
	}
	if ents := c.Entries(); len(ents) != 1 || ents[0].Path != d.Prefix {
		t.Fatalf("index %+v", ents)
	}
	// A again is a miss: rebuilt.
	before := builds(t, log)
	a2 := get("pkg-a")
	a2.Release()
	if builds(t, log) != before+1 {
		t.Fatal("evicted environment was not rebuilt")
	}
}

func TestEvictionByAge(t *testing.T) {
	c, _ := newFakeCache(t)
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.Now, c.MaxAge, c.TrustReadyMarker = clk.now, time.Hour, true
	ctx := context.Background()
	old, err := c.Get(ctx, Spec{Dependencies: []string{"pkg-old"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	held, err := c.Get(ctx, Spec{Dependencies: []string{"pkg-held"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old.Release()
	clk.add(2 * time.Hour)
	fresh, err := c.Get(ctx, Spec{Dependencies: []string{"pkg-fresh"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exists(old.Prefix) || !exists(held.Prefix) || !exists(fresh.Prefix) {
		t.Fatalf("old=%v held=%v fresh=%v", exists(old.Prefix), exists(held.Prefix), exists(fresh.Prefix))
	}
	held.Release()
	fresh.Release()
}

func TestConcurrentGetsBuildOnce(t *testing.T) {
	c, log := newFakeCache(t)
	gate := filepath.Join(t.TempDir(), "gate")
	t.Setenv("FAKE_CONDA_GATE", gate)
	const n = 4
	progress := make([]*lines, n)
	envs := make([]Env, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		progress[i] = newLines()
		wg.Add(1)
		go func() {
			defer wg.Done()
			envs[i], errs[i] = c.Get(context.Background(), Spec{Dependencies: []string{"numpy"}}, progress[i].add)
		}()
	}
	// One goroutine drives the solver; the others say they wait; only then
	// may the solver finish.
	solving, waiting := 0, 0
	deadline := time.Now().Add(waitLong)
	for solving+waiting < n {
		if time.Now().After(deadline) {
			t.Fatal("goroutines did not all reach the build")
		}
		solving, waiting = 0, 0
		for _, p := range progress {
			switch {
			case p.has("Solving environment"):
				solving++
			case p.has("waiting for"):
				waiting++
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if solving != 1 {
		t.Fatalf("%d goroutines ran the solver", solving)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if envs[i].Prefix != envs[0].Prefix {
			t.Fatal("different prefixes for one spec")
		}
		envs[i].Release()
	}
	if b := builds(t, log); b != 1 {
		t.Fatalf("built %d times", b)
	}
}

func TestConcurrentGetsInTwoProcessesBuildOnce(t *testing.T) {
	_, log := newFakeCache(t)
	dir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "gate")
	t.Setenv("FAKE_CONDA_GATE", gate)
	type child struct {
		cmd   *exec.Cmd
		lines *lines
		done  chan struct{}
	}
	var kids []*child
	for range 2 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		k := &child{cmd: cmd, lines: newLines(), done: make(chan struct{})}
		go func() {
			defer close(k.done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				k.lines.add(sc.Text())
			}
		}()
		kids = append(kids, k)
	}
	t.Cleanup(func() {
		for _, k := range kids {
			_ = k.cmd.Process.Kill()
		}
	})
	// Wait until one process solves and the other waits on the lock.
	deadline := time.Now().Add(waitLong)
	for {
		a, b := kids[0].lines, kids[1].lines
		if a.has("Solving environment") && b.has("waiting for another worker process") ||
			b.has("Solving environment") && a.has("waiting for another worker process") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("children did not meet at the lock: %q / %q", a.all, b.all)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range kids {
		<-k.done
		if err := k.cmd.Wait(); err != nil {
			t.Fatalf("child: %v: %q", err, k.lines.all)
		}
		if !k.lines.has("ready: ") {
			t.Fatalf("child output %q", k.lines.all)
		}
	}
	if b := builds(t, log); b != 1 {
		t.Fatalf("built %d times across processes", b)
	}
}

func TestCorruptEnvIsRebuilt(t *testing.T) {
	c, log := newFakeCache(t)
	ctx := context.Background()
	spec := Spec{Dependencies: []string{"numpy"}}
	env, err := c.Get(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.Release()

	// A build that died before its marker (or a marker lost) is not used.
	if err := os.Remove(filepath.Join(env.Prefix, ReadyMarker)); err != nil {
		t.Fatal(err)
	}
	p := newLines()
	env, err = c.Get(ctx, spec, p.add)
	if err != nil {
		t.Fatal(err)
	}
	env.Release()
	if builds(t, log) != 2 || !p.has("removing incomplete or broken environment") {
		t.Fatalf("missing marker: builds=%d %q", builds(t, log), p.all)
	}

	// A python that no longer runs fails the proof: rebuilt too.
	py := filepath.Join(env.Prefix, "bin", "python")
	if err := os.Remove(py); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(py, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env, err = c.Get(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Release()
	if builds(t, log) != 3 {
		t.Fatalf("broken python: builds=%d", builds(t, log))
	}
	if out, err := exec.Command(env.Python, "-c", "import ipykernel").CombinedOutput(); err != nil {
		t.Fatalf("rebuilt env: %s %v", out, err)
	}

	// A marker for another spec (a hash collision or a moved dir) is not trusted.
	if err := os.WriteFile(filepath.Join(env.Prefix, ReadyMarker), []byte(`{"hash":"0000","manager":"conda"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env.Release()
	env, err = c.Get(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.Release()
	if builds(t, log) != 4 {
		t.Fatalf("foreign marker: builds=%d", builds(t, log))
	}
}

func TestCorruptIndexIsIgnored(t *testing.T) {
	c, log := newFakeCache(t)
	ctx := context.Background()
	env, err := c.Get(ctx, Spec{Dependencies: []string{"numpy"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.Release()
	if err := os.WriteFile(filepath.Join(c.Dir, "index.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err = c.Get(ctx, Spec{Dependencies: []string{"numpy"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.Release()
	if builds(t, log) != 1 || len(c.Entries()) != 1 {
		t.Fatalf("builds=%d entries=%d", builds(t, log), len(c.Entries()))
	}
}

// procGone reports whether pid has exited (a zombie counts as gone).
func procGone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func TestCancelKillsSolverAndLeavesNoPrefix(t *testing.T) {
	c, _ := newFakeCache(t)
	pidfile := filepath.Join(t.TempDir(), "helper.pid")
	t.Setenv("FAKE_CONDA_PIDFILE", pidfile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newLines()
	done := make(chan error, 1)
	go func() {
		env, err := c.Get(ctx, Spec{Dependencies: []string{"hang-solve"}}, p.add)
		env.Release()
		done <- err
	}()
	p.waitFor(t, "hanging on purpose")
	data, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	helper, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Get after cancel: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Get did not return after cancel")
	}
	deadline := time.Now().Add(waitLong)
	for !procGone(helper) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(helper, syscall.SIGKILL)
			t.Fatalf("the solver's helper %d survived the cancel", helper)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "envs"))
	if len(ents) != 0 {
		t.Fatalf("left in envs: %v", ents)
	}
}

func TestSolverFailureCarriesLastLines(t *testing.T) {
	c, _ := newFakeCache(t)
	p := newLines()
	_, err := c.Get(context.Background(), Spec{Dependencies: []string{"numpy", "fail-solve"}}, p.add)
	if !errors.Is(err, ErrBuildFailed) {
		t.Fatalf("Get = %v", err)
	}
	for _, want := range []string{"LibMambaUnsatisfiableError", "nothing provides fail-solve"} {
		if !strings.Contains(err.Error(), want) || !p.has(want) {
			t.Errorf("%q missing from the error or progress: %v", want, err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "envs"))
	if len(ents) != 0 {
		t.Fatalf("half-built prefix left: %v", ents)
	}
	if len(c.Entries()) != 0 {
		t.Fatal("failed build in the index")
	}
}

func TestProgressArrivesWhileSolving(t *testing.T) {
	c, _ := newFakeCache(t)
	gate := filepath.Join(t.TempDir(), "gate")
	t.Setenv("FAKE_CONDA_GATE", gate)
	p := newLines()
	done := make(chan error, 1)
	go func() {
		env, err := c.Get(context.Background(), Spec{Dependencies: []string{"numpy"}}, p.add)
		env.Release()
		done <- err
	}()
	// The solver cannot end before the gate opens, so these lines came live.
	p.waitFor(t, "conda: Collecting package metadata")
	p.waitFor(t, "conda: Solving environment: ...working...")
	select {
	case err := <-done:
		t.Fatalf("Get returned before the solver was released: %v", err)
	default:
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHostileSolverOutputIsBounded(t *testing.T) {
	var got []string
	script := `head -c 100000 /dev/zero | tr '\0' 'x'; echo; i=0; while [ $i -lt 100 ]; do echo line$i; i=$((i+1)); done; exit 1`
	_, err := runStreaming(context.Background(), []string{"/bin/sh", "-c", script}, nil, func(l string) { got = append(got, l) })
	if !errors.Is(err, ErrBuildFailed) {
		t.Fatal(err)
	}
	if len(got[0]) > maxLineBytes+3 {
		t.Fatalf("line of %d bytes forwarded", len(got[0]))
	}
	if len(err.Error()) > (tailLines+2)*(maxLineBytes+200) || !strings.Contains(err.Error(), "line99") || strings.Contains(err.Error(), "line50\n") {
		t.Fatalf("error tail: %d bytes", len(err.Error()))
	}
}

// writeWheel writes a minimal pure-Python wheel by hand (a wheel is a zip
// with dist-info metadata and a RECORD of hashes), so the test needs no
// index and no build backend.
func writeWheel(t *testing.T, dir, name, version, module string) {
	t.Helper()
	files := map[string]string{
		module + "/__init__.py":                                "VALUE = 'built offline'\n",
		fmt.Sprintf("%s-%s.dist-info/METADATA", name, version): fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version),
		fmt.Sprintf("%s-%s.dist-info/WHEEL", name, version):    "Wheel-Version: 1.0\nGenerator: condaenv-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
	}
	record := fmt.Sprintf("%s-%s.dist-info/RECORD", name, version)
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", name, version)))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	var rec strings.Builder
	for _, p := range []string{module + "/__init__.py", fmt.Sprintf("%s-%s.dist-info/METADATA", name, version), fmt.Sprintf("%s-%s.dist-info/WHEEL", name, version)} {
		w, err := zw.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, files[p])
		sum := sha256.Sum256([]byte(files[p]))
		fmt.Fprintf(&rec, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[p]))
	}
	fmt.Fprintf(&rec, "%s,,\n", record)
	w, _ := zw.Create(record)
	io.WriteString(w, rec.String())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPipOnlyPathOffline(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3")
	}
	wheels := t.TempDir()
	writeWheel(t, wheels, "hypha_demo_pkg", "0.1.0", "hypha_demo_pkg")
	c := &Cache{
		Dir: t.TempDir(),
		// No manager at all: the spec must not need one.
		Pip: PipOptions{Pythons: []string{"/usr/bin/python3"}, NoIndex: true, FindLinks: []string{wheels}, NoUV: true},
	}
	ctx := context.Background()
	spec := Spec{Dependencies: []string{"python>=3.8"}, Pip: []string{"hypha-demo-pkg==0.1.0"}}
	p := newLines()
	env, err := c.Get(ctx, spec, p.add)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(p.all, "\n"))
	}
	if env.Manager != PipVenv || !p.has("pip-only environment over Python") || !p.has("pip: ") {
		t.Fatalf("env %+v, progress %q", env, p.all)
	}
	out, err := exec.Command(env.Python, "-c", "import hypha_demo_pkg, ipykernel, sys; print(hypha_demo_pkg.VALUE, sys.prefix)").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "built offline "+env.Prefix {
		t.Fatalf("venv python: %q %v", out, err)
	}
	// The package went into the venv, not the system.
	if sys, _ := exec.Command("/usr/bin/python3", "-c", "import hypha_demo_pkg").CombinedOutput(); !strings.Contains(string(sys), "No module named") {
		t.Fatalf("package visible to the system python: %s", sys)
	}
	env.Release()
	p2 := newLines()
	env2, err := c.Get(ctx, spec, p2.add)
	if err != nil {
		t.Fatal(err)
	}
	env2.Release()
	if !p2.has("using cached environment") || p2.has("pip-only environment") {
		t.Fatalf("second Get rebuilt: %q", p2.all)
	}
	if ents := c.Entries(); len(ents) != 1 || ents[0].Manager != PipVenv {
		t.Fatalf("index %+v", ents)
	}

	// A Python nobody has, and no manager: a clear error, nothing left.
	_, err = c.Get(ctx, Spec{Dependencies: []string{"python=2.7"}}, nil)
	if !errors.Is(err, ErrNoBuilder) || !strings.Contains(err.Error(), "=2.7") {
		t.Fatalf("python 2.7: %v", err)
	}
	// A package the offline index lacks: pip's own words in the error.
	_, err = c.Get(ctx, Spec{Pip: []string{"no-such-package-xyz"}}, nil)
	if !errors.Is(err, ErrBuildFailed) || !strings.Contains(err.Error(), "no-such-package-xyz") {
		t.Fatalf("missing package: %v", err)
	}
	if ents := c.Entries(); len(ents) != 1 {
		t.Fatalf("failed builds indexed: %+v", ents)
	}
	rel := &Cache{Dir: "relative/cache", Pip: c.Pip}
	if _, err := rel.Get(ctx, spec, nil); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Fatalf("relative cache dir: %v", err)
	}
}

// TestHostileWorkerKilledMidBuildKillsSolver: the worker process is killed
// with SIGKILL while its solver runs: the solver dies with it (parent-death
// signal) instead of going on writing a prefix nobody waits for, and a new
// cache rebuilds the half-built environment rather than using it.
func TestHostileWorkerKilledMidBuildKillsSolver(t *testing.T) {
	_, _ = newFakeCache(t)
	dir := t.TempDir()
	pidfile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir, childDepsEnv+"=hang-solve", "FAKE_CONDA_PIDFILE="+pidfile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var solver int
	deadline := time.Now().Add(waitLong)
	for solver == 0 {
		if b, err := os.ReadFile(pidfile + ".self"); err == nil {
			solver, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatal("the solver did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The fake solver's own helper child is not the solver: only the
	// solver gets the parent-death signal. Kill it when done.
	defer func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline = time.Now().Add(waitLong)
	for syscall.Kill(solver, 0) == nil {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", solver)); err == nil && strings.Contains(string(st), ") Z ") {
			break // a zombie: dead, waiting to be reaped by init
		}
		if time.Now().After(deadline) {
			t.Fatalf("the solver %d outlived its worker", solver)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The half-built environment is not used: a new cache builds it again.
	fake, _ := filepath.Abs("testdata/fake-conda")
	c := &Cache{Dir: dir, Manager: &Manager{Name: Conda, Path: fake}, Pip: PipOptions{Disabled: true}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	solving := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, Spec{Dependencies: []string{"hang-solve"}}, func(line string) {
			if strings.Contains(line, "Solving environment") {
				select {
				case solving <- struct{}{}:
				default:
				}
			}
		})
		errc <- err
	}()
	select {
	case <-solving: // building again, not handing out the half-built one
	case err := <-errc:
		t.Fatalf("the half-built environment was used: Get = %v", err)
	case <-time.After(waitLong):
		t.Fatal("no rebuild")
	}
	cancel()
	<-errc
}
