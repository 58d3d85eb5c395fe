// Command hypha runs the embedded Hypha server, workers and client tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hypha-go/hypha/workers/process"
)

func main() {
	// A session supervisor of the process worker is this binary too.
	process.MaybeSupervise()
	os.Exit(run(os.Args[1:]))
}

// ownsProcess is set when the command line runs as its own process (from
// main, or as a testscript command): only then may a command replace the
// process (re-exec without secrets) or harden it. Commands that tests run
// in-process leave the test binary alone.
var ownsProcess bool

// run executes the command line and returns the exit code (testscript calls it too).
func run(args []string) int {
	ownsProcess = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// exitError ends the command with a code and no extra message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }
