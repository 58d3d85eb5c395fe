package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestRunTerminalInteractive runs `hypha run examples/hello-terminal` on a
// real pseudo-terminal, as a user would in theirs: the greeting and prompt
// show, typed keys reach the session's bash, the session has this
// terminal's size and follows a resize (SIGWINCH), and Ctrl-] stops the
// session and leaves with code 0.
func TestRunTerminalInteractive(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// testscript.Main runs the hypha command when the binary is called so.
	link := filepath.Join(t.TempDir(), "hypha")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	example, _ := filepath.Abs("../../examples/hello-terminal")
	cmd := exec.Command(link, "run", example)
	cmd.Env = append(os.Environ(), "HYPHA_SERVER_URL=")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(chan []byte, 64)
	go func() {
		defer close(out)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				out <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				return
			}
		}
	}()
	var seen bytes.Buffer
	expect := func(want string) {
		t.Helper()
		deadline := time.After(90 * time.Second)
		for !strings.Contains(seen.String(), want) {
			select {
			case b, ok := <-out:
				if !ok {
					t.Fatalf("hypha run ended before %q; output:\n%s", want, seen.String())
				}
				seen.Write(b)
			case <-deadline:
				_ = cmd.Process.Kill()
				t.Fatalf("no %q in the output:\n%s", want, seen.String())
			}
		}
	}
	expect("hello-terminal$ ")
	if !strings.Contains(seen.String(), "Hello from a terminal app") {
		t.Fatalf("no greeting:\n%s", seen.String())
	}
	io.WriteString(f, "echo $((3*4)); stty size\r")
	expect("12\r\n30 100\r\n")
	if err := pty.Setsize(f, &pty.Winsize{Rows: 33, Cols: 99}); err != nil {
		t.Fatal(err)
	}
	// The resize reaches the session asynchronously: ask until it shows.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(seen.String(), "\r\n33 99\r\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the resize never reached the session:\n%s", seen.String())
		}
		io.WriteString(f, "stty size\r")
		select {
		case b := <-out:
			seen.Write(b)
		case <-time.After(time.Second):
		}
	}
	io.WriteString(f, "\x1d") // Ctrl-]
	expect("[info] stopped ")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	go func() {
		for range out {
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hypha run: %v\n%s", err, seen.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("hypha run did not exit after Ctrl-]")
	}
}
