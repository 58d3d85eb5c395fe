package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/workers/process"
)

// seqChecker checks that what is written is the lines "0", "1", … in order.
type seqChecker struct {
	mu      sync.Mutex
	partial []byte
	n       int
	bad     string // the first wrong line
}

func (c *seqChecker) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := append(c.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if line := string(data[:i]); c.bad == "" && line != strconv.Itoa(c.n) {
			c.bad = fmt.Sprintf("line %d is %q", c.n, line)
		}
		c.n++
		data = data[i+1:]
	}
	c.partial = append([]byte(nil), data...)
	return len(p), nil
}

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
}

// writeCounter writes an app printing the numbers 0..n-1 in a tight loop.
func writeCounter(t *testing.T, n int) string {
	dir := t.TempDir()
	path := filepath.Join(dir, "many.py")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("for i in range(%d):\n    print(i)\n", n)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// hypha run delivers every line of an app that prints 1,000,000 lines as
// fast as it can: complete, in order, on stdout, with no warning. The
// follower holds the worker back when it falls behind the retention.
func TestRunDeliversEveryLine(t *testing.T) {
	needPython(t)
	const n = 1_000_000
	path := writeCounter(t, n)
	t.Setenv("HYPHA_SERVER_URL", "")
	var out seqChecker
	var diag syncBuffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&diag)
	cmd.SetArgs([]string{"run", path})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("hypha run: %v\n%s", err, diag.String())
	}
	if out.bad != "" || out.n != n || len(out.partial) != 0 {
		t.Fatalf("stdout: %d lines, want %d; %s", out.n, n, out.bad)
	}
	if strings.Contains(diag.String(), "[warning]") || !strings.Contains(diag.String(), "completed") {
		t.Fatalf("stderr:\n%s", diag.String())
	}
}

// A reader that comes after the retention dropped lines is told exactly
// how many it missed, and then gets the rest in order; plain reads say so
// too.
func TestFollowerToldWhatItMissed(t *testing.T) {
	needPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys, err := embedded.Start(ctx, embedded.Options{
		Server:  server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir(), JWTSecret: "logs-test-secret"},
		Addr:    "127.0.0.1:0",
		Process: process.Options{Logs: worker.LogLimits{MaxEntries: 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	tok, err := sys.RootToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rpc.Connect(ctx, rpc.Config{ServerURL: sys.Server.URL(), Token: tok, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	apps, err := serverApps(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	app, err := loadApp(writeCounter(t, 1000), "", "")
	if err != nil {
		t.Fatal(err)
	}
	appID, err := installApp(ctx, apps, app, true, io.Discard, rpc.Kwargs{"stage": true})
	if err != nil {
		t.Fatal(err)
	}
	v, err := apps.Call(ctx, "start", appID, rpc.Kwargs{"wait_for_service": false, "stage": true}) // the staged version, as hypha run
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := v.(map[string]any)["id"].(string)
	// Nobody follows: a follower that says it has read everything ends the
	// hold kept for the first follower, and the retention drops the oldest
	// lines. Wait for the end.
	if _, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"offset": 1 << 40, "follower": "gone"}); err != nil {
		t.Fatal(err)
	}
	for {
		if ended, status := sessionEnded(ctx, apps, sid); ended {
			if status != "completed" {
				t.Fatalf("session %s", status)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	page, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"limit": 1})
	if err != nil {
		t.Fatal(err)
	}
	pm := page.(map[string]any)
	first, total := asInt64(pm["first_offset"]), asInt64(pm["total"])
	if first != total-100 || asInt64(pm["dropped"]) != first || asInt64(pm["missed"]) != first {
		t.Fatalf("get_logs does not report the trimming: %v", pm)
	}
	// A reader (read permission only) may follow too, without holding.
	readTok, err := c.GenerateToken(ctx, rpc.TokenConfig{Permission: "read"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rpc.Connect(ctx, rpc.Config{ServerURL: sys.Server.URL(), Token: readTok, Workspace: c.Info().Workspace,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	readerApps, err := serverApps(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		follow bool
		apps   *rpc.RemoteService
	}{{false, apps}, {true, apps}, {true, readerApps}} {
		follow := tc.follow
		var out, diag bytes.Buffer
		if _, err := streamLogs(ctx, tc.apps, sid, "", follow, &out, &diag); err != nil {
			t.Fatal(err)
		}
		warn := regexp.MustCompile(`\[warning\] (\d+) lines were dropped`).FindStringSubmatch(diag.String())
		if warn == nil || warn[1] != strconv.FormatInt(first, 10) {
			t.Fatalf("follow=%v: want a warning of %d dropped lines, got:\n%s", follow, first, diag.String())
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if lines[len(lines)-1] != "999" {
			t.Fatalf("follow=%v: last line %q", follow, lines[len(lines)-1])
		}
		for i := 1; i < len(lines); i++ {
			a, _ := strconv.Atoi(lines[i-1])
			b, _ := strconv.Atoi(lines[i])
			if b != a+1 {
				t.Fatalf("follow=%v: %q after %q", follow, lines[i], lines[i-1])
			}
		}
	}
}
