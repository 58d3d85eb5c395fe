package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"

	"github.com/hypha-go/hypha/rpc"
)

// Exit codes of hypha run besides the app's own (see docs/apps.md).
const (
	exitFailure   = 1   // the app failed without an exit code of its own, or hypha run itself failed
	exitInterrupt = 130 // Ctrl-C (128 + SIGINT), as shells report it
	exitTerm      = 143 // SIGTERM (128 + SIGTERM)
)

// signalExitCode is the exit code for a run ended by a signal: the cause
// of ctx names SIGTERM or, otherwise, Ctrl-C.
func signalExitCode(ctx context.Context) int {
	if c := context.Cause(ctx); c != nil && strings.HasPrefix(c.Error(), syscall.SIGTERM.String()) {
		return exitTerm
	}
	return exitInterrupt
}

// runOutcome reports how session sid ended (status as the log stream saw
// it) and returns hypha run's result: nil when the app completed, the
// app's own exit code when it exited with one, exitFailure otherwise. The
// failure message is printed only when the streamed logs did not already
// show it, so every event appears once.
func runOutcome(ctx context.Context, apps *rpc.RemoteService, sid, status string, diag io.Writer, shown *errorLines) error {
	var info map[string]any
	if v, err := apps.Call(ctx, "get_session_info", sid); err == nil {
		info, _ = v.(map[string]any)
		// The answer is fresher than the stream's view when they differ.
		if st, _ := info["status"].(string); st == "completed" || st == "failed" {
			status = st
		}
	}
	code, hasCode := exitCodeOf(info)
	fmt.Fprintf(diag, "[info] session %s %s\n", sid, status)
	switch status {
	case "completed":
		if hasCode && code != 0 {
			return exitError{code: code}
		}
		return nil
	case "failed":
		if msg, _ := info["error"].(string); msg != "" && !shown.seen(msg) {
			fmt.Fprintf(diag, "[error] %s\n", msg)
		}
		if hasCode && code != 0 {
			return exitError{code: code}
		}
		return exitError{code: exitFailure}
	}
	// Stopped by someone else, or gone: the app did not finish its run.
	fmt.Fprintf(diag, "[error] session %s ended before the app finished (status %s)\n", sid, status)
	return exitError{code: exitFailure}
}

// exitCodeOf reads the exit_code a process worker reports for an app that
// exited by itself; only codes a process can exit with (0-255) count.
func exitCodeOf(info map[string]any) (int, bool) {
	if c, ok := info["exit_code"].(int64); ok && c >= 0 && c <= 255 {
		return int(c), true
	}
	return 0, false
}

// errorLines passes output through to w and remembers the messages of the
// "[error] " lines written, so that the final report does not print a
// failure the streamed logs already showed. It keeps the last maxErrorLines.
type errorLines struct {
	w    io.Writer
	mu   sync.Mutex
	part []byte   // an unfinished line
	long bool     // part overflowed: the rest of this line is skipped
	last []string // messages of the last error lines, oldest first
}

const maxErrorLines = 32

func (e *errorLines) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.part = append(e.part, p[:n]...)
	for {
		i := bytes.IndexByte(e.part, '\n')
		if i < 0 {
			break
		}
		if msg, ok := strings.CutPrefix(string(e.part[:i]), "[error] "); ok && !e.long {
			e.last = append(e.last, msg)
			if len(e.last) > maxErrorLines {
				e.last = e.last[1:]
			}
		}
		e.part, e.long = e.part[i+1:], false
	}
	if len(e.part) > 64<<10 {
		e.part, e.long = e.part[:0], true // bounded memory; not an error line worth matching
	}
	return n, err
}

// seen reports whether msg was written as an error line.
func (e *errorLines) seen(msg string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	msg = strings.TrimRight(msg, "\n")
	for _, m := range e.last {
		if m == msg {
			return true
		}
	}
	return false
}

// shownIn reports whether one of the error lines shown so far is part of
// msg: a final error that only repeats (and wraps) what was printed.
func (e *errorLines) shownIn(msg string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.last {
		if m != "" && strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
