package mcpproxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"
)

// ErrClosed: the link was closed (the app stopped).
var ErrClosed = errors.New("mcp-proxy: the app's MCP session is closed")

// stdioEnv is what a link needs to run a stdio server as a session of
// the platform's process supervisor (internal/localproc).
type stdioEnv struct {
	runner *localproc.Runner
	staged string           // the app's files_to_stage, copied into each server's directory
	logs   *worker.LogStore // the app session's log: the server's stderr goes there
	logCtx context.Context  // the app session's context
}

// link is the one MCP client session the proxy keeps to one server for
// the life of the app. A session that drops is opened again on the next
// call (and that call is retried once on the new session).
type link struct {
	spec     ServerSpec
	client   *mcp.Client
	logf     func(typ worker.LogType, format string, a ...any)
	stdio    *stdioEnv // nil: stdio servers are not allowed
	maxBytes int       // bound on one message from the server

	// changed receives a value when what the server lists may have
	// changed: a list_changed notification, or a new session after a
	// drop (see refresher).
	changed chan struct{}
	// tooBig is the last ErrMessageTooLarge a bounded reader of the
	// current session hit (nil when none).
	tooBig atomic.Pointer[error]

	mu      sync.Mutex
	cs      *mcp.ClientSession
	ls      *localproc.Session // the stdio server's session
	closed  bool
	opened  int // sessions opened so far (1 while none dropped)
	watches sync.WaitGroup
}

func newLink(spec ServerSpec, stdio *stdioEnv, maxBytes int, logf func(worker.LogType, string, ...any)) *link {
	l := &link{spec: spec, stdio: stdio, logf: logf, maxBytes: maxBytes, changed: make(chan struct{}, 1)}
	notify := func() {
		select {
		case l.changed <- struct{}{}:
		default: // one pending refresh covers every change before it
		}
	}
	l.client = mcp.NewClient(&mcp.Implementation{Name: "hypha-mcp-proxy", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler:     func(context.Context, *mcp.ToolListChangedRequest) { notify() },
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { notify() },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { notify() },
	})
	return l
}

// session returns the open MCP session, opening one when there is none.
func (l *link) session(ctx context.Context) (*mcp.ClientSession, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if l.cs != nil {
		return l.cs, nil
	}
	l.tooBig.Store(nil)
	t, err := l.transport(ctx)
	if err != nil {
		return nil, err
	}
	// The session must outlive ctx (a start's or a call's): the SSE
	// transport binds its event stream to the context it connects with.
	// ctx only bounds the handshake.
	life, cancel := context.WithCancel(context.Background())
	detach := context.AfterFunc(ctx, cancel)
	cs, err := l.client.Connect(life, t, nil)
	if !detach() && err == nil {
		_ = cs.Close()
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		l.killProcLocked()
		if big := l.tooBig.Load(); big != nil {
			err = *big
		}
		return nil, fmt.Errorf("connect to MCP server %s (%s): %w", l.spec.Name, l.spec.Type, err)
	}
	l.cs = cs
	l.opened++
	l.logf(worker.LogInfo, "connected to MCP server %s (%s)", l.spec.Name, l.spec.Type)
	if l.opened > 1 {
		// A new session of a server that may have changed meanwhile.
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
	l.watches.Add(1)
	go func() {
		defer l.watches.Done()
		err := cs.Wait()
		cancel()
		_ = cs.Close() // ends what the SDK runs for the session (its subscription listener)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.cs == cs {
			l.cs = nil
			l.killProcLocked()
			l.logf(worker.LogError, "MCP server %s: session ended (%v); reconnecting on the next call", l.spec.Name, err)
		}
	}()
	return cs, nil
}

// drop forgets cs when it is still the current session.
func (l *link) drop(cs *mcp.ClientSession, cause error) {
	l.mu.Lock()
	if l.cs != cs {
		l.mu.Unlock()
		return
	}
	l.cs = nil
	l.killProcLocked()
	l.mu.Unlock()
	l.logf(worker.LogError, "MCP server %s: %v; reconnecting", l.spec.Name, cause)
	_ = cs.Close()
}

// do runs fn on the session; when the session itself failed (not an
// answer from the server), it reconnects and runs fn once more. A message
// over the size bound is not retried: the server would send it again.
func (l *link) do(ctx context.Context, fn func(*mcp.ClientSession) error) error {
	cs, err := l.session(ctx)
	if err != nil {
		return err
	}
	err = fn(cs)
	if err == nil {
		return nil
	}
	if big := l.tooBig.Swap(nil); big != nil {
		l.drop(cs, *big)
		return *big
	}
	if !sessionFailed(ctx, err) {
		return err
	}
	l.drop(cs, err)
	cs, err2 := l.session(ctx)
	if err2 != nil {
		return fmt.Errorf("%w (reconnect: %w)", err, err2)
	}
	err = fn(cs)
	if big := l.tooBig.Swap(nil); err != nil && big != nil {
		l.drop(cs, *big)
		return *big
	}
	return err
}

// sessionFailed: the error is about the connection, not an answer of the
// server (a JSON-RPC error is an answer: retrying would repeat it).
func sessionFailed(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		return false
	}
	return true
}

// close ends the session and every process of a stdio server: its stdin
// closes (an MCP stdio server's cue to exit), and what still runs after
// a short wait is stopped as any app session is (SIGTERM to every
// process of it, SIGKILL after the grace).
func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	cs, ls := l.cs, l.ls
	l.cs, l.ls = nil, nil
	l.mu.Unlock()
	if cs != nil {
		_ = cs.Close()
	}
	if ls != nil {
		select {
		case <-ls.Exited():
		case <-time.After(stdinGrace):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := ls.Stop(ctx, l.stdio.logs); err != nil {
			l.logf(worker.LogError, "MCP server %s: %v", l.spec.Name, err)
		}
		cancel()
	}
	l.watches.Wait()
}

// stdinGrace is how long close waits for a stdio server to exit on its
// own once its stdin is closed.
const stdinGrace = 2 * time.Second

func (l *link) transport(ctx context.Context) (mcp.Transport, error) {
	switch l.spec.Type {
	case TransportStreamableHTTP:
		return &mcp.StreamableClientTransport{Endpoint: l.spec.URL, HTTPClient: l.httpClient(), MaxRetries: 2}, nil
	case TransportSSE:
		return &mcp.SSEClientTransport{Endpoint: l.spec.URL, HTTPClient: l.httpClient()}, nil
	case TransportStdio:
		if l.stdio == nil {
			return nil, fmt.Errorf("%w: mcpServers.%s: stdio servers are not enabled on this worker (mcpproxy.Options.AllowStdio, --allow-stdio)", worker.ErrInvalidConfig, l.spec.Name)
		}
		return l.stdioTransport(ctx)
	}
	return nil, fmt.Errorf("%w: mcpServers.%s: unknown type %q", worker.ErrInvalidConfig, l.spec.Name, l.spec.Type)
}

// stdioTransport starts the server's command as a session of the
// platform's process supervisor (internal/localproc, as the process
// worker's apps): a uid of its own when the worker is root, a supervisor
// in a PID namespace of its own that kills every process of it when it
// ends or the worker dies, a private working directory (a copy of the
// app's files_to_stage) locked while it lives, stop with grace. It gets
// PATH, HOME (that directory), LANG and the manifest's env only: neither
// the worker's environment nor the app's token reach it. The MCP session
// runs over its stdin and stdout; its stderr goes to the app's log.
func (l *link) stdioTransport(ctx context.Context) (mcp.Transport, error) {
	r := l.stdio.runner
	if err := r.Setup(ctx); err != nil {
		return nil, err
	}
	path, err := lookPath(l.spec.Command, r.Path())
	if err != nil {
		return nil, fmt.Errorf("%w: mcpServers.%s: %w", worker.ErrInvalidConfig, l.spec.Name, err)
	}
	ls, err := r.NewSession()
	if err != nil {
		return nil, err
	}
	if l.stdio.staged != "" {
		if err := os.CopyFS(ls.Dir(), os.DirFS(l.stdio.staged)); err != nil {
			ls.Close()
			return nil, fmt.Errorf("copy files_to_stage into the working directory: %w", err)
		}
	}
	env := []string{"PATH=" + r.Path(), "HOME=" + ls.Dir()}
	if v, ok := os.LookupEnv("LANG"); ok {
		env = append(env, "LANG="+v)
	}
	for _, k := range slices.Sorted(maps.Keys(l.spec.Env)) {
		env = append(env, k+"="+l.spec.Env[k])
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		ls.Close()
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = inR.Close(), inW.Close()
		ls.Close()
		return nil, err
	}
	err = ls.Start(localproc.Command{Path: path, Args: append([]string{l.spec.Command}, l.spec.Args...), Env: env,
		Logs: l.stdio.logs, LogContext: l.stdio.logCtx, Stdin: inR, Stdout: outW, LinePrefix: l.spec.Name + ": "})
	_, _ = inR.Close(), outW.Close() // the server holds its own copies
	if err != nil {
		_, _ = inW.Close(), outR.Close()
		ls.Close()
		return nil, fmt.Errorf("start %s: %w", l.spec.Command, err)
	}
	l.ls = ls
	l.logf(worker.LogInfo, "MCP server %s: started %s (pid %d, %s)", l.spec.Name, l.spec.Command, ls.PID(), ls.User().Name)
	l.watches.Add(1)
	go func() {
		defer l.watches.Done()
		<-ls.Done()
		l.logf(worker.LogInfo, "MCP server %s (pid %d) %s", l.spec.Name, ls.PID(), ls.Exit().Desc)
	}()
	return &mcp.IOTransport{Reader: &lineBound{r: outR, rc: outR, max: l.maxBytes, fail: l.oversize},
		// The SDK's own frame bound also covers a message spread over
		// many short lines.
		Writer: inW, MaxLineLength: 2*l.maxBytes + 64<<10}, nil
}

// lookPath resolves a command without a slash in the sessions' PATH; one
// with a slash is taken as it is (relative to the working directory).
func lookPath(prog, pathList string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: %w", prog, exec.ErrNotFound)
}

// killProcLocked kills every process of the stdio server's session; the
// session's watch waits for it to end.
func (l *link) killProcLocked() {
	if l.ls != nil {
		l.ls.Kill()
		l.ls = nil
	}
}

// sessionsOpened is how many MCP sessions the link opened; for tests.
func (l *link) sessionsOpened() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opened
}

// pid is the stdio server's process id as the worker sees it (0 when
// none); for tests.
func (l *link) pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ls == nil {
		return 0
	}
	return l.ls.PID()
}

// headerTransport adds the manifest's headers to requests to the
// server's own origin only: an SSE server names the URL messages are
// posted to, and it may name another host, which must not receive them.
// It also bounds every message of a response (see boundBody).
type headerTransport struct {
	base    http.RoundTripper
	origin  string // scheme://host[:port] of the configured URL
	headers map[string]string
	max     int
	fail    func(max int) error
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 && r.URL.Scheme+"://"+r.URL.Host == t.origin {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp.Body != nil {
		resp.Body = boundBody(resp, t.max, t.fail)
	}
	return resp, err
}

func (l *link) httpClient() *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxResponseHeaderBytes = 64 << 10
	origin := ""
	if u, err := url.Parse(l.spec.URL); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	return &http.Client{Transport: &headerTransport{base: base, origin: origin, headers: l.spec.Headers, max: l.maxBytes, fail: l.oversize},
		// A redirect must not carry the manifest's headers elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
