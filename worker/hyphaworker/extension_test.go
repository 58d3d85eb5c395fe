package hyphaworker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// termWorker is a worker with terminal-like extension methods: peek (read),
// write_terminal and resize_terminal (read_write), attach (read, a
// generator over what was written) and worker_stats (admin, not about a
// session). It records every extension call that reached it.
type termWorker struct {
	sessions *worker.Registry
	mu       sync.Mutex
	reached  []string // "<extension> <session id>" of every call that got through
	size     map[string][2]int
	input    map[string][]string
	attached chan error // the context error of every attach generator, once it ends
}

func (tw *termWorker) note(name, id string) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.reached = append(tw.reached, name+" "+id)
}

func (tw *termWorker) reachedCalls() []string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return slices.Clone(tw.reached)
}

// termState is what peek answers.
type termState struct {
	SessionID string   `json:"session_id"`
	Rows      int      `json:"rows"`
	Cols      int      `json:"cols"`
	Input     []string `json:"input"`
	Caller    string   `json:"caller"`
}

func (tw *termWorker) extensions() []worker.Extension {
	return []worker.Extension{
		{Name: "peek", Description: "the terminal's size and input", Session: true, Permission: worker.PermissionRead,
			Func: func(ctx context.Context, id string) (termState, error) {
				if _, err := tw.sessions.LookupFor(ctx, id); err != nil {
					return termState{}, err
				}
				tw.note("peek", id)
				c, _ := worker.CallerFromContext(ctx)
				tw.mu.Lock()
				defer tw.mu.Unlock()
				sz := tw.size[id]
				return termState{SessionID: id, Rows: sz[0], Cols: sz[1], Input: slices.Clone(tw.input[id]), Caller: c.Workspace}, nil
			}},
		{Name: "write_terminal", Description: "types data into the terminal", Session: true, Permission: worker.PermissionReadWrite,
			Params: []string{"session_id", "data"},
			Func: func(ctx context.Context, id, data string) error {
				// Lookup, not LookupFor: this one relies on the adapter's
				// isolation alone, so that the test sees it hold.
				s, err := tw.sessions.Lookup(id)
				if err != nil {
					return err
				}
				tw.note("write_terminal", id)
				tw.mu.Lock()
				tw.input[id] = append(tw.input[id], data)
				tw.mu.Unlock()
				s.Log(worker.LogStdout, data)
				return nil
			}},
		{Name: "resize_terminal", Session: true, Permission: worker.PermissionReadWrite,
			Params: []string{"session_id", "rows", "cols"},
			Func: func(ctx context.Context, id string, rows, cols int) error {
				if _, err := tw.sessions.LookupFor(ctx, id); err != nil {
					return err
				}
				if rows <= 0 || cols <= 0 {
					return fmt.Errorf("%w: rows and cols must be positive (got %d×%d)", worker.ErrInvalidConfig, rows, cols)
				}
				tw.note("resize_terminal", id)
				tw.mu.Lock()
				tw.size[id] = [2]int{rows, cols}
				tw.mu.Unlock()
				return nil
			}},
		{Name: "attach", Description: "streams the terminal's output", Session: true, Permission: worker.PermissionRead,
			Func: func(ctx context.Context, id string) (iter.Seq2[string, error], error) {
				s, err := tw.sessions.LookupFor(ctx, id)
				if err != nil {
					return nil, err
				}
				tw.note("attach", id)
				return func(yield func(string, error) bool) {
					defer func() { tw.attached <- context.Cause(ctx) }()
					_, _ = s.Logs().Follow(ctx, 0, func(e worker.LogEntry) error {
						if !yield(e.Content, nil) {
							return errStopped
						}
						return nil
					})
				}, nil
			}},
		{Name: "worker_stats", Permission: worker.PermissionAdmin,
			Func: func(ctx context.Context) (map[string]any, error) {
				tw.note("worker_stats", "")
				ws := "" // all, for the controller
				if c, ok := worker.CallerFromContext(ctx); ok && !c.Trusted {
					ws = c.Workspace
				}
				return map[string]any{"sessions": len(tw.sessions.ListFor(ctx, ws))}, nil
			}},
	}
}

var errStopped = errors.New("the reader stopped")

func newTermWorker(t *testing.T) (*termWorker, worker.Worker) {
	t.Helper()
	tw := &termWorker{sessions: worker.NewRegistry(worker.RegistryOptions{}), size: map[string][2]int{},
		input: map[string][]string{}, attached: make(chan error, 16)}
	w, err := worker.FromFuncs(worker.Funcs{
		Properties: worker.Properties{Name: "Term Worker", SupportedTypes: []string{"term"}},
		Sessions:   tw.sessions,
		Start: func(ctx context.Context, cfg worker.Config) (string, error) {
			s, err := tw.sessions.CreateFromConfig(cfg, nil)
			if err != nil {
				return "", err
			}
			s.Log(worker.LogStdout, "$ ")
			return s.ID(), s.SetStatus(worker.StatusRunning)
		},
		Stop:       func(ctx context.Context, id string) error { return tw.sessions.StopSession(ctx, id, nil) },
		Extensions: tw.extensions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tw, w
}

// termWorld is the term worker registered by alice in her workspace, with
// members holding each permission, an outsider, an anonymous client and
// the apps controller; one session in alice's workspace and one in
// another workspace, both started by the controller.
type termWorld struct {
	s                     *server.Server
	home, id              string
	tw                    *termWorker
	reader, writer, admin *rpc.Client
	outsider, anon        *rpc.Client
	trusted               *rpc.Client
	tokens                map[string]string // bearer tokens for HTTP ("" anonymous)
	mine, foreign         string            // session ids
}

func newTermWorld(t *testing.T) *termWorld {
	t.Helper()
	ctx := ctxT(t)
	tw := &termWorld{s: testserver.Start(t, server.Config{}), home: "ws-user-alice", tokens: map[string]string{}}
	wc := testserver.Connect(t, tw.s, rpc.Config{Token: userToken(t, tw.s, "alice", tw.home, nil), ClientID: "alice-worker"})
	var w worker.Worker
	tw.tw, w = newTermWorker(t)
	id, err := hyphaworker.Register(ctx, wc, w, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	tw.id = id
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hyphaworker.Shutdown(sctx, wc, w, id); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	member := func(name string, p auth.Permission) *rpc.Client {
		tw.tokens[name] = userToken(t, tw.s, name, tw.home, map[string]auth.Permission{tw.home: p})
		return testserver.Connect(t, tw.s, rpc.Config{ClientID: name, Workspace: tw.home, Token: tw.tokens[name]})
	}
	tw.reader = member("reader", auth.Read)
	tw.writer = member("writer", auth.ReadWrite)
	tw.admin = member("admin", auth.Admin)
	tw.tokens["outsider"] = userToken(t, tw.s, "bob", "", nil)
	tw.outsider = testserver.Connect(t, tw.s, rpc.Config{ClientID: "bob", Token: tw.tokens["outsider"]})
	tw.tokens["anon"] = ""
	tw.anon = testserver.Connect(t, tw.s, rpc.Config{ClientID: "anon"})
	tw.trusted = testserver.Connect(t, tw.s, rpc.Config{Token: publicRootToken(t, tw.s), Workspace: "public", ClientID: "controller"})
	ctl := tw.remote(t, tw.trusted)
	for _, s := range []struct {
		ws  string
		dst *string
	}{{tw.home, &tw.mine}, {"ws-victim", &tw.foreign}} {
		cfg, err := worker.ConfigFromMap(startConfig(s.ws, "term1", "term"))
		if err != nil {
			t.Fatal(err)
		}
		if *s.dst, err = ctl.Start(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return tw
}

func (tw *termWorld) remote(t *testing.T, c *rpc.Client) *hyphaworker.RemoteWorker {
	t.Helper()
	svc, err := c.GetService(ctxT(t), tw.id)
	if err != nil {
		t.Fatal(err)
	}
	return hyphaworker.Remote(svc)
}

// TestExtensionsThroughRemote: a member calls the term worker's extensions
// through hyphaworker.Remote: positional and keyword arguments, a typed
// answer, a generator read to a point and closed early (the worker's
// generator then ends), and the service lists the extensions with their
// parameters in its schema.
func TestExtensionsThroughRemote(t *testing.T) {
	tw := newTermWorld(t)
	ctx := ctxT(t)
	w := tw.remote(t, tw.writer)
	if got, want := w.Extensions(), []string{"attach", "peek", "resize_terminal", "worker_stats", "write_terminal"}; !slices.Equal(got, want) {
		t.Fatalf("Extensions() = %v, want %v", got, want)
	}
	if _, err := w.Call(ctx, "write_terminal", tw.mine, "ls\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Call(ctx, "resize_terminal", rpc.Kwargs{"session_id": tw.mine, "rows": 24, "cols": 80}); err != nil {
		t.Fatal(err)
	}
	var st termState
	if err := w.CallInto(ctx, &st, "peek", tw.mine); err != nil {
		t.Fatal(err)
	}
	if st.SessionID != tw.mine || st.Rows != 24 || st.Cols != 80 || !slices.Equal(st.Input, []string{"ls\n"}) || st.Caller != tw.home {
		t.Fatalf("peek = %+v", st)
	}
	// Bad arguments name what is wrong.
	_, err := w.Call(ctx, "resize_terminal", tw.mine, 0, 80)
	if err == nil || !strings.Contains(err.Error(), "resize_terminal: invalid worker config: rows and cols must be positive") {
		t.Fatalf("resize to 0 rows: %v", err)
	}
	_, err = w.Call(ctx, "peek", "")
	if err == nil || !strings.Contains(err.Error(), "peek: invalid worker config: session_id is required") {
		t.Fatalf("peek without a session: %v", err)
	}
	if _, err := w.Call(ctx, "stop", tw.mine); !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), "not an extension") {
		t.Fatalf("Call(stop) = %v, want a refusal naming the worker API", err)
	}
	if _, err := w.Call(ctx, "nope", tw.mine); !errors.Is(err, worker.ErrNotSupported) {
		t.Fatalf("Call(nope) = %v, want ErrNotSupported", err)
	}
	_, err = w.Call(ctx, "peek", tw.home+"/missing")
	if !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("peek of a missing session = %v, want ErrSessionNotFound", err)
	}

	// The stream: what the session printed, then what is written while
	// attached; the reader stops after three items.
	g, err := w.Stream(ctx, "attach", tw.mine)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for v, err := range g.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v.(string))
		if len(got) == 2 {
			if _, err := w.Call(ctx, "write_terminal", tw.mine, "pwd\n"); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) == 3 {
			break
		}
	}
	if want := []string{"$ ", "ls\n", "pwd\n"}; !slices.Equal(got, want) {
		t.Fatalf("attach read %q, want %q", got, want)
	}
	select {
	case cause := <-tw.tw.attached:
		if cause == nil {
			t.Fatal("the attach generator ended with its context still live")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the attach generator did not end after the reader stopped")
	}
	if _, err := w.Stream(ctx, "peek", tw.mine); err == nil || !strings.Contains(err.Error(), "not a generator") {
		t.Fatalf("Stream(peek) = %v", err)
	}

	// The schema lists every extension with its parameters.
	status, info := testserver.HTTPGetJSON(t, mustRequest(t, http.MethodGet, testserver.ServiceURL(tw.s, tw.home, serviceName(tw.id), nil), tw.tokens["writer"], nil))
	if status != http.StatusOK {
		t.Fatalf("service info: %d %v", status, info)
	}
	schema, _ := info.(map[string]any)["service_schema"].(map[string]any)
	for name, params := range map[string][]string{"peek": {"session_id"}, "write_terminal": {"session_id", "data"},
		"resize_terminal": {"session_id", "rows", "cols"}, "attach": {"session_id"}, "worker_stats": nil} {
		fn, _ := schema[name].(map[string]any)["function"].(map[string]any)
		props, _ := fn["parameters"].(map[string]any)["properties"].(map[string]any)
		if fn == nil || len(props) != len(params) {
			t.Errorf("schema of %s: %v", name, schema[name])
			continue
		}
		for _, p := range params {
			if props[p] == nil {
				t.Errorf("schema of %s lacks %s: %v", name, p, props)
			}
		}
	}
	if d, _ := schema["peek"].(map[string]any)["function"].(map[string]any)["description"].(string); d != "the terminal's size and input" {
		t.Errorf("peek's description = %q", d)
	}
}

// serviceName is "<client>:<service>" of a full service id.
func serviceName(full string) string {
	_, rest, _ := strings.Cut(full, "/")
	return rest
}

func mustRequest(t *testing.T, method, url, token string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// TestHostileExtensions: every extension is guarded like the core
// functions. Anonymous clients and users of other workspaces may call none;
// a read-only member may read but not write, resize or ask for the
// worker's stats; a read_write member may not name another workspace's
// session (reported as not found, like stop). Over websocket and over HTTP
// (403), with a forged `context` keyword too; and none of the refused
// calls reached the worker: the sessions' input and size are unchanged.
func TestHostileExtensions(t *testing.T) {
	tw := newTermWorld(t)
	ctx := ctxT(t)
	type attempt struct {
		fn   string
		args func(sid string) []any
	}
	calls := []attempt{
		{"peek", func(sid string) []any { return []any{sid} }},
		{"write_terminal", func(sid string) []any { return []any{sid, "rm -rf ~\n"} }},
		{"resize_terminal", func(sid string) []any { return []any{sid, 1, 1} }},
		{"attach", func(sid string) []any { return []any{sid} }},
		{"worker_stats", func(string) []any { return nil }},
	}
	kwargsOf := func(fn string, args []any) map[string]any {
		names := map[string][]string{"peek": {"session_id"}, "attach": {"session_id"},
			"write_terminal": {"session_id", "data"}, "resize_terminal": {"session_id", "rows", "cols"}}[fn]
		m := map[string]any{}
		for i, a := range args {
			m[names[i]] = a
		}
		return m
	}
	type who struct {
		c     *rpc.Client
		token string
	}
	callers := map[string]who{
		"anonymous": {tw.anon, tw.tokens["anon"]}, "outsider": {tw.outsider, tw.tokens["outsider"]},
		"reader": {tw.reader, tw.tokens["reader"]}, "writer": {tw.writer, tw.tokens["writer"]},
	}
	// want is the refusal each caller gets for each function on alice's
	// own session ("" means allowed).
	want := func(role, fn string) string {
		switch role {
		case "anonymous", "outsider":
			return "permission denied: the worker serves members of workspace " + tw.home
		case "reader":
			switch fn {
			case "peek", "attach":
				return ""
			case "worker_stats":
				return "needs admin permission on workspace " + tw.home
			}
			return "needs read_write permission on workspace " + tw.home
		case "writer":
			if fn == "worker_stats" {
				return "needs admin permission on workspace " + tw.home
			}
		}
		return ""
	}
	before := tw.tw.reachedCalls()
	for role, c := range callers {
		w := tw.remote(t, c.c)
		for _, call := range calls {
			for _, sid := range []string{tw.mine, tw.foreign} {
				if call.fn == "worker_stats" && sid == tw.foreign {
					continue
				}
				expect := want(role, call.fn)
				if expect == "" {
					if sid == tw.mine {
						continue // allowed: not an attack
					}
					expect = "session not found: " + tw.foreign
				}
				for _, forged := range []bool{false, true} {
					args := call.args(sid)
					if forged {
						args = append(args, rpc.Kwargs{"context": map[string]any{"ws": "ws-victim", "user": map[string]any{"id": "root"}}})
					}
					_, err := w.Call(ctx, call.fn, args...)
					if err == nil || !strings.Contains(err.Error(), call.fn+": ") || !strings.Contains(err.Error(), expect) {
						t.Errorf("websocket %s %s(%s, forged %v): err = %v, want %q", role, call.fn, sid, forged, err, expect)
					}
				}
				// The same over HTTP, as keyword arguments.
				req := mustRequest(t, http.MethodPost, testserver.ServiceURL(tw.s, tw.home, serviceName(tw.id)+"/"+call.fn, nil),
					c.token, kwargsOf(call.fn, call.args(sid)))
				status, body := testserver.HTTPGetJSON(t, req)
				wantStatus := http.StatusForbidden
				if strings.HasPrefix(expect, "session not found") {
					wantStatus = http.StatusInternalServerError
				}
				if status != wantStatus || !strings.Contains(fmt.Sprint(body), expect) {
					t.Errorf("HTTP %s %s(%s): %d %v, want %d %q", role, call.fn, sid, status, body, wantStatus, expect)
				}
			}
		}
	}
	if got := tw.tw.reachedCalls(); !slices.Equal(got, before) {
		t.Fatalf("refused calls reached the worker: %v", got[len(before):])
	}
	tw.tw.mu.Lock()
	input, size := len(tw.tw.input), len(tw.tw.size)
	tw.tw.mu.Unlock()
	if input != 0 || size != 0 {
		t.Fatalf("the attacks changed the terminals: %d inputs, %d sizes", input, size)
	}
	// The permitted calls still work: the reader over HTTP (GET, query
	// string), the admin for the stats, the controller on any session.
	status, body := testserver.HTTPGetJSON(t, mustRequest(t, http.MethodGet,
		testserver.ServiceURL(tw.s, tw.home, serviceName(tw.id)+"/peek", map[string][]string{"session_id": {tw.mine}}), tw.tokens["reader"], nil))
	if status != http.StatusOK || body.(map[string]any)["session_id"] != tw.mine {
		t.Fatalf("reader HTTP peek: %d %v", status, body)
	}
	if v, err := tw.remote(t, tw.admin).Call(ctx, "worker_stats"); err != nil || fmt.Sprint(v) != "map[sessions:1]" {
		t.Fatalf("admin worker_stats = %v, %v (a member sees its own workspace's sessions only)", v, err)
	}
	if _, err := tw.remote(t, tw.trusted).Call(ctx, "write_terminal", tw.foreign, "hello\n"); err != nil {
		t.Fatalf("controller write_terminal on ws-victim: %v", err)
	}
}

// bareExtender offers extensions without going through worker.Funcs, so
// that the adapter's own checks are what refuses them.
type bareExtender struct {
	worker.Worker
	exts []worker.Extension
}

func (b bareExtender) Extensions() []worker.Extension { return b.exts }

// TestExtensionRegistrationRefused: malformed extensions and names that
// collide with the worker API or the registration are refused when the
// service is built, each with an error naming the extension and the fault.
func TestExtensionRegistrationRefused(t *testing.T) {
	_, base := newEchoWorker(t, false)
	ok := func(ctx context.Context, id string) error { return nil }
	for _, tc := range []struct {
		name string
		ext  worker.Extension
		want string
	}{
		{"core name", worker.Extension{Name: "stop", Session: true, Permission: worker.PermissionRead, Func: ok}, "is a function of the worker API"},
		{"optional core name", worker.Extension{Name: "execute", Permission: worker.PermissionRead, Func: ok}, "is a function of the worker API"},
		{"registration key", worker.Extension{Name: "supported_types", Permission: worker.PermissionRead, Func: ok}, "field of the worker's service registration"},
		{"hidden name", worker.Extension{Name: "_secret", Permission: worker.PermissionRead, Func: ok}, "must be a letter"},
		{"dotted name", worker.Extension{Name: "a.b", Permission: worker.PermissionRead, Func: ok}, "must be a letter"},
		{"no permission", worker.Extension{Name: "x", Func: ok}, `permission "" is not read, read_write or admin`},
		{"no func", worker.Extension{Name: "x", Permission: worker.PermissionRead}, "Func is nil"},
		{"no ctx", worker.Extension{Name: "x", Permission: worker.PermissionRead, Func: func(id string) error { return nil }}, "must take a context.Context first"},
		{"no error", worker.Extension{Name: "x", Permission: worker.PermissionRead, Func: func(ctx context.Context) int { return 1 }}, "must return (error) or (T, error)"},
		{"session without id", worker.Extension{Name: "x", Session: true, Permission: worker.PermissionRead, Func: func(ctx context.Context, n int) error { return nil }}, "takes the session id"},
		{"params count", worker.Extension{Name: "x", Session: true, Permission: worker.PermissionRead, Params: []string{"session_id", "extra"}, Func: ok}, "Params names 2 parameters"},
		{"session param name", worker.Extension{Name: "x", Session: true, Permission: worker.PermissionRead, Params: []string{"sid"}, Func: ok}, "named session_id"},
		{"context param", worker.Extension{Name: "x", Permission: worker.PermissionRead, Params: []string{"context"}, Func: ok}, `parameter name "context"`},
	} {
		_, err := hyphaworker.NewService(bareExtender{base, []worker.Extension{tc.ext}}, hyphaworker.Options{}, "public")
		if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("extension %q", tc.ext.Name)) {
			t.Errorf("%s: NewService = %v, want %q", tc.name, err, tc.want)
		}
		if _, err := worker.FromFuncs(worker.Funcs{Properties: base.Properties(), Start: func(context.Context, worker.Config) (string, error) { return "", nil },
			Stop: func(context.Context, string) error { return nil }, Extensions: []worker.Extension{tc.ext}}); !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("%s: FromFuncs = %v", tc.name, err)
		}
	}
	twice := worker.Extension{Name: "peek", Session: true, Permission: worker.PermissionRead, Func: ok}
	if _, err := hyphaworker.NewService(bareExtender{base, []worker.Extension{twice, twice}}, hyphaworker.Options{}, "public"); err == nil || !strings.Contains(err.Error(), `extension "peek" is defined twice`) {
		t.Errorf("a name twice: %v", err)
	}
}
