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
	"github.com/hypha-go/hypha/workers/terminal"
)

// detachKey (Ctrl-]) leaves an attached terminal and stops its session, as
// telnet's escape does; every other key goes to the remote program, Ctrl-C
// included.
const detachKey = 0x1d

// errDetached: the user pressed the detach key.
var errDetached = errors.New("detached")

// termAPI is where a terminal session's attach, write and resize go: the
// apps controller's relay (attach_terminal, write_terminal,
// resize_terminal: any client with read_write on the session's workspace),
// or, on a server without it, the terminal worker itself (root, or the
// members of the worker's own workspace).
type termAPI struct {
	svc                   *rpc.RemoteService
	attach, write, resize string
}

func terminalAPI(ctx context.Context, c *rpc.Client, apps *rpc.RemoteService, workerID string) (termAPI, error) {
	if _, ok := apps.Members()["attach_terminal"]; ok {
		return termAPI{svc: apps, attach: "attach_terminal", write: "write_terminal", resize: "resize_terminal"}, nil
	}
	svc, err := c.GetService(ctx, workerID)
	if err != nil {
		return termAPI{}, fmt.Errorf("terminal worker %s: %w", workerID, err)
	}
	return termAPI{svc: svc, attach: terminal.ExtAttach, write: terminal.ExtWriteTerminal, resize: terminal.ExtResizeTerminal}, nil
}

// attachTerminal shows a terminal session on this process's terminal: the
// session's output (from the attach generator) goes to out; when
// in is a terminal, it is put in raw mode and every key goes to the
// session (write_terminal), and the session follows this terminal's size
// (resize_terminal, again on SIGWINCH). When in is not a terminal only the
// output is shown. It returns when the session's program ended, on the
// detach key (errDetached), or when ctx ends.
func attachTerminal(ctx context.Context, c *rpc.Client, apps *rpc.RemoteService, workerID, sid string, in *os.File, out io.Writer, diag io.Writer) error {
	api, err := terminalAPI(ctx, c, apps, workerID)
	if err != nil {
		return err
	}
	w := api.svc
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	v, err := w.Call(ctx, api.attach, sid)
	if err != nil {
		return fmt.Errorf("attach to %s: %w", sid, err)
	}
	g, ok := v.(*rpc.RemoteGenerator)
	if !ok {
		return fmt.Errorf("attach to %s: %s answered %T, not a generator", sid, api.attach, v)
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
				_, _ = w.Call(ctx, api.resize, sid, rows, cols)
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
								_, _ = w.Call(ctx, api.write, sid, string(data[:i]))
							}
							cancel(errDetached)
							return
						}
					}
					if _, err := w.Call(ctx, api.write, sid, string(data)); err != nil {
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
