package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/terminal"
)

// detachKey (Ctrl-]) leaves an attached terminal and stops its session, as
// telnet's escape does; every other key goes to the remote program, Ctrl-C
// included.
const detachKey = 0x1d

// errDetached: the user pressed the detach key.
var errDetached = errors.New("detached")

// attachTerminal shows a terminal session on this process's terminal: the
// session's output (from the worker's attach generator) goes to out; when
// in is a terminal, it is put in raw mode and every key goes to the
// session (write_terminal), and the session follows this terminal's size
// (resize_terminal, again on SIGWINCH). When in is not a terminal only the
// output is shown. It returns when the session's program ended, on the
// detach key (errDetached), or when ctx ends.
func attachTerminal(ctx context.Context, c *rpc.Client, workerID, sid string, in *os.File, out io.Writer, diag io.Writer) error {
	svc, err := c.GetService(ctx, workerID)
	if err != nil {
		return fmt.Errorf("terminal worker %s: %w", workerID, err)
	}
	w := hyphaworker.Remote(svc)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	g, err := w.Stream(ctx, terminal.ExtAttach, sid)
	if err != nil {
		return fmt.Errorf("attach to %s: %w (the terminal worker must let this client call it: root on the embedded server, or a worker in your own workspace)", sid, err)
	}
	fd := int(in.Fd())
	if term.IsTerminal(fd) {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		fmt.Fprintf(diag, "[info] attached to %s; Ctrl-] stops the session and leaves\r\n", sid)
		resize := func() {
			if cols, rows, err := term.GetSize(fd); err == nil {
				_, _ = w.Call(ctx, terminal.ExtResizeTerminal, sid, rows, cols)
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for {
				select {
				case <-winch:
					resize()
				case <-ctx.Done():
					return
				}
			}
		}()
		// The reader stays blocked in Read until the next key once the
		// session ended; the process exits soon after.
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					data := buf[:n]
					for i, b := range data {
						if b == detachKey {
							if i > 0 {
								_, _ = w.Call(ctx, terminal.ExtWriteTerminal, sid, string(data[:i]))
							}
							cancel(errDetached)
							return
						}
					}
					if _, err := w.Call(ctx, terminal.ExtWriteTerminal, sid, string(data)); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for v, err := range g.All(ctx) {
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errDetached) {
				return errDetached
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("attach to %s: %w", sid, err)
		}
		m, _ := v.(map[string]any)
		switch m["type"] {
		case "initial", "update", "dropped":
			s, _ := m["content"].(string)
			if _, err := io.WriteString(out, s); err != nil {
				return err
			}
		case "ended":
			return nil
		}
	}
	if errors.Is(context.Cause(ctx), errDetached) {
		return errDetached
	}
	return nil
}
