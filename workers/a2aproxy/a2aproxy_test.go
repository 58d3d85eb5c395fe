package a2aproxy

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/worker"
)

// env is our server on a loopback port with a workspace "team", a client
// of it that calls the app's services, and what the controller would give
// a session: a token scoped to the app's client id.
type env struct {
	t      *testing.T
	s      *server.Server
	root   *rpc.Client
	caller *rpc.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "root")
	if _, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": "team"}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "team", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	caller := testserver.Connect(t, s, rpc.Config{Token: tok, Workspace: "team", ClientID: "caller"})
	return &env{t: t, s: s, root: root, caller: caller}
}

// config is the start config of app session clientID with agents.
func (e *env) config(clientID string, agents map[string]any) worker.Config {
	e.t.Helper()
	tok, err := e.root.GenerateToken(testserver.Ctx(e.t), rpc.TokenConfig{Workspace: "team", Permission: "read_write", ClientID: clientID})
	if err != nil {
		e.t.Fatal(err)
	}
	return worker.Config{ID: "team/" + clientID, AppID: "my-a2a", Workspace: "team", ClientID: clientID,
		ServerURL: e.s.URL(), Token: tok, Manifest: worker.Manifest{"type": Type, "name": "My A2A", "a2aAgents": agents}}
}

// services lists the service ids of clientID in team (without the
// client's built-in service).
func (e *env) services(clientID string) []string {
	e.t.Helper()
	infos, err := e.caller.ListServices(testserver.Ctx(e.t), map[string]any{"workspace": "team"})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, si := range infos {
		if _, rest, ok := strings.Cut(si.ID, "/"); ok && strings.HasPrefix(rest, clientID+":") && !strings.HasSuffix(rest, ":built-in") {
			out = append(out, strings.TrimPrefix(rest, clientID+":"))
		}
	}
	slices.Sort(out)
	return out
}

func newWorker(t *testing.T, l Limits) *Worker {
	w := New(Options{Logger: testserver.Logger(t), Limits: l})
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return w
}

func agentConf(url string) map[string]any {
	return map[string]any{"url": url, "headers": map[string]any{"Authorization": "Bearer agent-secret"}}
}

// The proxy end to end: start connects as the app and registers the
// agent's service and default; run, a skill and the stream answer through
// our server; the app's headers reach the agent; stop leaves no service.
func TestProxyRunSkillsStream(t *testing.T) {
	e := newEnv(t)
	agent := newTestAgent(t, nil)
	w := newWorker(t, Limits{})
	ctx := testserver.Ctx(t)
	cfg := e.config("app-1", map[string]any{"echo": agentConf(agent.URL)})
	id, err := w.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if id != "team/app-1" {
		t.Fatalf("start returned %q", id)
	}
	if got := e.services("app-1"); !slices.Equal(got, []string{"default", "echo"}) {
		t.Fatalf("services of the app = %v, want [default echo]", got)
	}
	if got := agent.lastAuth.Load(); got != "Bearer agent-secret" {
		t.Fatalf("the agent saw Authorization %q", got)
	}
	svc, err := e.caller.GetService(ctx, "app-1:echo")
	if err != nil {
		t.Fatal(err)
	}
	card, _ := svc.Get("agent_card").(map[string]any)
	if card["name"] != "Echo Agent" || card["version"] != "1.2.3" {
		t.Fatalf("agent_card = %v", card)
	}
	if caps, _ := card["capabilities"].(map[string]any); caps["streaming"] != true {
		t.Fatalf("agent_card.capabilities = %v", card["capabilities"])
	}

	got, err := svc.Call(ctx, "run", "hello")
	if err != nil || got != "echo: hello" {
		t.Fatalf("run(hello) = %v, %v", got, err)
	}
	got, err = svc.Call(ctx, "run", map[string]any{"parts": []any{map[string]any{"kind": "text", "text": "hi"},
		map[string]any{"kind": "data", "data": map[string]any{"n": 1}}}})
	if err != nil || got != `echo: hi+{"n":1}` {
		t.Fatalf("run(message with parts) = %v, %v", got, err)
	}
	got, err = svc.Call(ctx, "skills.shout_loud", "SHOUT it")
	if err != nil || got != "ECHO: SHOUT IT" {
		t.Fatalf("skills.shout_loud = %v, %v", got, err)
	}
	got, err = svc.Call(ctx, "skills.echo", rpc.Kwargs{"text": "kw"})
	if err != nil || got != "echo: kw" {
		t.Fatalf("skills.echo(text=kw) = %v, %v", got, err)
	}
	if _, err := svc.Call(ctx, "run", 42); err == nil || !strings.Contains(err.Error(), "want a string or {parts") {
		t.Fatalf("run(42) = %v", err)
	}

	gv, err := svc.Call(ctx, "stream", "one two")
	if err != nil {
		t.Fatal(err)
	}
	g, ok := gv.(*rpc.RemoteGenerator)
	if !ok {
		t.Fatalf("stream returned %T, want a generator", gv)
	}
	var kinds, words []string
	for v, err := range g.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		m := v.(map[string]any)
		kinds = append(kinds, fmt.Sprint(m["kind"]))
		if a, ok := m["artifact"].(map[string]any); ok {
			words = append(words, partTexts(a["parts"])...)
		}
	}
	if want := []string{"status-update", "artifact-update", "artifact-update", "artifact-update", "status-update"}; !slices.Equal(kinds, want) {
		t.Fatalf("stream kinds = %v, want %v", kinds, want)
	}
	if !slices.Equal(words, []string{"echo:", "one", "two"}) {
		t.Fatalf("stream words = %v", words)
	}

	page, err := w.GetLogs(ctx, id, worker.LogQuery{Type: worker.LogInfo, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(page.Items, func(it worker.LogEntry) bool { return it.Content == "Successfully connected to A2A agent: echo" }) {
		t.Fatalf("info log = %v", page.Items)
	}
	if err := w.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 20*time.Second, "the app's services to go", func() bool { return len(e.services("app-1")) == 0 })
	if _, err := w.GetSessionInfo(ctx, id); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("session after stop: %v", err)
	}
	if err := w.Stop(ctx, id); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

// Upstream's rule for an agent down at start: with several agents the
// others are registered and the failure is logged; a single agent down, or
// all down, fails the start and leaves no service.
func TestAgentDownAtStart(t *testing.T) {
	e := newEnv(t)
	agent := newTestAgent(t, nil)
	down := httptest.NewServer(nil)
	downURL := down.URL
	down.Close()
	w := newWorker(t, Limits{CardTimeout: 5 * time.Second})
	ctx := testserver.Ctx(t)

	id, err := w.Start(ctx, e.config("app-2", map[string]any{"up": agentConf(agent.URL), "down": agentConf(downURL)}))
	if err != nil {
		t.Fatalf("start with one agent down: %v", err)
	}
	if got := e.services("app-2"); !slices.Equal(got, []string{"default", "up"}) {
		t.Fatalf("services = %v, want [default up]", got)
	}
	page, err := w.GetLogs(ctx, id, worker.LogQuery{Type: worker.LogError, Limit: 10})
	if err != nil || len(page.Items) != 1 || !strings.Contains(page.Items[0].Content, "failed to connect to A2A agent down") {
		t.Fatalf("error log = %v, %v", page.Items, err)
	}
	if err := w.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}

	_, err = w.Start(ctx, e.config("app-3", map[string]any{"down": agentConf(downURL)}))
	if err == nil || !strings.Contains(err.Error(), "failed to connect to A2A agent down") {
		t.Fatalf("start with its only agent down: %v", err)
	}
	_, err = w.Start(ctx, e.config("app-4", map[string]any{"down": agentConf(downURL), "down2": agentConf(downURL)}))
	if !errors.Is(err, ErrNoAgents) {
		t.Fatalf("start with every agent down: %v", err)
	}
	testserver.WaitFor(t, 20*time.Second, "no service of the failed apps", func() bool {
		return len(e.services("app-3")) == 0 && len(e.services("app-4")) == 0
	})
	if n := w.Sessions.Len(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// A stream the consumer stops early closes the agent's request; a stop
// during a stream ends it.
func TestStreamEndsWithConsumerAndStop(t *testing.T) {
	e := newEnv(t)
	agent := newTestAgent(t, func(a *testAgent) { a.endless = true })
	w := newWorker(t, Limits{})
	ctx := testserver.Ctx(t)
	id, err := w.Start(ctx, e.config("app-5", map[string]any{"echo": agentConf(agent.URL)}))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := e.caller.GetService(ctx, "app-5:echo")
	if err != nil {
		t.Fatal(err)
	}
	gv, err := svc.Call(ctx, "stream", "go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range gv.(*rpc.RemoteGenerator).All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	testserver.WaitFor(t, 20*time.Second, "the agent to see the stream closed", func() bool { return agent.streamGone.Load() == 1 })

	gv, err = svc.Call(ctx, "stream", "again")
	if err != nil {
		t.Fatal(err)
	}
	g := gv.(*rpc.RemoteGenerator)
	if _, ok, err := g.Next(ctx); !ok || err != nil {
		t.Fatalf("first item: %v %v", ok, err)
	}
	if err := w.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 20*time.Second, "the agent to see the second stream closed", func() bool { return agent.streamGone.Load() == 2 })
	if got := e.services("app-5"); len(got) != 0 {
		t.Fatalf("services after stop = %v", got)
	}
}

// A hostile agent: a card over the size bound fails the start; an endless
// stream ends with an error at the event bound; an oversized response or
// stream event fails the call or ends the stream.
func TestHostileAgent(t *testing.T) {
	e := newEnv(t)
	ctx := testserver.Ctx(t)
	huge := newTestAgent(t, func(a *testAgent) { a.hugeCard = true })
	w := newWorker(t, Limits{MaxStreamEvents: 50})
	_, err := w.Start(ctx, e.config("app-6", map[string]any{"huge": agentConf(huge.URL)}))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "agent card is larger than") {
		t.Fatalf("start with a huge card: %v", err)
	}

	endless := newTestAgent(t, func(a *testAgent) { a.endless = true })
	id, err := w.Start(ctx, e.config("app-7", map[string]any{"echo": agentConf(endless.URL)}))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := e.caller.GetService(ctx, "app-7:echo")
	if err != nil {
		t.Fatal(err)
	}
	gv, err := svc.Call(ctx, "stream", "go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var last error
	for _, err := range gv.(*rpc.RemoteGenerator).All(ctx) {
		if err != nil {
			last = err
			break
		}
		n++
	}
	if n != 50 || last == nil || !strings.Contains(last.Error(), "more than 50 events") {
		t.Fatalf("endless stream: %d items, then %v", n, last)
	}
	if err := w.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}

	// Oversized answers: a message/send response and a stream event over
	// their bounds fail the call and end the stream.
	small := newWorker(t, Limits{MaxResponseBytes: 4096, MaxEventBytes: 4096})
	echo := newTestAgent(t, nil)
	id, err = small.Start(ctx, e.config("app-11", map[string]any{"echo": agentConf(echo.URL)}))
	if err != nil {
		t.Fatal(err)
	}
	svc, err = e.caller.GetService(ctx, "app-11:echo")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 10000)
	if _, err := svc.Call(ctx, "run", long); err == nil || !strings.Contains(err.Error(), "response is larger than 4096 bytes") {
		t.Fatalf("oversized response: %v", err)
	}
	gv, err = svc.Call(ctx, "stream", long)
	if err != nil {
		t.Fatal(err)
	}
	last = nil
	for _, err := range gv.(*rpc.RemoteGenerator).All(ctx) {
		if err != nil {
			last = err
			break
		}
	}
	if last == nil || !strings.Contains(last.Error(), "a stream line is longer than 4096 bytes") {
		t.Fatalf("oversized stream event: %v", last)
	}
	if err := small.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// Hostile manifests are refused at start (and at compile) with an error
// naming the agent and the fault, before anything connects.
func TestHostileManifest(t *testing.T) {
	many := map[string]any{}
	for i := range MaxAgents + 1 {
		many[fmt.Sprint("a", i)] = map[string]any{"url": "http://x"}
	}
	manyHeaders := map[string]any{}
	for i := range MaxHeaders + 1 {
		manyHeaders[fmt.Sprint("X-H", i)] = "v"
	}
	cases := []struct {
		name   string
		agents any
		want   string
	}{
		{"missing", nil, "a2aAgents configuration is required"},
		{"not a map", []any{"x"}, "a2aAgents configuration is required"},
		{"too many agents", many, "more than 32"},
		{"file url", map[string]any{"a": map[string]any{"url": "file:///etc/passwd"}}, "only http and https"},
		{"javascript url", map[string]any{"a": map[string]any{"url": "javascript:alert(1)"}}, "only http and https"},
		{"user info", map[string]any{"a": map[string]any{"url": "http://u:p@host"}}, "without user info"},
		{"no url", map[string]any{"a": map[string]any{"headers": map[string]any{}}}, "url is missing"},
		{"bad name", map[string]any{"a.b": map[string]any{"url": "http://x"}}, "becomes the service id"},
		{"default name", map[string]any{"default": map[string]any{"url": "http://x"}}, "not \"default\""},
		{"header injection", map[string]any{"a": map[string]any{"url": "http://x", "headers": map[string]any{"X-A": "v\r\nHost: evil"}}}, "line break"},
		{"bad header name", map[string]any{"a": map[string]any{"url": "http://x", "headers": map[string]any{"X A:": "v"}}}, "not a valid header name"},
		{"reserved header", map[string]any{"a": map[string]any{"url": "http://x", "headers": map[string]any{"host": "evil"}}}, "set by the proxy"},
		{"too many headers", map[string]any{"a": map[string]any{"url": "http://x", "headers": manyHeaders}}, "more than 32"},
		{"huge header", map[string]any{"a": map[string]any{"url": "http://x", "headers": map[string]any{"X-A": strings.Repeat("v", MaxHeaderValueLen+1)}}}, "longer than"},
		{"header not a string", map[string]any{"a": map[string]any{"url": "http://x", "headers": map[string]any{"X-A": 1}}}, "want a string"},
		{"unknown field", map[string]any{"a": map[string]any{"url": "http://x", "command": "sh"}}, "unknown field"},
	}
	w := newWorker(t, Limits{})
	ctx := testserver.Ctx(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAgents(c.agents)
			if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseAgents: %v, want %q", err, c.want)
			}
			// Start refuses it before connecting (the server URL is unreachable).
			_, err = w.Start(ctx, worker.Config{ID: "team/x", Workspace: "team", ClientID: "x", ServerURL: "http://127.0.0.1:1",
				Manifest: worker.Manifest{"type": Type, "a2aAgents": c.agents}})
			if !errors.Is(err, worker.ErrInvalidConfig) {
				t.Fatalf("Start: %v", err)
			}
			_, err = w.Compile(ctx, worker.CompileRequest{Manifest: worker.Manifest{"type": Type, "a2aAgents": c.agents}})
			if !errors.Is(err, worker.ErrInvalidConfig) {
				t.Fatalf("Compile: %v", err)
			}
		})
	}
}

// The transport never reaches link-local addresses (cloud metadata), and
// with DenyPrivateNetworks neither loopback.
func TestHostileAgentAddress(t *testing.T) {
	e := newEnv(t)
	ctx := testserver.Ctx(t)
	w := newWorker(t, Limits{CardTimeout: 5 * time.Second})
	_, err := w.Start(ctx, e.config("app-8", map[string]any{"meta": map[string]any{"url": "http://169.254.169.254"}}))
	if !errors.Is(err, ErrAddressRefused) {
		t.Fatalf("link-local agent: %v", err)
	}
	agent := newTestAgent(t, nil)
	strict := New(Options{Logger: testserver.Logger(t), DenyPrivateNetworks: true})
	t.Cleanup(func() { _ = strict.Shutdown(context.Background()) })
	_, err = strict.Start(ctx, e.config("app-9", map[string]any{"local": agentConf(agent.URL)}))
	if !errors.Is(err, ErrAddressRefused) || !strings.Contains(err.Error(), "loopback or private") {
		t.Fatalf("loopback agent with DenyPrivateNetworks: %v", err)
	}
}

// When the app's connection ends for good, the session fails (its
// services went with the connection).
func TestConnectionLostFailsSession(t *testing.T) {
	e := newEnv(t)
	agent := newTestAgent(t, nil)
	w := newWorker(t, Limits{})
	ctx := testserver.Ctx(t)
	id, err := w.Start(ctx, e.config("app-10", map[string]any{"echo": agentConf(agent.URL)}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := w.Sessions.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := worker.HandleOf[*session](s)
	_ = h.client.Close()
	testserver.WaitFor(t, 20*time.Second, "the session to fail", func() bool { return s.Status() == worker.StatusFailed })
	if info := s.Info(); !strings.Contains(info.Error, "the app's connection to the server ended") {
		t.Fatalf("error = %q", info.Error)
	}
	if err := w.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
}
