package terminal

import (
	"context"
	"fmt"
	"iter"
	"time"
	"unicode/utf8"

	"github.com/hypha-go/hypha/worker"
)

// Names of the terminal's extension methods (upstream's names).
const (
	ExtWriteTerminal    = "write_terminal"
	ExtReadTerminal     = "read_terminal"
	ExtResizeTerminal   = "resize_terminal"
	ExtGetScreenContent = "get_screen_content"
	ExtAttach           = "attach"
)

// maxWrite bounds one write_terminal.
const maxWrite = 1 << 20

// maxUpdate bounds the content of one attach update.
const maxUpdate = 256 << 10

// Extensions are the terminal functions beyond the worker API. They are
// session functions: the adapter admits a caller only with the declared
// permission on the session's own workspace (the apps controller and root
// aside) and reports another workspace's sessions as not found.
func (w *Worker) Extensions() []worker.Extension {
	return []worker.Extension{
		{
			Name: ExtWriteTerminal, Session: true, Permission: worker.PermissionReadWrite,
			Description: "Write input (keys, text) to the session's terminal: {success, bytes_written}",
			Params:      []string{"session_id", "data"},
			Func:        w.writeTerminal,
		},
		{
			Name: ExtReadTerminal, Session: true, Permission: worker.PermissionReadWrite,
			Description: "The terminal's output since the previous read_terminal of the session (one cursor shared by all callers): {success, output, lost_bytes}",
			Func:        w.readTerminal,
		},
		{
			Name: ExtResizeTerminal, Session: true, Permission: worker.PermissionReadWrite,
			Description: "Resize the session's terminal (the program gets SIGWINCH): {success}",
			Params:      []string{"session_id", "rows", "cols"},
			Func:        w.resizeTerminal,
		},
		{
			Name: ExtGetScreenContent, Session: true, Permission: worker.PermissionRead,
			Description: "The terminal's screen as rendered by the screen model (plain text): {success, content, rows, cols}",
			Func:        w.getScreenContent,
		},
		{
			Name: ExtAttach, Session: true, Permission: worker.PermissionReadWrite,
			Description: "A generator of the terminal's output: first {type: initial, content (the scrollback), terminal_size}, " +
				"then {type: update, content}, {type: dropped, dropped_bytes, content (a repaint)} when this reader fell behind, and {type: ended}. " +
				"With on_screen_update (upstream's form) the same items go to that callback until the session ends or a call of it fails; " +
				"the generator then yields one {success, session_id, detached}",
			Params: []string{"session_id", "on_screen_update?"},
			Func:   w.attach,
		},
	}
}

func (w *Worker) writeTerminal(ctx context.Context, sessionID, data string) (map[string]any, error) {
	s, t, err := w.terminalOf(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if len(data) > maxWrite {
		return nil, fmt.Errorf("%w: data has %d bytes, more than the limit of %d per write", worker.ErrInvalidConfig, len(data), maxWrite)
	}
	if s.Status() != worker.StatusRunning {
		return nil, fmt.Errorf("%w: the terminal of session %s is not running (status %s)", worker.ErrInvalidConfig, sessionID, s.Status())
	}
	n, err := t.write([]byte(data))
	if err != nil {
		return map[string]any{"success": false, "error": err.Error()}, nil
	}
	return map[string]any{"success": true, "bytes_written": int64(n)}, nil
}

func (w *Worker) readTerminal(ctx context.Context, sessionID string) (map[string]any, error) {
	_, t, err := w.terminalOf(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	out, lost := t.readNew(maxUpdate)
	res := map[string]any{"success": true, "output": string(validPrefix(out))}
	if lost > 0 {
		res["lost_bytes"] = lost
	}
	return res, nil
}

func (w *Worker) resizeTerminal(ctx context.Context, sessionID string, rows, cols int) (map[string]any, error) {
	_, t, err := w.terminalOf(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if rows < 1 || cols < 1 || rows > MaxRows || cols > MaxCols {
		return nil, fmt.Errorf("%w: terminal size %dx%d (want 1-%d rows, 1-%d columns)", worker.ErrInvalidConfig, rows, cols, MaxRows, MaxCols)
	}
	if err := t.resize(rows, cols); err != nil {
		return map[string]any{"success": false, "error": err.Error()}, nil
	}
	return map[string]any{"success": true}, nil
}

func (w *Worker) getScreenContent(ctx context.Context, sessionID string) (map[string]any, error) {
	_, t, err := w.terminalOf(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	rows, cols := t.size()
	return map[string]any{"success": true, "content": t.screenText(), "rows": int64(rows), "cols": int64(cols)}, nil
}

// attach streams the output to one viewer. The generator's context lives
// as long as the caller reads: a caller that stops or disconnects ends it
// and detaches the viewer.
//
// onUpdate, when given, is upstream's form, attach(session_id,
// on_screen_update), which upstream's web terminal uses: the call itself
// feeds every item to the callback until the program's output ends, the
// caller detaches (a call of the callback fails) or ctx ends, and answers
// with a generator of one {success, session_id, detached} item (upstream
// answers that dict itself).
func (w *Worker) attach(ctx context.Context, sessionID string, onUpdate any) (iter.Seq2[map[string]any, error], error) {
	s, t, err := w.terminalOf(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	var cb callback
	if onUpdate != nil {
		var ok bool
		if cb, ok = onUpdate.(callback); !ok {
			return nil, fmt.Errorf("%w: on_screen_update: want a function, got %T", worker.ErrInvalidConfig, onUpdate)
		}
	}
	gen, err := w.viewerStream(ctx, s, t, sessionID)
	if err != nil || cb == nil {
		return gen, err
	}
	for item, err := range gen {
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, callbackTimeout)
		_, err := cb.Call(cctx, item)
		cancel()
		if err != nil {
			w.opts.Logger.Debug("on_screen_update failed; detaching", "session", sessionID, "err", err)
			break
		}
	}
	return func(yield func(map[string]any, error) bool) {
		yield(map[string]any{"success": true, "session_id": s.ID(), "detached": true}, nil)
	}, nil
}

// callback is what a caller's function value offers (rpc.RemoteFunc).
type callback interface {
	Call(ctx context.Context, args ...any) (any, error)
}

// callbackTimeout bounds one call of an attach callback: a caller that
// stops answering is detached rather than holding a viewer slot forever.
const callbackTimeout = 30 * time.Second

// viewerStream is attach's generator.
func (w *Worker) viewerStream(ctx context.Context, s *worker.Session, t *tty, sessionID string) (iter.Seq2[map[string]any, error], error) {
	// Refused now when full; the viewer itself is registered when the
	// caller starts reading (a generator never read holds no slot).
	if err := t.roomForViewer(w.opts.MaxViewers); err != nil {
		return nil, fmt.Errorf("%w: session %s: %w", worker.ErrInvalidConfig, sessionID, err)
	}
	return func(yield func(map[string]any, error) bool) {
		v, initial, ended, err := t.attach(w.opts.MaxViewers)
		if err != nil {
			yield(nil, fmt.Errorf("%w: session %s: %w", worker.ErrInvalidConfig, sessionID, err))
			return
		}
		defer t.detach(v)
		rows, cols := t.size()
		initial = trimLeadingPartial(initial)
		var carry []byte
		first := map[string]any{
			"type": "initial", "session_id": s.ID(), "content": string(validPrefix(initial)),
			"terminal_size": map[string]any{"rows": int64(rows), "cols": int64(cols)},
		}
		if !yield(first, nil) || ended {
			if ended {
				yield(map[string]any{"type": "ended", "session_id": s.ID(), "status": string(s.Status())}, nil)
			}
			return
		}
		for {
			data, missed, done := v.take(maxUpdate)
			if missed > 0 {
				carry = nil
				if !yield(map[string]any{"type": "dropped", "session_id": s.ID(), "dropped_bytes": missed, "content": t.repaint()}, nil) {
					return
				}
			}
			if len(data) > 0 {
				data = append(carry, data...)
				keep := incompleteTail(data)
				carry = append([]byte(nil), data[len(data)-keep:]...)
				data = data[:len(data)-keep]
				if len(data) > 0 && !yield(map[string]any{"type": "update", "session_id": s.ID(), "content": string(data)}, nil) {
					return
				}
				continue
			}
			if done {
				yield(map[string]any{"type": "ended", "session_id": s.ID(), "status": string(s.Status())}, nil)
				return
			}
			select {
			case <-v.wake:
			case <-ctx.Done():
				return
			}
		}
	}, nil
}

// incompleteTail is how many bytes at the end of b start a UTF-8
// character that is not complete yet (the rest comes with the next read).
func incompleteTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return len(b) - i
			}
			return 0
		}
	}
	return 0
}

// validPrefix drops an incomplete character at the end.
func validPrefix(b []byte) []byte { return b[:len(b)-incompleteTail(b)] }

// trimLeadingPartial drops continuation bytes at the start (a scrollback
// cut inside a character).
func trimLeadingPartial(b []byte) []byte {
	i := 0
	for i < len(b) && i < utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i++
	}
	return b[i:]
}
