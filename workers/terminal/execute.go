package terminal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hypha-go/hypha/worker"
)

// How execute knows that a command is done: it does not guess from the
// prompt (upstream waits for output to go quiet and looks for a prompt
// character). It types one line that makes the program itself print a
// start marker, run the script and print an end marker with the script's
// status. Both markers carry a random token of this call, and the typed
// line holds the script and the markers only base64-encoded, so neither
// the echo of the line nor anything the script prints by chance can look
// like them. The output is exactly the bytes between the two markers:
// without the echo and without the next prompt.
//
// The line depends on what the terminal runs (its dialect): a POSIX shell
// (sh, bash, dash, zsh, ksh: printf, eval and base64 from coreutils), or a
// Python REPL (python, python3, ...: exec, with each top-level statement
// compiled as the REPL would, so that a bare expression shows its value).
// A long script is typed as several short assignment lines first, so that
// no line exceeds what a terminal in canonical mode accepts (4095 bytes).

// Dialects of execute.
const (
	DialectShell  = "shell"
	DialectPython = "python"
)

// dialectOf picks the dialect from the program's name; manifest
// "execute_dialect" overrides it.
func dialectOf(argv0 string) string {
	base := filepath.Base(argv0)
	if strings.HasPrefix(base, "python") || base == "ipython" || base == "ipython3" {
		return DialectPython
	}
	return DialectShell
}

const chunkLen = 2000 // characters of base64 per typed line

// executeInput is what execute types for script with marker m.
func executeInput(dialect, script, m string) string {
	var wrapper string
	src := base64.StdEncoding.EncodeToString([]byte(script))
	switch dialect {
	case DialectPython:
		wrapper = fmt.Sprintf(`def __hypha_run(src, m):
    import ast, sys, traceback, base64
    g = sys.modules['__main__'].__dict__
    g.pop('__hypha_x', None)
    g.pop('__hypha_run', None)
    print('__hypha_start_' + m + '__', flush=True)
    code = 0
    try:
        tree = ast.parse(base64.b64decode(src).decode(), '<execute>')
        for node in tree.body:
            exec(compile(ast.Interactive([node]), '<execute>', 'single'), g)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    print('__hypha_end_' + m + '_' + str(code) + '__', end='', flush=True)
__hypha_run(%q, %q)
`, src, m)
	default:
		wrapper = fmt.Sprintf("unset __hypha_x\nprintf '__hypha_start_%s__\\n'\neval \"$(printf %%s '%s' | base64 -d)\"\nprintf '__hypha_end_%s_%%d__' \"$?\"\n", m, src, m)
	}
	enc := base64.StdEncoding.EncodeToString([]byte(wrapper))
	var b strings.Builder
	first := true
	for len(enc) > 0 {
		n := min(chunkLen, len(enc))
		part := enc[:n]
		enc = enc[n:]
		switch {
		case dialect == DialectPython && first:
			fmt.Fprintf(&b, "__hypha_x = '%s'\n", part)
		case dialect == DialectPython:
			fmt.Fprintf(&b, "__hypha_x += '%s'\n", part)
		case first:
			fmt.Fprintf(&b, "__hypha_x='%s'\n", part)
		default:
			fmt.Fprintf(&b, "__hypha_x=\"$__hypha_x\"'%s'\n", part)
		}
		first = false
	}
	if dialect == DialectPython {
		b.WriteString("exec(__import__('base64').b64decode(__hypha_x).decode())\n")
	} else {
		b.WriteString("eval \"$(printf %s \"$__hypha_x\" | base64 -d)\"\n")
	}
	return b.String()
}

func newMarker() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// execute runs script in the session's terminal and returns upstream's
// shape: {"status": "ok"|"error", "outputs": [{"type": "stream", "name":
// "stdout", "text"}], "error"?}. Executes of one session run one at a
// time.
func (w *Worker) execute(ctx context.Context, s *worker.Session, h *session, req worker.ExecuteRequest) (any, error) {
	if len(req.Script) > w.opts.MaxScriptBytes {
		return nil, fmt.Errorf("%w: the script has %d bytes, more than the limit of %d", worker.ErrInvalidConfig, len(req.Script), w.opts.MaxScriptBytes)
	}
	raw := false
	if v, ok := req.Config["raw_output"].(bool); ok {
		raw = v
	}
	timeout := req.Timeout(w.opts.ExecuteTimeout)
	timeout = min(timeout, w.opts.MaxExecuteTimeout)
	rep := worker.NewReporter(req.ProgressFunc, worker.ReporterOptions{Logger: w.opts.Logger})
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = rep.Close(cctx)
	}()

	select {
	case h.execSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.Context().Done():
		return nil, fmt.Errorf("%w: session %s is %s", worker.ErrInvalidConfig, s.ID(), s.Status())
	}
	defer func() { <-h.execSem }()
	h.mu.Lock()
	t := h.tty
	h.mu.Unlock()
	if t == nil || s.Status() != worker.StatusRunning {
		return nil, fmt.Errorf("%w: session %s is %s", worker.ErrInvalidConfig, s.ID(), s.Status())
	}
	rep.Info("Executing in the terminal")
	m := newMarker()
	c := newCapture(m, w.opts.MaxExecuteOutput)
	if err := t.addCapture(c); err != nil {
		return errorResult("TerminalEnded", err.Error(), ""), nil
	}
	defer t.removeCapture(c)
	if _, err := t.write([]byte(executeInput(h.dialect, req.Script, m))); err != nil {
		return errorResult("WriteError", err.Error(), ""), nil
	}
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	var waitErr error
	select {
	case <-c.done:
	case <-tm.C:
		waitErr = fmt.Errorf("no end marker within %s: the command may still be running; it was interrupted (Ctrl-C)", timeout)
		// Leave the terminal usable for the next command.
		_, _ = t.write([]byte{0x03})
	case <-ctx.Done():
		waitErr = ctx.Err()
	}
	out, rawOut, outLost, rawLost, code, cerr := c.result()
	text := string(out)
	if raw {
		text = string(rawOut)
		outLost = rawLost
	} else {
		text = cleanOutput(text)
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	if outLost > 0 {
		s.Log(worker.LogInfo, fmt.Sprintf("execute: %d bytes of output beyond the limit of %d were not kept", outLost, w.opts.MaxExecuteOutput))
	}
	switch {
	case waitErr != nil && errors.Is(waitErr, context.Canceled):
		return nil, waitErr
	case waitErr != nil:
		rep.Error(waitErr.Error())
		return errorResult("TimeoutError", waitErr.Error(), text), nil
	case cerr != nil:
		rep.Error(cerr.Error())
		return errorResult("TerminalEnded", cerr.Error(), text), nil
	}
	res := map[string]any{
		"status":    "ok",
		"outputs":   []any{map[string]any{"type": "stream", "name": "stdout", "text": text}},
		"exit_code": int64(code),
	}
	if outLost > 0 {
		res["truncated_bytes"] = outLost
	}
	if code != 0 {
		res["status"] = "error"
		res["error"] = map[string]any{
			"ename": "NonZeroExit", "evalue": fmt.Sprintf("the command ended with status %d", code),
			"traceback": []any{},
		}
		rep.Error(fmt.Sprintf("Command ended with status %d", code))
	} else {
		rep.Success("Command executed")
	}
	return res, nil
}

func errorResult(ename, msg, text string) map[string]any {
	outs := []any{}
	if text != "" {
		outs = append(outs, map[string]any{"type": "stream", "name": "stdout", "text": text})
	}
	return map[string]any{
		"status":  "error",
		"outputs": outs,
		"error":   map[string]any{"ename": ename, "evalue": msg, "traceback": []any{msg}},
	}
}
