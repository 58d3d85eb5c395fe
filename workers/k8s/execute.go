package k8s

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hypha-go/hypha/worker"
)

// Execute runs a script in the session's container with the shell
// (config "shell", default /bin/sh) as `shell -c script`, and returns
// upstream's result shape: {"status": "ok"|"error", "outputs": [{"type":
// "stream", "name": "stdout"|"stderr", "text"}], "error": {ename, evalue,
// traceback}}. config "timeout" (seconds, default 30) bounds it; a command
// that is not done by then is abandoned and reported as a TimeoutError.
func (w *Worker) Execute(ctx context.Context, req worker.ExecuteRequest) (any, error) {
	if w.opts.Executor == nil {
		return nil, fmt.Errorf("%w: execute (no exec access to the cluster)", worker.ErrNotSupported)
	}
	s, err := w.Sessions.LookupFor(ctx, req.SessionID)
	if err != nil {
		return nil, err
	}
	h, ok := worker.HandleOf[*podHandle](s)
	if !ok {
		return nil, worker.SessionNotFound(req.SessionID)
	}
	if st := s.Status(); st != worker.StatusRunning {
		return nil, fmt.Errorf("%w: session %s is %s, not running", worker.ErrWorker, req.SessionID, st)
	}
	shell := "/bin/sh"
	if v, ok := req.Config["shell"]; ok && v != nil {
		sh, _ := v.(string)
		if !strings.HasPrefix(sh, "/") || strings.ContainsFunc(sh, func(r rune) bool { return r <= ' ' }) {
			return nil, fmt.Errorf("%w: execute config shell %v: want an absolute path without spaces", worker.ErrInvalidConfig, v)
		}
		shell = sh
	}
	if v, ok := req.Config["container"]; ok && v != nil && v != ContainerName {
		return nil, fmt.Errorf("%w: execute config container %v: the pod has one container, %q", worker.ErrInvalidConfig, v, ContainerName)
	}
	timeout := req.Timeout(w.opts.ExecuteTimeout)
	rep := worker.NewReporter(req.ProgressFunc, worker.ReporterOptions{Logger: w.opts.Logger})
	defer func() { _ = rep.Close(context.WithoutCancel(ctx)) }()
	rep.Info("executing command in pod " + h.name + "...")

	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A stop of the session ends the command too.
	defer context.AfterFunc(s.Context(), cancel)()
	stdout := &cappedBuffer{max: w.opts.MaxExecOutput}
	stderr := &cappedBuffer{max: w.opts.MaxExecOutput}
	code, err := w.opts.Executor.Exec(ectx, ExecRequest{
		Namespace: w.opts.Namespace, Pod: h.name, Container: ContainerName,
		Command: []string{shell, "-c", req.Script}, Stdout: stdout, Stderr: stderr,
	})
	out, errText := strings.TrimRight(stdout.String(), "\n"), strings.TrimRight(stderr.String(), "\n")
	outputs := []any{}
	if out != "" {
		outputs = append(outputs, map[string]any{"type": "stream", "name": "stdout", "text": out})
		s.Log(worker.LogStdout, out)
	}
	if errText != "" {
		outputs = append(outputs, map[string]any{"type": "stream", "name": "stderr", "text": errText})
		s.Log(worker.LogStderr, errText)
	}
	fail := func(ename, evalue string) map[string]any {
		rep.Error(evalue)
		s.Log(worker.LogError, evalue)
		tb := []any{evalue}
		if errText != "" {
			tb = []any{errText}
		}
		return map[string]any{"status": "error", "outputs": outputs,
			"error": map[string]any{"ename": ename, "evalue": evalue, "traceback": tb}}
	}
	switch {
	case err != nil && errors.Is(ectx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return fail("TimeoutError", fmt.Sprintf("command execution timed out after %s", timeout)), nil
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return fail("KubernetesApiError", err.Error()), nil
	case code != 0:
		return fail("CommandError", fmt.Sprintf("command failed with return code %d", code)), nil
	}
	rep.Success("command executed successfully")
	return map[string]any{"status": "ok", "outputs": outputs}, nil
}
