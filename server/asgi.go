package server

// Apps over HTTP: /{workspace}/apps/{service_id}/{path...} serves a service
// of type "asgi" (or "ASGI") or "functions", as upstream's ASGI routing
// middleware does.
//
//   - asgi: the server calls the service's `serve` function once per request
//     with one argument, {"scope": scope, "receive": receive, "send": send}:
//     scope is an ASGI HTTP scope (bytes where ASGI has bytes), receive and
//     send are functions of the server's caller peer that the service calls
//     back, with ASGI events ({"type": "http.request", "body", "more_body"},
//     {"type": "http.response.start", "status", "headers"},
//     {"type": "http.response.body", "body", "more_body"}). Python's
//     hypha_rpc.utils.serve.register_asgi_service is exactly such a service;
//     rpc/asgi is the Go one (any http.Handler).
//   - functions: the path picks a function of the service (a/b → member a.b,
//     then a.b.index, then `default`); it is called with a scope whose
//     query_string and raw_path are strings, headers a dict, body the whole
//     request body (or None) and user the caller, and answers
//     {"status", "headers", "body"}.
//
// Every request is made by a short-lived peer acting for the HTTP caller
// (userPeer, as the /services/ route): the service sees the caller's own
// identity in its call context, and the visibility rules of get_service
// decide whether the caller may reach it. The caller's hypha credential (the
// Authorization header, the access_token cookie) is not forwarded to the
// app, and hop-by-hop headers are dropped both ways. docs/security.md
// ("Apps over HTTP") lists the bounds.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/server/registry"
)

const (
	// DefaultMaxAppRequestsPerCaller is the default of
	// Config.MaxAppRequestsPerCaller.
	DefaultMaxAppRequestsPerCaller = 32
	// DefaultAppResponseTimeout is the default of Config.AppResponseTimeout.
	DefaultAppResponseTimeout = 2 * time.Minute
	// appBodyChunk is the most request body one receive() hands over: under
	// the 257 KiB above which a frame travels in chunks.
	appBodyChunk = 255 << 10
	// appCompleteGrace is how long the handler waits, once the response is
	// complete, for the service's serve call to return (so that the reply
	// to its last send() still reaches it) before it lets go.
	appCompleteGrace = 5 * time.Second
)

// ErrTooManyAppRequests is answered (429) when a caller has
// MaxAppRequestsPerCaller app requests in flight.
var ErrTooManyAppRequests = errors.New("too many app requests in flight")

// mountApps registers the app routes (called from routes).
func (s *Server) mountApps() {
	s.mux.HandleFunc("/{workspace}/apps/{service_id}", s.appRedirect)
	s.mux.HandleFunc("/{workspace}/apps/{service_id}/{path...}", s.serveApp)
}

// appRedirect sends /{ws}/apps/{id} to /{ws}/apps/{id}/, as upstream does,
// by a relative location (never another host).
func (s *Server) appRedirect(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, url.PathEscape(r.PathValue("service_id"))+"/", http.StatusTemporaryRedirect)
}

// appError answers as upstream's middleware does: plain text.
func appError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

func (s *Server) serveApp(w http.ResponseWriter, r *http.Request) {
	u, err := s.httpUser(r)
	if err != nil {
		appError(w, http.StatusUnauthorized, err.Error())
		return
	}
	key := u.ID
	if u.IsAnonymous {
		// Every anonymous request is a new user: count them by address.
		key = "anonymous@" + remoteHost(r.RemoteAddr)
	}
	if !s.appLimit.acquire(key, s.cfg.MaxAppRequestsPerCaller) {
		w.Header().Set("Retry-After", "1")
		appError(w, http.StatusTooManyRequests, fmt.Sprintf("%v: this caller already has %d (limit %d, max app requests per caller); try again later",
			ErrTooManyAppRequests, s.cfg.MaxAppRequestsPerCaller, s.cfg.MaxAppRequestsPerCaller))
		return
	}
	defer s.appLimit.release(key)
	if r.ContentLength > s.cfg.MaxHTTPBodyBytes {
		appError(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body of %d bytes is over the limit of %d bytes (max HTTP body bytes)", r.ContentLength, s.cfg.MaxHTTPBodyBytes))
		return
	}
	callerWS := s.httpWorkspace(u)
	ws, sid := r.PathValue("workspace"), r.PathValue("service_id")
	e, code, err := s.findFor(u, callerWS, ws, sid, r.URL.Query().Get("_mode"))
	if err != nil {
		appError(w, code, err.Error())
		return
	}
	typ, _ := e.Info["type"].(string)
	if typ != "asgi" && typ != "ASGI" && typ != "functions" {
		appError(w, http.StatusInternalServerError, "Invalid service type: "+typ)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	lookupCtx, lookupCancel := context.WithTimeout(ctx, s.cfg.AppResponseTimeout)
	v, release, err := s.serviceAs(lookupCtx, u, callerWS, e)
	lookupCancel()
	if err != nil {
		appError(w, appErrorStatus(err), fmt.Sprintf("app service %s: %v", e.FullID(), err))
		return
	}
	defer release()
	svc, _ := v.(map[string]any)
	path := "/" + r.PathValue("path")
	if typ == "functions" {
		s.serveFunctions(ctx, w, r, u, e, svc, path)
		return
	}
	serve, ok := svc["serve"].(*rpc.RemoteFunc)
	if !ok {
		appError(w, http.StatusBadGateway, fmt.Sprintf("app service %s is of type asgi but has no serve function", e.FullID()))
		return
	}
	s.serveASGI(ctx, w, r, e, serve, path)
}

// appErrorStatus is the status for a failed lookup or call of an app.
func appErrorStatus(err error) int {
	switch code := callErrorStatus(err); code {
	case http.StatusInternalServerError:
		return http.StatusBadGateway
	default:
		return code
	}
}

// hopByHop are the headers that describe one connection, not the message:
// never forwarded either way (RFC 9110, 7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// appRequestHeaders are the request headers the app sees, lower-cased as
// ASGI wants: without hop-by-hop headers (and those the Connection header
// names), without the caller's hypha credentials (Authorization, the
// access_token cookie: the app learns the caller from its call context, and
// never holds a token that acts as the caller), with Host.
func appRequestHeaders(r *http.Request) [][2]string {
	drop := map[string]bool{}
	for _, v := range r.Header.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				drop[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	out := [][2]string{{"host", r.Host}}
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ck := http.CanonicalHeaderKey(k)
		if hopByHop[ck] || drop[ck] || ck == "Authorization" || ck == "Host" {
			continue
		}
		for _, v := range r.Header[k] {
			if ck == "Cookie" {
				if v = withoutAccessToken(v); v == "" {
					continue
				}
			}
			out = append(out, [2]string{strings.ToLower(k), v})
		}
	}
	return out
}

// withoutAccessToken removes the access_token cookie from a Cookie header.
func withoutAccessToken(v string) string {
	var keep []string
	for c := range strings.SplitSeq(v, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(c), "=")
		if strings.TrimSpace(c) == "" || name == "access_token" {
			continue
		}
		keep = append(keep, strings.TrimSpace(c))
	}
	return strings.Join(keep, "; ")
}

// addAppHeader adds one response header from the app, unless it is
// malformed (a name or value that would split the header block), hop-by-hop,
// a Content-Length that is not a number, or a cookie that sets the
// server's own access_token (an app must not log its visitors in as
// someone else). It reports whether the header was kept.
func addAppHeader(h http.Header, name, value string) bool {
	if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
		return false
	}
	ck := http.CanonicalHeaderKey(name)
	switch {
	case hopByHop[ck]:
		return false
	case ck == "Content-Length":
		if _, err := strconv.ParseUint(strings.TrimSpace(value), 10, 62); err != nil {
			return false
		}
	case ck == "Set-Cookie":
		cname, _, _ := strings.Cut(value, "=")
		if strings.TrimSpace(cname) == "access_token" {
			return false
		}
	}
	h.Add(ck, value)
	return true
}

func httpVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "1.0"
	case r.ProtoMajor >= 2:
		return "2"
	}
	return "1.1"
}

func hostPort(addr string) []any {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []any{addr, int64(0)}
	}
	p, _ := strconv.ParseInt(port, 10, 64)
	return []any{host, p}
}

// appScope is the ASGI HTTP scope of r, for path (the part after the
// service id, with its leading slash), with upstream's additions
// (workspace, service_id).
func (s *Server) appScope(r *http.Request, path string) map[string]any {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	hdrs := appRequestHeaders(r)
	list := make([]any, len(hdrs))
	for i, h := range hdrs {
		list[i] = []any{[]byte(h[0]), []byte(h[1])}
	}
	serverAddr := r.Host
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		serverAddr = a.String()
	}
	return map[string]any{
		"type":         "http",
		"asgi":         map[string]any{"version": "3.0", "spec_version": "2.4"},
		"http_version": httpVersion(r),
		"method":       r.Method,
		"scheme":       scheme,
		"path":         path,
		"raw_path":     []byte(path),
		"root_path":    "",
		"query_string": []byte(r.URL.RawQuery),
		"headers":      list,
		"client":       hostPort(r.RemoteAddr),
		"server":       hostPort(serverAddr),
		"workspace":    r.PathValue("workspace"),
		"service_id":   r.PathValue("service_id"),
	}
}

// asgiExchange is one request served by an asgi service: the state its
// receive and send callbacks share with the handler. Once finished, the
// callbacks never touch the request or the ResponseWriter again.
type asgiExchange struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	body    io.Reader
	timeout time.Duration
	limit   int64

	recvMu   sync.Mutex // one receive at a time reads the body
	bodyDone bool

	mu        sync.Mutex
	finished  bool
	tooLarge  bool
	started   bool // http.response.start received
	committed bool // status and headers written
	status    int
	header    http.Header
	complete  bool

	end      chan struct{} // closed by finish
	done     chan struct{} // closed when the last body event arrived
	activity chan struct{} // one token per event, for the idle timeout
}

func (x *asgiExchange) nudge() {
	select {
	case x.activity <- struct{}{}:
	default:
	}
}

// finish stops the callbacks; it waits for a send in progress (bounded by
// the write deadline).
func (x *asgiExchange) finish() {
	x.mu.Lock()
	if !x.finished {
		x.finished = true
		close(x.end)
	}
	x.mu.Unlock()
}

// receive answers the app's receive(): the next piece of the body, then,
// once the body is read, http.disconnect when the exchange ends.
func (x *asgiExchange) receive(ctx context.Context, _ *rpc.Call) (any, error) {
	x.nudge()
	x.recvMu.Lock()
	if !x.bodyDone {
		defer x.recvMu.Unlock()
		buf := make([]byte, appBodyChunk)
		n, err := io.ReadFull(x.body, buf)
		switch {
		case err == nil:
			return map[string]any{"type": "http.request", "body": buf[:n], "more_body": true}, nil
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			x.bodyDone = true
			return map[string]any{"type": "http.request", "body": buf[:n], "more_body": false}, nil
		default:
			x.bodyDone = true
			if _, big := errors.AsType[*http.MaxBytesError](err); big {
				x.mu.Lock()
				x.tooLarge = true
				x.mu.Unlock()
			}
			return map[string]any{"type": "http.disconnect"}, nil
		}
	}
	x.recvMu.Unlock()
	select {
	case <-x.end:
	case <-x.done:
	case <-ctx.Done():
	}
	return map[string]any{"type": "http.disconnect"}, nil
}

// send handles the app's send(event).
func (x *asgiExchange) send(_ context.Context, c *rpc.Call) (any, error) {
	ev, _ := c.Arg(0, "message").(map[string]any)
	if ev == nil {
		return nil, errors.New("send: the argument must be an ASGI event (a dict with a type)")
	}
	x.nudge()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.finished {
		return nil, errors.New("send: the HTTP exchange is over (the client went away or the server stopped waiting)")
	}
	typ, _ := ev["type"].(string)
	switch typ {
	case "http.response.start":
		if x.started {
			return nil, errors.New("send: http.response.start sent twice")
		}
		if x.tooLarge {
			// The server answers 413 itself (serveASGI).
			return nil, errors.New("send: the request body was over the server's limit; the request is refused")
		}
		status, ok := asInt(ev["status"])
		// Informational (1xx) answers would leave the exchange half done
		// (and 101 asks for a protocol switch the relay cannot make).
		if !ok || status < 200 || status > 999 {
			return nil, fmt.Errorf("send: http.response.start has no valid final status (%v; 200 to 999)", ev["status"])
		}
		x.status = int(status)
		x.header = http.Header{}
		hl, _ := ev["headers"].([]any)
		for _, p := range hl {
			pair, _ := p.([]any)
			if len(pair) != 2 {
				continue
			}
			addAppHeader(x.header, asText(pair[0]), asText(pair[1]))
		}
		x.started = true
		// The status and headers go out now, as an ASGI server does: a
		// client waiting for them must not wait for the first body.
		x.commitLocked()
		_ = x.rc.SetWriteDeadline(time.Now().Add(x.timeout))
		if err := x.rc.Flush(); err != nil {
			return nil, fmt.Errorf("send: writing to the HTTP client: %w", err)
		}
		return nil, nil
	case "http.response.body":
		if !x.started {
			return nil, errors.New("send: http.response.body before http.response.start")
		}
		if x.complete {
			return nil, errors.New("send: the response is already complete")
		}
		x.commitLocked()
		more, _ := ev["more_body"].(bool)
		var body []byte
		switch b := ev["body"].(type) {
		case []byte:
			body = b
		case string:
			body = []byte(b)
		}
		if len(body) > 0 {
			_ = x.rc.SetWriteDeadline(time.Now().Add(x.timeout))
			if _, err := x.w.Write(body); err != nil {
				return nil, fmt.Errorf("send: writing to the HTTP client: %w", err)
			}
		}
		if more {
			_ = x.rc.SetWriteDeadline(time.Now().Add(x.timeout))
			if err := x.rc.Flush(); err != nil {
				return nil, fmt.Errorf("send: writing to the HTTP client: %w", err)
			}
			return nil, nil
		}
		x.complete = true
		close(x.done)
		return nil, nil
	}
	return nil, fmt.Errorf("send: unsupported ASGI event type %q", typ)
}

// commitLocked writes status and headers once.
func (x *asgiExchange) commitLocked() {
	if x.committed {
		return
	}
	x.committed = true
	h := x.w.Header()
	for k, vs := range x.header {
		h[k] = vs
	}
	x.w.WriteHeader(x.status)
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(min(n, 1<<62)), true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

func asText(v any) string {
	switch s := v.(type) {
	case []byte:
		return string(s)
	case string:
		return s
	}
	return ""
}

// serveASGI calls serve and relays the exchange until the response is
// complete, serve returns, the client goes away, or the app stays silent
// for AppResponseTimeout (before the response starts: 504; after: the
// connection is cut, so the client sees an incomplete response).
func (s *Server) serveASGI(ctx context.Context, w http.ResponseWriter, r *http.Request, e *registry.Entry, serve *rpc.RemoteFunc, path string) {
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // an app may answer while it still reads the body
	x := &asgiExchange{w: w, rc: rc, body: r.Body, timeout: s.cfg.AppResponseTimeout, limit: s.cfg.MaxHTTPBodyBytes,
		end: make(chan struct{}), done: make(chan struct{}), activity: make(chan struct{}, 1)}
	if r.Body == nil {
		x.body = http.NoBody
	}
	callCtx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	served := make(chan error, 1)
	arg := map[string]any{"scope": s.appScope(r, path), "receive": rpc.HandlerFunc(x.receive), "send": rpc.HandlerFunc(x.send)}
	go func() {
		_, err := serve.Call(callCtx, arg)
		served <- err
	}()
	idle := time.NewTimer(x.timeout)
	defer idle.Stop()
	abort := false
	var serveErr error
	serveReturned := false
loop:
	for {
		select {
		case err := <-served:
			serveErr, serveReturned = err, true
			break loop
		case <-x.done:
			// Let serve return (and the reply to its last send reach it).
			select {
			case err := <-served:
				serveErr, serveReturned = err, true
			case <-time.After(min(appCompleteGrace, x.timeout)):
			case <-ctx.Done():
			}
			break loop
		case <-x.activity:
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(x.timeout)
		case <-idle.C:
			abort = true
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	x.finish()
	// A receive still reading the body ends within the HTTP read timeout;
	// after this none starts.
	x.recvMu.Lock()
	x.bodyDone = true
	x.recvMu.Unlock()
	cancelCall()
	if !serveReturned {
		<-served // returns at once: its context is cancelled
	}
	// From here on the callbacks never touch w.
	switch {
	case x.committed:
		if abort || (!x.complete && serveErr != nil) {
			s.log.Debug("app response cut", "service", e.FullID(), "idle", abort, "err", serveErr)
			panic(http.ErrAbortHandler) // the client must see the response is incomplete
		}
	case ctx.Err() != nil:
		// the client went away: nobody to answer
	case x.tooLarge:
		appError(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body over the limit of %d bytes (max HTTP body bytes)", x.limit))
	case x.started:
		// a start without any body: an empty response
		x.commitLocked()
	case abort:
		appError(w, http.StatusGatewayTimeout, fmt.Sprintf("app service %s did not answer within %s (app response timeout)", e.FullID(), x.timeout))
	case serveErr != nil:
		appError(w, appErrorStatus(serveErr), fmt.Sprintf("app service %s failed: %v", e.FullID(), serveErr))
	default:
		appError(w, http.StatusBadGateway, fmt.Sprintf("app service %s returned without sending a response", e.FullID()))
	}
}

// serveFunctions serves a functions service: the path names the function.
func (s *Server) serveFunctions(ctx context.Context, w http.ResponseWriter, r *http.Request, u *auth.UserInfo,
	e *registry.Entry, svc map[string]any, path string) {
	p := strings.Trim(path, "/")
	if p == "" {
		p = "index"
	}
	parts := strings.Split(p, "/")
	scope := s.appScope(r, path)
	fn := nestedFunc(svc, parts)
	if fn == nil && len(parts) > 1 {
		fn = nestedFunc(svc, append(parts, "index"))
	}
	if fn == nil {
		if d, ok := svc["default"].(*rpc.RemoteFunc); ok {
			fn = d
			if p == "index" {
				scope["function_path"] = "/"
			} else {
				scope["function_path"] = "/" + p
			}
		}
	}
	if fn == nil {
		appError(w, http.StatusNotFound, "Function not found: "+p)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, big := errors.AsType[*http.MaxBytesError](err); big {
			appError(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body over the limit of %d bytes (max HTTP body bytes)", s.cfg.MaxHTTPBodyBytes))
			return
		}
		appError(w, http.StatusRequestTimeout, fmt.Sprintf("could not read the request body: %v", err))
		return
	}
	hdrs := map[string]any{}
	for _, h := range appRequestHeaders(r) {
		hdrs[h[0]] = h[1] // the last of a repeated header, as a dict of them keeps
	}
	scope["headers"] = hdrs
	scope["query_string"] = r.URL.RawQuery
	scope["raw_path"] = path
	if len(body) > 0 {
		scope["body"] = body
	} else {
		scope["body"] = nil
	}
	scope["user"] = u.ToMap()
	cctx, cancel := context.WithTimeout(ctx, s.cfg.AppResponseTimeout)
	defer cancel()
	res, err := fn.Call(cctx, scope)
	if err != nil {
		code := callErrorStatus(err)
		if ctx.Err() == nil && cctx.Err() != nil {
			code = http.StatusGatewayTimeout
		}
		appError(w, code, "Internal Server Error: "+err.Error())
		return
	}
	m, _ := res.(map[string]any)
	if m == nil {
		appError(w, http.StatusBadGateway, fmt.Sprintf("functions service %s answered %T, not a dict with status, headers and body", e.FullID(), res))
		return
	}
	status := int64(http.StatusOK)
	if v, ok := m["status"]; ok && v != nil {
		if status, ok = asInt(v); !ok || status < 200 || status > 999 {
			appError(w, http.StatusBadGateway, fmt.Sprintf("functions service %s answered an invalid status %v", e.FullID(), m["status"]))
			return
		}
	}
	var out []byte
	switch b := m["body"].(type) {
	case nil:
	case string:
		out = []byte(b)
	case []byte:
		out = b
	default:
		appError(w, http.StatusBadGateway, fmt.Sprintf("functions service %s answered a body of type %T (want str or bytes)", e.FullID(), b))
		return
	}
	h := w.Header()
	if hm, ok := m["headers"].(map[string]any); ok {
		for k, v := range hm {
			if sv, ok := v.(string); ok {
				addAppHeader(h, k, sv)
			}
		}
	}
	// CORS as upstream, without credentials: a page of another origin may
	// read the answer to a request it makes without the caller's cookie.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET,POST,PUT,DELETE,OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization,Content-Type")
	h.Set("Access-Control-Expose-Headers", "Content-Disposition")
	h.Del("Content-Length")
	w.WriteHeader(int(status))
	_, _ = w.Write(out)
}

// nestedFunc follows parts through nested dicts of svc to a function.
func nestedFunc(svc map[string]any, parts []string) *rpc.RemoteFunc {
	var cur any = svc
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[p]; !ok {
			return nil
		}
	}
	f, _ := cur.(*rpc.RemoteFunc)
	return f
}
