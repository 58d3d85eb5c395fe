package workertest

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// descendants lists the live (not zombie) processes below pid, as /proc
// shows them (nothing where there is no /proc). Processes of a session
// supervisor's PID namespace show there too, with their outer pids.
func descendants(pid int) map[int]string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	kids := map[int][]int{}
	names := map[int]string{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open || close+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[close+2:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		kids[ppid] = append(kids[ppid], p)
		names[p] = s[open+1 : close]
	}
	out := map[int]string{}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			if _, seen := out[k]; !seen {
				out[k] = names[k]
				queue = append(queue, k)
			}
		}
	}
	return out
}

// waitNoNewProcesses waits until no descendant of this process is left
// that was not there before, and returns those still there after d
// ("pid (name)").
func waitNoNewProcesses(before map[int]string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		var left []string
		for p, name := range descendants(os.Getpid()) {
			if _, old := before[p]; !old {
				left = append(left, strconv.Itoa(p)+" ("+name+")")
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
