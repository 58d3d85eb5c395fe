package k8s

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

// TestExecute runs commands through the (fake) exec API: outputs in
// upstream's shape, a failing command, a timeout, bounded output, and the
// session's own workspace only.
func TestExecute(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, func(o *Options) { o.MaxExecOutput = 1000 })
	id, err := w.Start(testserver.Ctx(t), config("c1", "test/lines:1", nil))
	if err != nil {
		t.Fatal(err)
	}
	own := worker.WithCaller(testserver.Ctx(t), worker.Caller{Workspace: "ws-a"})
	exec := func(script string, cfg map[string]any) map[string]any {
		t.Helper()
		v, err := w.Execute(own, worker.ExecuteRequest{SessionID: id, Script: script, Config: cfg})
		if err != nil {
			t.Fatalf("execute %q: %v", script, err)
		}
		return v.(map[string]any)
	}
	r := exec("echo hello; warn careful", nil)
	outs := r["outputs"].([]any)
	if r["status"] != "ok" || len(outs) != 2 || outs[0].(map[string]any)["text"] != "hello" || outs[1].(map[string]any)["name"] != "stderr" {
		t.Fatalf("result = %v", r)
	}
	req := fc.exec.requests()[0]
	if !slices.Equal(req.Command, []string{"/bin/sh", "-c", "echo hello; warn careful"}) || req.Pod != PodName(id) || req.Container != ContainerName || req.Namespace != testNamespace {
		t.Fatalf("exec request = %+v", req)
	}
	r = exec("echo partial; exit 2", map[string]any{"shell": "/bin/bash"})
	if r["status"] != "error" || r["error"].(map[string]any)["ename"] != "CommandError" || !strings.Contains(r["error"].(map[string]any)["evalue"].(string), "return code 2") {
		t.Fatalf("failing command = %v", r)
	}
	if got := fc.exec.requests()[1].Command[0]; got != "/bin/bash" {
		t.Fatalf("shell = %q", got)
	}
	r = exec("sleep", map[string]any{"timeout": 0.3})
	if r["status"] != "error" || r["error"].(map[string]any)["ename"] != "TimeoutError" {
		t.Fatalf("timed out command = %v", r)
	}
	r = exec("flood 50000", nil)
	text := r["outputs"].([]any)[0].(map[string]any)["text"].(string)
	if len(text) > 1100 || !strings.Contains(text, "[49000 bytes dropped]") {
		t.Fatalf("flood output is %d bytes: %q", len(text), text[len(text)-40:])
	}
	if _, err := w.Execute(own, worker.ExecuteRequest{SessionID: id, Script: "echo", Config: map[string]any{"shell": "sh -c evil"}}); !errors.Is(err, worker.ErrInvalidConfig) {
		t.Fatalf("hostile shell: %v", err)
	}
	if _, err := w.Execute(own, worker.ExecuteRequest{SessionID: id, Script: "echo", Config: map[string]any{"container": "sidecar"}}); !errors.Is(err, worker.ErrInvalidConfig) {
		t.Fatalf("other container: %v", err)
	}
	// The command's output is in the session's logs too, as upstream keeps it.
	if lines := stdoutLines(t, w, id); !slices.Contains(lines, "hello") {
		t.Fatalf("stdout log = %q", lines)
	}
}

// TestExecuteNotConfigured: without an executor execute is not offered.
func TestExecuteNotConfigured(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, func(o *Options) { o.Executor = nil })
	if _, ok := worker.AsExecutor(w); ok {
		t.Fatal("execute offered without an executor")
	}
	if _, err := w.Execute(context.Background(), worker.ExecuteRequest{SessionID: "ws-a/x"}); !errors.Is(err, worker.ErrNotSupported) {
		t.Fatalf("execute: %v", err)
	}
}
