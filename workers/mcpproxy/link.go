package mcpproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"
)

// ErrClosed: the link was closed (the app stopped).
var ErrClosed = errors.New("mcp-proxy: the app's MCP session is closed")

// link is the one MCP client session the proxy keeps to one server for
// the life of the app. A session that drops is opened again on the next
// call (and that call is retried once on the new session).
type link struct {
	spec    ServerSpec
	client  *mcp.Client
	logf    func(typ worker.LogType, format string, a ...any)
	stdioOK bool

	mu      sync.Mutex
	cs      *mcp.ClientSession
	proc    *exec.Cmd
	exited  chan struct{} // closed when proc has exited
	dir     string        // the stdio server's working directory (the app's)
	closed  bool
	opened  int // sessions opened so far (1 while none dropped)
	watches sync.WaitGroup
}

func newLink(spec ServerSpec, stdioOK bool, dir string, logf func(worker.LogType, string, ...any)) *link {
	return &link{spec: spec, stdioOK: stdioOK, logf: logf, dir: dir,
		client: mcp.NewClient(&mcp.Implementation{Name: "hypha-mcp-proxy", Version: "1"}, nil)}
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
	t, err := l.transport()
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
		return nil, fmt.Errorf("connect to MCP server %s (%s): %w", l.spec.Name, l.spec.Type, err)
	}
	l.cs = cs
	l.opened++
	l.logf(worker.LogInfo, "connected to MCP server %s (%s)", l.spec.Name, l.spec.Type)
	l.watches.Add(1)
	go func() {
		defer l.watches.Done()
		err := cs.Wait()
		cancel()
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
// answer from the server), it reconnects and runs fn once more.
func (l *link) do(ctx context.Context, fn func(*mcp.ClientSession) error) error {
	cs, err := l.session(ctx)
	if err != nil {
		return err
	}
	err = fn(cs)
	if err == nil || !sessionFailed(ctx, err) {
		return err
	}
	l.drop(cs, err)
	cs, err2 := l.session(ctx)
	if err2 != nil {
		return fmt.Errorf("%w (reconnect: %w)", err, err2)
	}
	return fn(cs)
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

// close ends the session and every process of a stdio server.
func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	cs := l.cs
	l.cs = nil
	l.mu.Unlock()
	if cs != nil {
		_ = cs.Close() // closes the stdio server's stdin: its cue to exit
	}
	l.mu.Lock()
	exited := l.exited
	l.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
		}
	}
	l.mu.Lock()
	l.killProcLocked()
	l.mu.Unlock()
	l.watches.Wait()
}

func (l *link) transport() (mcp.Transport, error) {
	switch l.spec.Type {
	case TransportStreamableHTTP:
		return &mcp.StreamableClientTransport{Endpoint: l.spec.URL, HTTPClient: httpClient(l.spec.URL, l.spec.Headers), MaxRetries: 2}, nil
	case TransportSSE:
		return &mcp.SSEClientTransport{Endpoint: l.spec.URL, HTTPClient: httpClient(l.spec.URL, l.spec.Headers)}, nil
	case TransportStdio:
		if !l.stdioOK {
			return nil, fmt.Errorf("%w: mcpServers.%s: stdio servers are not enabled on this worker (mcpproxy.Options.AllowStdio, --allow-stdio)", worker.ErrInvalidConfig, l.spec.Name)
		}
		return l.stdioTransport()
	}
	return nil, fmt.Errorf("%w: mcpServers.%s: unknown type %q", worker.ErrInvalidConfig, l.spec.Name, l.spec.Type)
}

// stdioTransport starts the server's command in a process group of its own
// (killed as a group on close, and by the kernel if the worker dies: it is
// started from localproc's spawner thread, which lives as long as the
// worker, so the parent-death signal means the worker's death), in the
// app's working directory, with PATH, HOME and the manifest's env only.
func (l *link) stdioTransport() (mcp.Transport, error) {
	if l.dir == "" {
		return nil, errors.New("stdio server without a working directory")
	}
	cmd := exec.Command(l.spec.Command, l.spec.Args...)
	cmd.Dir = l.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + l.dir}
	for k, v := range l.spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = &lineLogger{logf: l.logf, prefix: l.spec.Name}
	cmd.SysProcAttr = procAttr()
	// Our own pipes (not cmd's): Wait then never closes what the MCP
	// session still reads.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = inR.Close(), inW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	err = localproc.StartOnSpawner(cmd)
	_, _ = inR.Close(), outW.Close()
	if err != nil {
		_, _ = inW.Close(), outR.Close()
		return nil, fmt.Errorf("start %s: %w", l.spec.Command, err)
	}
	exited := make(chan struct{})
	l.proc, l.exited = cmd, exited
	l.watches.Add(1)
	go func() {
		defer l.watches.Done()
		err := cmd.Wait()
		close(exited)
		l.logf(worker.LogInfo, "MCP server %s (pid %d) exited: %v", l.spec.Name, cmd.Process.Pid, err)
	}()
	return &mcp.IOTransport{Reader: outR, Writer: inW}, nil
}

// killProcLocked kills the stdio server's whole process group.
func (l *link) killProcLocked() {
	if l.proc == nil || l.proc.Process == nil {
		l.proc = nil
		return
	}
	_ = syscall.Kill(-l.proc.Process.Pid, syscall.SIGKILL)
	l.proc = nil
}

// sessionsOpened is how many MCP sessions the link opened; for tests.
func (l *link) sessionsOpened() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opened
}

// pid is the stdio server's process id (0 when none); for tests.
func (l *link) pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc == nil || l.proc.Process == nil {
		return 0
	}
	return l.proc.Process.Pid
}

// headerTransport adds the manifest's headers to requests to the
// server's own origin only: an SSE server names the URL messages are
// posted to, and it may name another host, which must not receive them.
type headerTransport struct {
	base    http.RoundTripper
	origin  string // scheme://host[:port] of the configured URL
	headers map[string]string
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 && r.URL.Scheme+"://"+r.URL.Host == t.origin {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	return t.base.RoundTrip(r)
}

func httpClient(rawURL string, headers map[string]string) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxResponseHeaderBytes = 64 << 10
	origin := ""
	if u, err := url.Parse(rawURL); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	return &http.Client{Transport: &headerTransport{base: base, origin: origin, headers: headers},
		// A redirect must not carry the manifest's headers elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// lineLogger logs a stdio server's stderr line by line (the LogStore
// bounds what is kept; a line is cut at 4 KiB).
type lineLogger struct {
	logf   func(worker.LogType, string, ...any)
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > 4096 {
				w.logf(worker.LogStderr, "%s: %s", w.prefix, w.buf[:4096])
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.logf(worker.LogStderr, "%s: %s", w.prefix, strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
}
