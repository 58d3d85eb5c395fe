package apps

import (
	"context"
	"fmt"
	"iter"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// The terminal relay: attach_terminal, write_terminal and resize_terminal
// reach a terminal session's worker for a caller with read_write on the
// session's workspace. The built-in terminal worker lives in public, where
// only the controller and root may call it (docs/security.md); as for
// execute, the controller relays after checking the caller, so that a
// workspace member can use the web terminal (internal/assets/xterm) and
// `hypha run` of a terminal app with an ordinary workspace token. The
// relay names the caller's session only: the worker sees the controller,
// and the controller sees that the caller may write to that session.

// terminalSession returns the running session id for a caller allowed to
// drive its terminal.
func (c *Controller) terminalSession(cl *caller, id, what string) (*session, error) {
	if _, err := c.sessionWorkspace(cl, id, auth.ReadWrite, what+" "+id); err != nil {
		return nil, err
	}
	s, err := c.runningSession(id)
	if err != nil {
		return nil, err
	}
	if s.appType != "terminal" {
		return nil, fmt.Errorf("session %s is a %s app, not a terminal", id, s.appType)
	}
	return s, nil
}

// terminalFunctions are the relay's functions on the server-apps service.
func (c *Controller) terminalFunctions() map[string]any {
	write := func(ctx context.Context, call *rpc.Call, sessionID, data string) (any, error) {
		cl, err := callerOf(call)
		if err != nil {
			return nil, fmt.Errorf("write_terminal: %w", err)
		}
		s, err := c.terminalSession(cl, sessionID, "write to the terminal of")
		if err != nil {
			return nil, err
		}
		return s.worker.Call(s.workerCtx(ctx), "write_terminal", sessionID, data)
	}
	resize := func(ctx context.Context, call *rpc.Call, sessionID string, rows, cols int) (any, error) {
		cl, err := callerOf(call)
		if err != nil {
			return nil, fmt.Errorf("resize_terminal: %w", err)
		}
		s, err := c.terminalSession(cl, sessionID, "resize the terminal of")
		if err != nil {
			return nil, err
		}
		return s.worker.Call(s.workerCtx(ctx), "resize_terminal", sessionID, rows, cols)
	}
	// attach's context lives as long as the generator (rpc ends it when
	// the caller closes or leaves), and with it the worker's generator.
	attach := func(ctx context.Context, call *rpc.Call, sessionID string) (iter.Seq2[any, error], error) {
		cl, err := callerOf(call)
		if err != nil {
			return nil, fmt.Errorf("attach_terminal: %w", err)
		}
		s, err := c.terminalSession(cl, sessionID, "attach to the terminal of")
		if err != nil {
			return nil, err
		}
		g, err := s.worker.Stream(s.workerCtx(ctx), "attach", sessionID)
		if err != nil {
			return nil, err
		}
		return func(yield func(any, error) bool) {
			gctx, cancel := context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(c.baseCtx, cancel)() // the controller's end ends it too
			for v, err := range g.All(gctx) {
				if !yield(v, err) || err != nil {
					return
				}
			}
		}, nil
	}
	return map[string]any{
		"write_terminal": rpc.Doc(rpc.Params(write, "session_id", "data"),
			"Write input to a terminal session (read_write on its workspace): the worker's {success, bytes_written}"),
		"resize_terminal": rpc.Doc(rpc.Params(resize, "session_id", "rows", "cols"),
			"Resize a terminal session (read_write on its workspace): the worker's {success}"),
		"attach_terminal": rpc.Doc(rpc.Params(attach, "session_id"),
			"A generator of a terminal session's output (read_write on its workspace), as the worker's attach"),
	}
}
