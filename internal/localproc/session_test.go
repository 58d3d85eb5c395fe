package localproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/worker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	MaybeSupervise()
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(SpawnerFunction))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newRunner is a runner whose sessions run as the test's own user (the
// per-session uids are the process worker's tests' business), in a
// directory of the test's own.
func newRunner(t *testing.T, grace time.Duration) *Runner {
	t.Helper()
	r := New(Options{RunAsWorkerUser: true, WorkDir: t.TempDir(), StopGrace: grace, MaxLineBytes: 64,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := r.Setup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func shCommand(t *testing.T, script string, logs *worker.LogStore) Command {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	return Command{Path: sh, Args: []string{"sh", "-c", script}, Env: []string{"PATH=" + StandardPath, "GREETING=hi"}, Logs: logs}
}

func lines(logs *worker.LogStore, typ worker.LogType) []string {
	entries, _, _ := logs.Since(0, 0)
	var out []string
	for _, e := range entries {
		if e.Type == typ {
			out = append(out, e.Content)
		}
	}
	return out
}

// TestSessionRunsAndEnds: the command runs in the session's directory with
// exactly the environment given, its output lands in the log store line by
// line (a long line split, not cut), its exit code is reported, and the
// directory is gone at the end.
func TestSessionRunsAndEnds(t *testing.T) {
	if !Supported {
		t.Skip("no process groups")
	}
	r := newRunner(t, time.Second)
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	if err := os.WriteFile(dir+"/data.txt", []byte("file content\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := worker.NewLogStore(worker.LogLimits{})
	long := strings.Repeat("x", 150)
	cmd := shCommand(t, `cat data.txt; echo "$GREETING ${HOME:-nohome}"; echo `+long+`; echo oops >&2; exit 3`, logs)
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if s.PID() <= 0 {
		t.Fatalf("pid %d", s.PID())
	}
	ex, err := s.Wait(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if ex.Code != 3 || ex.Desc != "exited with code 3" || ex.Err != nil {
		t.Fatalf("exit %+v, want code 3", ex)
	}
	out := lines(logs, worker.LogStdout)
	if len(out) != 5 || out[0] != "file content" || out[1] != "hi nohome" || strings.Join(out[2:], "") != long {
		t.Fatalf("stdout %q", out)
	}
	if errs := lines(logs, worker.LogStderr); len(errs) != 1 || errs[0] != "oops" {
		t.Fatalf("stderr %q", errs)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("working directory left: %v", err)
	}
	if err := s.Start(cmd); err == nil {
		t.Fatal("a second Start succeeded")
	}
}

// TestSessionStopWithGrace: a process tree that ignores SIGTERM is killed
// after the grace period, every process of it; Stop is idempotent.
func TestSessionStopWithGrace(t *testing.T) {
	if !Supported {
		t.Skip("no process groups")
	}
	r := newRunner(t, 200*time.Millisecond)
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	logs := worker.NewLogStore(worker.LogLimits{})
	// A child in the group and a setsid one, both ignoring SIGTERM; every
	// process of the tree carries a mark in its environment.
	cmd := shCommand(t, `trap "" TERM; sleep 300 & setsid sh -c 'trap "" TERM; sleep 300' & echo up; wait`, logs)
	mark := "LOCALPROC_TEST_MARK=" + strconv.FormatInt(time.Now().UnixNano(), 10)
	cmd.Env = append(cmd.Env, mark)
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(markedProcs(mark)) < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the app did not start its tree: %v", markedProcs(mark))
		}
	}
	if err := s.Stop(ctxT(t), logs); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctxT(t), logs); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if alive(s.PID()) {
		t.Fatal("the main process survived Stop")
	}
	if left := markedProcs(mark); r.Supervised() && len(left) > 0 {
		t.Fatalf("processes of the session survived Stop under a supervisor: %v", left)
	}
	info := strings.Join(lines(logs, worker.LogInfo), "\n")
	if !strings.Contains(info, "SIGTERM") || !strings.Contains(info, "SIGKILL") {
		t.Fatalf("the stop steps are not logged:\n%s", info)
	}
	if ex := s.Exit(); ex.Code != -1 {
		t.Fatalf("exit %+v, want killed", ex)
	}
}

// TestSessionClosedBeforeStart: a session stopped before its start
// releases its directory, and a later Start refuses.
func TestSessionClosedBeforeStart(t *testing.T) {
	r := newRunner(t, time.Second)
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	if err := s.Stop(ctxT(t), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("working directory left: %v", err)
	}
	<-s.Done()
	logs := worker.NewLogStore(worker.LogLimits{})
	if err := s.Start(shCommand(t, "echo ran", logs)); !errors.Is(err, ErrStopped) {
		t.Fatalf("start after stop: %v, want ErrStopped", err)
	}
}

// TestNewSessionNeedsSetup: a runner refuses sessions before Setup.
func TestNewSessionNeedsSetup(t *testing.T) {
	r := New(Options{})
	if _, err := r.NewSession(); !errors.Is(err, worker.ErrWorkerNotAvailable) || !strings.Contains(err.Error(), "Setup") {
		t.Fatalf("NewSession before Setup: %v", err)
	}
}

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
		if err == nil && slices.Contains(strings.Split(string(env), "\x00"), mark) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestSessionStdio: with Command.Stdin and Stdout the program speaks over
// the worker's pipes (through the supervisor too), its stderr still goes
// to the logs with LinePrefix, and closing its stdin ends it.
func TestSessionStdio(t *testing.T) {
	if !Supported {
		t.Skip("no process groups")
	}
	r := newRunner(t, time.Second)
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	logs := worker.NewLogStore(worker.LogLimits{})
	cmd := shCommand(t, `echo started >&2; while read line; do echo "got $line"; done`, logs)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.LinePrefix = inR, outW, "srv: "
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	defer outR.Close()
	if _, err := io.WriteString(inW, "ping\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := outR.Read(buf)
	if err != nil || string(buf[:n]) != "got ping\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	inW.Close() // EOF: the loop ends, and so does the program
	if _, err := s.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := lines(logs, worker.LogStderr); !slices.Equal(got, []string{"srv: started"}) {
		t.Fatalf("stderr: %q", got)
	}
	if got := lines(logs, worker.LogStdout); len(got) != 0 {
		t.Fatalf("stdout reached the logs: %q", got)
	}
	if ex := s.Exit(); ex.Code != 0 {
		t.Fatalf("exit: %+v", ex)
	}
}
