package process

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/worker"
)

// helperEnv makes the test binary act as a worker process that starts one
// session and waits to be killed (TestChildDiesWithWorker).
const helperEnv = "PROCESS_WORKER_TEST_HELPER"

func TestMain(m *testing.M) {
	MaybeSupervise()
	if os.Getenv(helperEnv) == "1" {
		runHelper()
		return
	}
	if os.Getenv(treeHelperEnv) == "1" {
		runTreeHelper()
		return
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(SpawnerFunction))
}

// runHelper starts a session running "exec sleep 60" and prints the pid of
// the sleep process, then blocks until it is killed.
func runHelper() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "exec sleep 60\n")
	}))
	w := New(Options{Python: "sh", WorkDir: os.Getenv("PROCESS_WORKER_TEST_DIR")})
	cfg := worker.Config{
		ID: "ws/helper", Workspace: "ws", ClientID: "helper", AppFilesBaseURL: srv.URL,
		EntryPoint: "main.sh", Manifest: worker.Manifest{"type": TypePython},
	}
	if _, err := w.Start(context.Background(), cfg); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	s, _ := w.Sessions.Lookup("ws/helper")
	h, _ := worker.HandleOf[*proc](s)
	fmt.Println("PID", h.pid)
	select {}
}

// procStat is one line of /proc/<pid>/stat.
type procStat struct {
	pid, ppid, pgrp int
	state           byte
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return procStat{}, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 3 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgrp, _ := strconv.Atoi(f[2])
	return procStat{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0][0]}, true
}

// allProcs lists every process visible in /proc.
func allProcs(t *testing.T) []procStat {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			out = append(out, st)
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z'
}

// waitGone waits until none of pids is alive and no live process is in
// one of the groups.
func waitGone(t *testing.T, pids, groups []int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for _, p := range pids {
			if alive(p) {
				left = append(left, fmt.Sprintf("pid %d", p))
			}
		}
		if len(groups) > 0 {
			set := map[int]bool{}
			for _, g := range groups {
				set[g] = true
			}
			for _, st := range allProcs(t) {
				if set[st.pgrp] && st.state != 'Z' {
					left = append(left, fmt.Sprintf("pid %d in group %d", st.pid, st.pgrp))
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes survived: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noChildren fails if the test process has any child process left.
func noChildren(t *testing.T) {
	t.Helper()
	me := os.Getpid()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var kids []int
		for _, st := range allProcs(t) {
			if st.ppid == me {
				kids = append(kids, st.pid)
			}
		}
		if len(kids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child processes left: %v", kids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
