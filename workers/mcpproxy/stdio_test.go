package mcpproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

// The stdio servers run as sessions of the platform's process supervisor
// (internal/localproc). These tests check that nothing of such a session
// is left behind, however it ends: every process of it (the server, a
// child, a grandchild that ignores SIGTERM and left the process group) is
// found by a mark in its environment, which they all inherit.

// markedProcs lists the pids (as /proc numbers them) whose environment
// holds mark.
func markedProcs(mark string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !alive(pid) {
			continue
		}
		for _, kv := range strings.Split(string(b), "\x00") {
			if kv == mark {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// markedSpec is stdioSpec with a mark of its own in the environment.
func markedSpec(t testing.TB) (map[string]any, string) {
	mark := fmt.Sprintf("MCPPROXY_TEST_MARK=%s-%d", t.Name(), time.Now().UnixNano())
	spec := stdioSpec()
	k, v, _ := strings.Cut(mark, "=")
	spec["env"].(map[string]any)[k] = v
	return spec, mark
}

func uidOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

// TestHostileStdioLeavesNothing: a stdio server that starts a child and a
// grandchild ignoring SIGTERM in a session of its own (setsid) runs as a
// supervised session (a uid of its own when the worker is root); stop
// leaves no process of it and no working directory. Also in the
// fallbacks: no PID namespace, the worker's own user, no supervisor (a
// root worker's uid per session still reaches every process).
func TestHostileStdioLeavesNothing(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc")
	}
	for _, m := range []struct {
		name string
		opts Options
		root bool // the mode holds only for a root worker
	}{
		{name: "supervised"},
		{name: "no-pid-namespace", opts: Options{NoPIDNamespace: true}},
		{name: "worker-user", opts: Options{RunAsWorkerUser: true}},
		{name: "no-supervisor-own-uid", opts: Options{NoSupervisor: true}, root: true},
	} {
		t.Run(m.name, func(t *testing.T) {
			if m.root && os.Geteuid() != 0 {
				t.Skip("needs a root worker (a uid per session)")
			}
			m.opts.AllowStdio = true
			stdioLeavesNothing(t, newHarnessOpts(t, m.opts), m.opts.RunAsWorkerUser)
		})
	}
}

func stdioLeavesNothing(t *testing.T, h *harness, workerUser bool) {
	spec, mark := markedSpec(t)
	cfg := h.start(map[string]any{"mcpServers": map[string]any{"local": spec}})
	h.mustCall(cfg, "local", "tools.spawn")
	h.mustCall(cfg, "local", "tools.stubborn")
	testserver.WaitFor(t, 30*time.Second, "server, child and grandchild running", func() bool { return len(markedProcs(mark)) >= 3 })
	l := h.w.links(cfg.ID)[0]
	pid := l.pid()
	if pid <= 0 {
		t.Fatal("no stdio server pid")
	}
	if os.Geteuid() == 0 && !workerUser {
		if u := uidOf(pid); u <= 0 {
			t.Fatalf("the stdio server of a root worker runs as uid %d, want a uid of its own", u)
		}
	}
	l.mu.Lock()
	dir := l.ls.Dir()
	l.mu.Unlock()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("working directory: %v", err)
	}
	if err := h.w.Stop(testserver.Ctx(t), cfg.ID); err != nil {
		t.Fatal(err)
	}
	// Stop returns once every process is gone.
	if left := markedProcs(mark); len(left) > 0 {
		t.Fatalf("processes of the stopped session left: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("working directory %s left: %v", dir, err)
	}
	if got := h.services(cfg); len(got) != 0 {
		t.Fatalf("services left: %v", got)
	}
}

// workerHelperEnv makes the test binary a worker process that starts one
// app (its config as JSON in MCPPROXY_TEST_CONFIG), makes its stdio
// server start a stubborn grandchild, prints READY and waits to be
// killed.
const workerHelperEnv = "MCPPROXY_TEST_WORKER"

type helperConfig struct {
	ID, AppID, Workspace, ClientID, ServerURL, Token string
	Manifest                                         worker.Manifest
}

func runWorkerHelper() {
	var c helperConfig
	if err := json.Unmarshal([]byte(os.Getenv("MCPPROXY_TEST_CONFIG")), &c); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	cfg := worker.Config{ID: c.ID, AppID: c.AppID, Workspace: c.Workspace, ClientID: c.ClientID, ServerURL: c.ServerURL,
		Token: c.Token, Manifest: c.Manifest}
	w := New(Options{AllowStdio: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := w.Start(ctx, cfg); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	l := w.links(cfg.ID)[0]
	for _, tool := range []string{"spawn", "stubborn"} {
		if err := l.do(ctx, func(cs *mcp.ClientSession) error {
			_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool})
			return err
		}); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
	}
	fmt.Println("READY")
	select {}
}

// TestHostileStdioWorkerKilled: the worker is killed (SIGKILL, no chance
// to stop anything) while its stdio server runs a child and a stubborn
// setsid grandchild: the supervisor ends them all.
func TestHostileStdioWorkerKilled(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc")
	}
	h := newHarness(t)
	spec, mark := markedSpec(t)
	cfg := h.config(map[string]any{"mcpServers": map[string]any{"local": spec}})
	b, err := json.Marshal(helperConfig{ID: cfg.ID, AppID: cfg.AppID, Workspace: cfg.Workspace, ClientID: cfg.ClientID,
		ServerURL: cfg.ServerURL, Token: cfg.Token, Manifest: cfg.Manifest})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testBinary, "-test.run=^$")
	cmd.Env = append(os.Environ(), workerHelperEnv+"=1", "MCPPROXY_TEST_CONFIG="+string(b))
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
	if err != nil || strings.TrimSpace(line) != "READY" {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	testserver.WaitFor(t, 30*time.Second, "server, child and grandchild running", func() bool { return len(markedProcs(mark)) >= 3 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	testserver.WaitFor(t, 60*time.Second, "no process of the session left", func() bool { return len(markedProcs(mark)) == 0 })
	testserver.WaitFor(t, 30*time.Second, "no service of the app", func() bool { return len(h.services(cfg)) == 0 })
}
