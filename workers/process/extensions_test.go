package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// signalApp prints "ready", holds 16 MiB, and prints "got USR1" for every
// SIGUSR1.
const signalApp = `import signal, time
signal.signal(signal.SIGUSR1, lambda *a: print("got USR1", flush=True))
ballast = bytearray(16 << 20)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
print("ready", flush=True)
while True:
    time.sleep(0.05)
`

// extWorld is a process worker registered by alice in her workspace, the
// controller (root in public) that starts sessions on it, alice (admin of
// her workspace), a read-only member, bob (another workspace) and an
// anonymous client; alice's session and one of bob's workspace on the same
// worker run signalApp.
type extWorld struct {
	s                        *server.Server
	reg                      *Registered
	alice, reader, bob, anon *rpc.Client
	tokens                   map[string]string
	mine, foreign            string
	serviceName, home        string
}

func newExtWorld(t *testing.T) *extWorld {
	t.Helper()
	needPython(t)
	ctx := ctxT(t)
	ew := &extWorld{s: testserver.Start(t, server.Config{}), home: "ws-user-alice", tokens: map[string]string{}}
	tok := func(id, ws string, grants map[string]auth.Permission) string {
		s, err := ew.s.Issuer().Generate(&auth.UserInfo{ID: id, Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: ws, Workspaces: grants}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ew.tokens["alice"] = tok("alice", ew.home, nil)
	wc := testserver.Connect(t, ew.s, rpc.Config{Token: ew.tokens["alice"], ClientID: "alice-worker"})
	reg, err := Register(ctx, wc, Options{WorkDir: testserver.SharedTempDir(t)}, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	ew.reg = reg
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := reg.Close(cctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	_, ew.serviceName, _ = strings.Cut(reg.ServiceID, "/")
	ew.alice = testserver.Connect(t, ew.s, rpc.Config{Token: ew.tokens["alice"], ClientID: "alice"})
	ew.tokens["reader"] = tok("reader", ew.home, map[string]auth.Permission{ew.home: auth.Read})
	ew.reader = testserver.Connect(t, ew.s, rpc.Config{Token: ew.tokens["reader"], ClientID: "reader", Workspace: ew.home})
	ew.tokens["bob"] = tok("bob", "", nil)
	ew.bob = testserver.Connect(t, ew.s, rpc.Config{Token: ew.tokens["bob"], ClientID: "bob"})
	ew.tokens["anon"] = ""
	ew.anon = testserver.Connect(t, ew.s, rpc.Config{ClientID: "anon"})

	as := newAppServer(t, map[string]string{"main.py": signalApp})
	ctl := ew.remote(t, publicRoot(t, ew.s, "controller"))
	for _, s := range []struct {
		ws  string
		dst *string
	}{{ew.home, &ew.mine}, {"ws-user-bob", &ew.foreign}} {
		cfg, err := worker.ConfigFromMap(wireConfig(as.base(), s.ws, "sig", TypePython, "main.py"))
		if err != nil {
			t.Fatal(err)
		}
		if *s.dst, err = ctl.Start(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		waitLog(t, reg.Worker, *s.dst, worker.LogStdout, "^ready$")
	}
	return ew
}

func (ew *extWorld) remote(t *testing.T, c *rpc.Client) *hyphaworker.RemoteWorker {
	t.Helper()
	return hyphaworker.Remote(service(t, c, ew.reg.ServiceID))
}

// usr1Count counts the "got USR1" lines of session sid.
func (ew *extWorld) usr1Count(t *testing.T, sid string) int {
	t.Helper()
	page, err := ew.reg.Worker.GetLogs(context.Background(), sid, worker.LogQuery{Type: worker.LogStdout})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range contents(page, worker.LogStdout) {
		if c == "got USR1" {
			n++
		}
	}
	return n
}

// TestProcessExtensions: alice drives her session through the process
// worker's extensions with hyphaworker.Remote: the resource usage of the
// app's processes, a SIGUSR1 the app answers, and the log stream, read
// live and ended by itself when the session stops.
func TestProcessExtensions(t *testing.T) {
	ew := newExtWorld(t)
	ctx := ctxT(t)
	w := ew.remote(t, ew.alice)
	if got := w.Extensions(); !slices.Equal(got, []string{ExtResourceUsage, ExtSignal, ExtStreamLogs}) {
		t.Fatalf("Extensions() = %v", got)
	}

	if runtime.GOOS == "linux" {
		var u ResourceUsage
		if err := w.CallInto(ctx, &u, ExtResourceUsage, ew.mine); err != nil {
			t.Fatal(err)
		}
		pid := procOf(t, ew.reg.Worker, ew.mine).pid
		if u.SessionID != ew.mine || u.Status != "running" || len(u.Processes) == 0 || u.Processes[0].PID != pid {
			t.Fatalf("usage = %+v, want the app (pid %d) first", u, pid)
		}
		if u.RSSBytes < 16<<20 || u.CPUSeconds < 0 || !strings.Contains(u.Processes[0].Command, "python") {
			t.Fatalf("usage = %+v, want at least the app's 16 MiB", u)
		}
	}

	// Stream from the start; signal while reading.
	g, err := w.Stream(ctx, ExtStreamLogs, ew.mine, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	var lastSeq int64 = -1
	for v, err := range g.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		m := v.(map[string]any)
		seq, _ := m["seq"].(int64)
		if seq <= lastSeq {
			t.Fatalf("seq %d after %d", seq, lastSeq)
		}
		lastSeq = seq
		seen = append(seen, fmt.Sprint(m["type"], ":", m["content"]))
		if m["content"] == "ready" {
			if _, err := w.Call(ctx, ExtSignal, ew.mine, "usr1"); err != nil {
				t.Fatal(err)
			}
		}
		// The app's answer and the worker's log line of the signal may
		// come in either order: read until both are there.
		if slices.Contains(seen, "stdout:got USR1") && slices.ContainsFunc(seen, func(s string) bool {
			return strings.HasPrefix(s, "info:sent SIGUSR1 to the app")
		}) {
			break
		}
	}
	if !slices.Contains(seen, "stdout:ready") || !slices.ContainsFunc(seen, func(s string) bool {
		return strings.HasPrefix(s, "info:sent SIGUSR1 to the app") && strings.HasSuffix(s, "on request of user alice")
	}) {
		t.Fatalf("stream: %q", seen)
	}
	// Bad arguments are named.
	_, err = w.Call(ctx, ExtSignal, ew.mine, "KILL")
	wantErr(t, "signal KILL", err, "signal: invalid worker config", `signal "KILL" is not one of SIGINT, SIGHUP, SIGUSR1, SIGUSR2`)
	_, err = w.Stream(ctx, ExtStreamLogs, ew.mine, -1)
	wantErr(t, "stream_logs offset -1", err, "stream_logs: invalid worker config: offset")

	// A stream from the current end ends by itself when the session stops.
	g, err = w.Stream(ctx, ExtStreamLogs, rpc.Kwargs{"session_id": ew.mine, "offset": lastSeq + 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 1)
	go func() {
		var rest []string
		for v, err := range g.All(context.Background()) {
			if err != nil {
				rest = append(rest, "error: "+err.Error())
				break
			}
			rest = append(rest, fmt.Sprint(v.(map[string]any)["content"]))
		}
		done <- rest
	}()
	ctl := ew.remote(t, publicRoot(t, ew.s, "controller2"))
	if err := ctl.Stop(ctx, ew.mine); err != nil {
		t.Fatal(err)
	}
	select {
	case rest := <-done:
		if !slices.ContainsFunc(rest, func(s string) bool { return strings.Contains(s, "SIGTERM") }) {
			t.Fatalf("the stream's end: %q, want the stop's log", rest)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end when the session stopped")
	}
	_, err = w.Call(ctx, ExtSignal, ew.mine, "USR1")
	wantErr(t, "signal after stop", err, "signal: session not found")
}

// TestHostileProcessExtensions: the process worker's extensions refuse
// anonymous clients and users of other workspaces (websocket and HTTP), a
// read-only member's signal (read_write), and a session of another
// workspace even to alice, who is admin of the worker's own workspace; no
// refused signal reached an app, and no stream was opened.
func TestHostileProcessExtensions(t *testing.T) {
	ew := newExtWorld(t)
	ctx := ctxT(t)
	rw := "needs read_write permission on workspace " + ew.home
	outside := "the worker serves members of workspace " + ew.home
	type attempt struct {
		who      string
		c        *rpc.Client
		fn, sid  string
		want     string
		httpCode int
	}
	var attempts []attempt
	for _, fn := range []string{ExtResourceUsage, ExtStreamLogs, ExtSignal} {
		for _, sid := range []string{ew.mine, ew.foreign} {
			attempts = append(attempts,
				attempt{"anon", ew.anon, fn, sid, outside, http.StatusForbidden},
				attempt{"bob", ew.bob, fn, sid, outside, http.StatusForbidden})
		}
		attempts = append(attempts, attempt{"alice", ew.alice, fn, ew.foreign, "session not found: " + ew.foreign, http.StatusInternalServerError})
	}
	attempts = append(attempts,
		attempt{"reader", ew.reader, ExtSignal, ew.mine, rw, http.StatusForbidden},
		attempt{"reader", ew.reader, ExtSignal, ew.foreign, rw, http.StatusForbidden})
	args := func(fn, sid string) map[string]any {
		switch fn {
		case ExtSignal:
			return map[string]any{"session_id": sid, "name": "USR1"}
		case ExtStreamLogs:
			return map[string]any{"session_id": sid, "offset": 0}
		}
		return map[string]any{"session_id": sid}
	}
	for _, a := range attempts {
		w := ew.remote(t, a.c)
		_, err := w.Call(ctx, a.fn, rpc.Kwargs(args(a.fn, a.sid)))
		wantErr(t, fmt.Sprintf("websocket %s %s(%s)", a.who, a.fn, a.sid), err, a.fn+": ", a.want)
		// Forged context: changes nothing.
		forged := rpc.Kwargs(args(a.fn, a.sid))
		forged["context"] = map[string]any{"ws": "ws-user-bob", "user": map[string]any{"id": "root"}}
		_, err = w.Call(ctx, a.fn, forged)
		wantErr(t, fmt.Sprintf("websocket %s %s(%s) with a forged context", a.who, a.fn, a.sid), err, a.fn+": ", a.want)

		body, _ := json.Marshal(args(a.fn, a.sid))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, testserver.ServiceURL(ew.s, ew.home, ew.serviceName+"/"+a.fn, nil), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok := ew.tokens[a.who]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != a.httpCode || !strings.Contains(string(msg), a.want) {
			t.Errorf("HTTP %s %s(%s): %d %s, want %d %q", a.who, a.fn, a.sid, resp.StatusCode, msg, a.httpCode, a.want)
		}
	}
	for _, sid := range []string{ew.mine, ew.foreign} {
		if n := ew.usr1Count(t, sid); n != 0 {
			t.Fatalf("session %s got %d SIGUSR1 from refused calls", sid, n)
		}
		if !alive(procOf(t, ew.reg.Worker, sid).pid) {
			t.Fatalf("session %s's app is gone", sid)
		}
	}
	// What the read-only member may do, it may: read the usage and stream.
	r := ew.remote(t, ew.reader)
	if _, err := r.Call(ctx, ExtResourceUsage, ew.mine); err != nil && runtime.GOOS == "linux" {
		t.Fatalf("reader get_resource_usage: %v", err)
	}
	g, err := r.Stream(ctx, ExtStreamLogs, ew.mine, 0)
	if err != nil {
		t.Fatal(err)
	}
	for v, err := range g.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if v.(map[string]any)["content"] == "ready" {
			break
		}
	}
}
