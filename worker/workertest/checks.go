package workertest

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// testRegistration: the service is a server-app-worker of the app types,
// with every function of the worker API.
func (e *env) testRegistration(t *testing.T) {
	s := e.svc(t, e.ctl)
	if s.Type != "server-app-worker" {
		t.Errorf("service type %q, want server-app-worker", s.Type)
	}
	types, _ := s.Get("supported_types").([]any)
	for _, a := range []*App{&e.o.Serve, e.o.Complete, e.o.Fail} {
		if a != nil && !slices.Contains(types, any(a.Type)) {
			t.Errorf("supported_types %v lacks %q", types, a.Type)
		}
	}
	for _, fn := range []string{hyphaworker.MethodStart, hyphaworker.MethodStop, hyphaworker.MethodListSessions,
		hyphaworker.MethodGetSessionInfo, hyphaworker.MethodGetLogs, hyphaworker.MethodPrepareWorkspace, hyphaworker.MethodCloseWorkspace} {
		if s.Func(fn) == nil {
			t.Errorf("function %s missing", fn)
		}
	}
}

// testStatus: running once start returns and listed; completed or failed
// when the app ends by itself; gone once stopped.
func (e *env) testStatus(t *testing.T) {
	ws := wsOf(e.a)
	id := e.start(t, e.o.Serve, ws, nil)
	info := e.waitStatus(t, id, string(worker.StatusRunning))
	for k, want := range map[string]any{"session_id": id, "workspace": ws, "app_type": e.o.Serve.Type} {
		if info[k] != want {
			t.Errorf("get_session_info %s = %v, want %v", k, info[k], want)
		}
	}
	if !slices.Contains(e.listed(t, e.ctl, ws), id) {
		t.Errorf("list_sessions(%s) does not list the running session %s", ws, id)
	}
	if _, err := e.svc(t, e.ctl).Call(e.ctx(t), hyphaworker.MethodStop, id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if slices.Contains(e.listed(t, e.ctl, ws), id) {
		t.Errorf("the stopped session %s is still listed", id)
	}
	if m, err := e.info(t, id); err == nil && m["status"] == string(worker.StatusRunning) {
		t.Errorf("the stopped session %s still reports running", id)
	}

	if e.o.Complete != nil {
		id := e.start(t, *e.o.Complete, ws, nil)
		info := e.waitStatus(t, id, string(worker.StatusCompleted))
		if code, ok := toInt(info["exit_code"]); info["exit_code"] != nil && (!ok || code != 0) {
			t.Errorf("completed session exit_code %v, want 0", info["exit_code"])
		}
	}
	if e.o.Fail != nil {
		id := e.start(t, *e.o.Fail, ws, nil)
		info := e.waitStatus(t, id, string(worker.StatusFailed))
		if info["error"] == nil && info["exit_code"] == nil {
			t.Errorf("failed session says neither why (error) nor how (exit_code): %v", info)
		}
	}
}

// testIdempotentStop: stop twice, concurrently, and on an unknown id.
func (e *env) testIdempotentStop(t *testing.T) {
	ws := wsOf(e.a)
	id := e.start(t, e.o.Serve, ws, nil)
	e.waitStatus(t, id, string(worker.StatusRunning))
	s := e.svc(t, e.ctl)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := s.Call(e.ctx(t), hyphaworker.MethodStop, id)
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent stop: %v", err)
		}
	}
	if _, err := s.Call(e.ctx(t), hyphaworker.MethodStop, id); err != nil {
		t.Errorf("stop of a stopped session: %v", err)
	}
	if _, err := s.Call(e.ctx(t), hyphaworker.MethodStop, ws+"/no-such-session"); err != nil {
		t.Errorf("stop of an unknown session: %v", err)
	}
}

// testIsolation: a client of another workspace is refused by every
// function (or, for listings, sees nothing) and the session is untouched.
func (e *env) testIsolation(t *testing.T) {
	ws := wsOf(e.a)
	id := e.start(t, e.o.Serve, ws, nil)
	e.waitStatus(t, id, string(worker.StatusRunning))
	e.waitLines(t, id)
	before := len(e.stdout(t, id))

	for _, c := range []*rpc.Client{e.b, e.a} {
		who := c.Info().ClientID + " (workspace " + wsOf(c) + ")"
		s := e.svc(t, c)
		for _, call := range []struct {
			method string
			args   []any
		}{
			{hyphaworker.MethodGetSessionInfo, []any{id}},
			{hyphaworker.MethodGetLogs, []any{id}},
			{hyphaworker.MethodStop, []any{id}},
			{hyphaworker.MethodCloseWorkspace, []any{ws}},
			{hyphaworker.MethodStart, []any{e.config(e.o.Serve, wsOf(c))}},
		} {
			got, err := s.Call(e.ctx(t), call.method, call.args...)
			if err == nil {
				t.Errorf("%s called %s on a worker of the server's controller: succeeded (%v), want a refusal", who, call.method, got)
			} else if !isPermissionError(err) {
				t.Errorf("%s called %s: %v, want a permission refusal", who, call.method, err)
			}
		}
		if got, err := s.Call(e.ctx(t), hyphaworker.MethodListSessions, ws); err == nil {
			if items, _ := got.([]any); len(items) > 0 {
				t.Errorf("%s listed the sessions of %s: %v", who, ws, got)
			}
		} else if !isPermissionError(err) {
			t.Errorf("%s called list_sessions: %v, want a permission refusal or nothing", who, err)
		}
	}
	// The controller's listing of another workspace does not show it.
	if slices.Contains(e.listed(t, e.ctl, wsOf(e.b)), id) {
		t.Errorf("list_sessions(%s) lists the session %s of workspace %s", wsOf(e.b), id, ws)
	}
	e.waitStatus(t, id, string(worker.StatusRunning))
	if after := len(e.stdout(t, id)); after < before {
		t.Errorf("the session's logs shrank from %d to %d lines after the refused calls", before, after)
	}
}

// testLogPaging: pages of stdout through type, offset and limit.
func (e *env) testLogPaging(t *testing.T) {
	id := e.start(t, e.o.Serve, wsOf(e.a), nil)
	e.waitLines(t, id)
	const size = 7
	var got []string
	offset := 0
	for len(got) < e.o.Lines {
		page := e.logs(t, id, offset, size)
		items := contents(page)
		if len(items) == 0 {
			t.Fatalf("get_logs(offset %d, limit %d) is empty after %d of %d lines", offset, size, len(got), e.o.Lines)
		}
		if len(items) > size {
			t.Fatalf("get_logs(limit %d) returned %d items", size, len(items))
		}
		if total, ok := toInt(page["total"]); !ok || total < e.o.Lines {
			t.Fatalf("get_logs total %v, want at least %d", page["total"], e.o.Lines)
		}
		if off, ok := toInt(page["offset"]); !ok || off != offset {
			t.Fatalf("get_logs offset %v, want %d", page["offset"], offset)
		}
		if next, ok := toInt(page["next_offset"]); page["next_offset"] != nil && (!ok || next != offset+len(items)) {
			t.Fatalf("get_logs next_offset %v, want %d", page["next_offset"], offset+len(items))
		}
		got = append(got, items...)
		offset += len(items)
	}
	for i := range e.o.Lines {
		if want := e.o.LinePrefix + "line " + strconv.Itoa(i+1); got[i] != want {
			t.Fatalf("stdout line %d is %q, want %q (paged: %q)", i, got[i], want, got)
		}
	}
	// Past the end: an empty page, not an error.
	if items := contents(e.logs(t, id, offset+1000, size)); len(items) != 0 {
		t.Errorf("get_logs past the end returned %q", items)
	}
	// Another type holds none of the lines.
	other := worker.LogStderr
	if e.o.LogType == worker.LogStderr {
		other = worker.LogStdout
	}
	v, err := e.svc(t, e.ctl).Call(e.ctx(t), hyphaworker.MethodGetLogs, id, string(other))
	if err != nil {
		t.Fatalf("get_logs(%s): %v", other, err)
	}
	m, _ := v.(map[string]any)
	for _, line := range contents(m) {
		if slices.Contains(got, line) && line != "" {
			t.Errorf("%s page holds the %s line %q", other, e.o.LogType, line)
		}
	}
}

// testProgress: start reports its progress through progress_callback.
func (e *env) testProgress(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	cb := func(p map[string]any) {
		mu.Lock()
		msgs = append(msgs, fmt.Sprint(p["type"], ": ", p["message"]))
		mu.Unlock()
	}
	id := e.start(t, e.o.Serve, wsOf(e.a), map[string]any{"progress_callback": cb})
	e.waitStatus(t, id, string(worker.StatusRunning))
	// Progress is delivered without blocking start: wait for it.
	deadline := time.Now().Add(e.o.Timeout)
	for {
		mu.Lock()
		n := len(msgs)
		got := slices.Clone(msgs)
		mu.Unlock()
		if n > 0 {
			for _, m := range got {
				if m == ": " || m == "<nil>: <nil>" {
					t.Errorf("a progress message without type and message: %q", got)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("start reported no progress through progress_callback")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testCloseWorkspace: close_workspace stops the sessions of one workspace
// and leaves the others running.
func (e *env) testCloseWorkspace(t *testing.T) {
	wsA, wsB := wsOf(e.a), wsOf(e.b)
	a1 := e.start(t, e.o.Serve, wsA, nil)
	a2 := e.start(t, e.o.Serve, wsA, nil)
	b1 := e.start(t, e.o.Serve, wsB, nil)
	for _, id := range []string{a1, a2, b1} {
		e.waitStatus(t, id, string(worker.StatusRunning))
	}
	if _, err := e.svc(t, e.ctl).Call(e.ctx(t), hyphaworker.MethodCloseWorkspace, wsA); err != nil {
		t.Fatalf("close_workspace(%s): %v", wsA, err)
	}
	if left := e.listed(t, e.ctl, wsA); len(left) > 0 {
		t.Errorf("sessions of %s listed after close_workspace: %v", wsA, left)
	}
	e.waitStatus(t, b1, string(worker.StatusRunning))
	if !slices.Contains(e.listed(t, e.ctl, wsB), b1) {
		t.Errorf("close_workspace(%s) removed the session %s of %s", wsA, b1, wsB)
	}
}
