package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"time"
)

const benchRootToken = "bench-root-token-0123456789"

var listenRE = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// startServerProcess runs "hypha server --port 0" from this binary and waits
// for its listen line.
func startServerProcess(ctx context.Context) (url string, pid int, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "server", "--port", "0", "--root-token", benchRootToken, "--jwt-secret", "bench", "--log-level", "error")
	cmd.Env = append(os.Environ(), "HYPHA_WS_MSG_RATE_LIMIT=1000000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case url = <-found:
		return url, cmd.Process.Pid, stop, nil
	case <-time.After(15 * time.Second):
		stop()
		return "", 0, nil, fmt.Errorf("the server did not start within 15 s")
	}
}

// ulimitNoFile raises the open-files limit for many connections.
func ulimitNoFile(n int) {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < uint64(n) {
		l.Cur = min(uint64(n), l.Max)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
