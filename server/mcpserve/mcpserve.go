// Package mcpserve serves Hypha services to MCP clients over the streamable
// HTTP transport (the official Go SDK, github.com/modelcontextprotocol/go-sdk):
// a service's functions become MCP tools with their JSON schemas.
//
// The package owns only the MCP side: sessions, their bounds, tools and
// results. Who the caller is, which service the URL names and whether the
// caller may see it come from a Backend, which the server implements with
// the very lookup and identity stamping of its HTTP service-call route
// (server/httpcall.go), so both routes keep one set of rules. Every tool call
// authenticates the HTTP request that carries it and resolves the service
// again as that caller: a session grants nothing by itself.
package mcpserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Defaults of Config.
const (
	DefaultMaxSessionsPerCaller = 16
	DefaultIdleTimeout          = 10 * time.Minute
	DefaultMaxBodyBytes         = 16 << 20
	// CallTimeout bounds one tool call, as the HTTP route bounds its calls.
	CallTimeout = 5 * time.Minute
	// maxGeneratorItems bounds the items collected from a function that
	// returns a generator (MCP has no streamed tool results).
	maxGeneratorItems = 1000
)

// ErrTooManySessions is the refusal of a new session beyond
// Config.MaxSessionsPerCaller.
var ErrTooManySessions = errors.New("too many MCP sessions for this caller")

// Caller is an authenticated HTTP caller.
type Caller struct {
	// Key identifies the caller for the session bound and the session
	// owner check: the user id, or for an anonymous caller its network
	// address (anonymous users get a fresh id on every request).
	Key string
	// Auth is the backend's own record of the caller (opaque here).
	Auth any
}

// Backend is what the MCP endpoint needs from the server.
type Backend interface {
	// Caller authenticates a request from its headers (Authorization
	// bearer token or access_token cookie; anonymous without either).
	// remoteAddr is the request's peer address ("" when unknown).
	Caller(h http.Header, remoteAddr string) (Caller, error)
	// Service resolves workspace/serviceID for c with the rules of the HTTP
	// service routes and fetches it as c. The returned map holds the
	// service's members (functions as *rpc.RemoteFunc); release ends the
	// fetch. An error may be a *StatusError.
	Service(ctx context.Context, c Caller, workspace, serviceID, mode string) (svc map[string]any, release func(), err error)
	// JSONValue makes a decoded RPC value JSON-friendly (bytes as base64,
	// functions as descriptions), as the HTTP route answers it.
	JSONValue(v any) any
}

// StatusError is a Backend error with the HTTP status to answer.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// Config configures a Handler.
type Config struct {
	Backend Backend
	// MaxSessionsPerCaller bounds the open MCP sessions of one caller
	// (default 16).
	MaxSessionsPerCaller int
	// IdleTimeout closes a session that received no request for that long
	// (default 10 min).
	IdleTimeout time.Duration
	// MaxBodyBytes bounds a request body (default 16 MiB).
	MaxBodyBytes int64
	// Version is the server version told to MCP clients.
	Version string
	Logger  *slog.Logger
}

// Handler serves /{workspace}/mcp/{service_id}/mcp. Close it to end its
// sessions.
type Handler struct {
	cfg Config
	sdk *mcp.StreamableHTTPHandler

	mu        sync.Mutex
	closed    bool
	sessions  map[string]*session // by MCP session id
	perCaller map[string]int      // open (or being opened) sessions per caller key
	wg        sync.WaitGroup      // session watchers
}

// session is one open MCP session: its owner and the service it serves.
type session struct {
	ss        *mcp.ServerSession
	callerKey string
	ws, sid   string
}

type serverKey struct{}

// New builds a Handler.
func New(cfg Config) *Handler {
	if cfg.MaxSessionsPerCaller <= 0 {
		cfg.MaxSessionsPerCaller = DefaultMaxSessionsPerCaller
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, sessions: map[string]*session{}, perCaller: map[string]int{}}
	// The SDK asks for a server only when a request opens a session; ours
	// built it (for this caller and service) before handing the request on.
	h.sdk = mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		srv, _ := r.Context().Value(serverKey{}).(*mcp.Server)
		return srv
	}, &mcp.StreamableHTTPOptions{
		JSONResponse:        true,
		SessionTimeout:      cfg.IdleTimeout,
		MaxRequestBodyBytes: cfg.MaxBodyBytes,
		Logger:              cfg.Logger,
		// The SDK refuses requests reaching a loopback address with another
		// Host header (against DNS rebinding of local MCP servers). Here that
		// is every request through a reverse proxy on the same machine, and
		// the endpoint keeps the HTTP routes' rules, which have no Host
		// check: what a caller may do comes from its token alone.
		DisableLocalhostProtection: true,
	})
	return h
}

// jsonrpcError answers an HTTP-level refusal as a JSON-RPC error object, so
// an MCP client shows the reason rather than a bare status.
func jsonrpcError(w http.ResponseWriter, status, code int, msg string) {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": code, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// JSON-RPC error codes used for HTTP-level refusals.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeServerError    = -32000 // refusals: not found, unauthorised, limits
)

const sessionHeader = "Mcp-Session-Id"

// ServeHTTP serves one request of the streamable HTTP transport.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, sid := r.PathValue("workspace"), r.PathValue("service_id")
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		jsonrpcError(w, http.StatusServiceUnavailable, codeServerError, "the server is shutting down")
		return
	}
	c, err := h.cfg.Backend.Caller(r.Header, r.RemoteAddr)
	if err != nil {
		jsonrpcError(w, http.StatusUnauthorized, codeServerError, err.Error())
		return
	}
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, h.cfg.MaxBodyBytes+1))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge) || int64(len(body)) > h.cfg.MaxBodyBytes:
			jsonrpcError(w, http.StatusRequestEntityTooLarge, codeInvalidRequest,
				fmt.Sprintf("request body over the limit of %d bytes", h.cfg.MaxBodyBytes))
			return
		case err != nil:
			jsonrpcError(w, http.StatusBadRequest, codeInvalidRequest, "could not read the request body: "+err.Error())
			return
		}
		if err := validJSONRPC(body); err != nil {
			jsonrpcError(w, http.StatusBadRequest, codeParseError, err.Error())
			return
		}
		r.Body = io.NopCloser(bytesReader(body))
	}
	mode := r.URL.Query().Get("_mode")
	// Every request, not only the first of a session, must name a service
	// this caller may use now.
	svc, release, err := h.cfg.Backend.Service(r.Context(), c, ws, sid, mode)
	if err != nil {
		code := http.StatusBadGateway
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		jsonrpcError(w, code, codeServerError, err.Error())
		return
	}
	if id := r.Header.Get(sessionHeader); id != "" {
		release()
		h.mu.Lock()
		s := h.sessions[id]
		h.mu.Unlock()
		if s == nil || s.callerKey != c.Key || s.ws != ws || s.sid != sid {
			jsonrpcError(w, http.StatusNotFound, codeServerError,
				"MCP session not found for this caller and service (expired or closed?): initialize a new one")
			return
		}
		h.sdk.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost {
		release()
		h.sdk.ServeHTTP(w, r) // the SDK explains what is missing
		return
	}
	if !h.reserve(c.Key) {
		release()
		jsonrpcError(w, http.StatusTooManyRequests, codeServerError, fmt.Sprintf(
			"%v (at most %d open): close one (HTTP DELETE with its Mcp-Session-Id) or wait until idle ones expire (%s)",
			ErrTooManySessions, h.cfg.MaxSessionsPerCaller, h.cfg.IdleTimeout))
		return
	}
	srv := h.newServer(ws, sid, mode, svc)
	release()
	// The session is recorded before its id reaches the client (the first
	// write of the response), so the client's next request finds it.
	tw := &trackingWriter{ResponseWriter: w, track: func() { h.track(srv, c.Key, ws, sid) }}
	h.sdk.ServeHTTP(tw, r.WithContext(context.WithValue(r.Context(), serverKey{}, srv)))
	tw.once.Do(tw.track)
}

// trackingWriter runs track once, before the response's header is written.
type trackingWriter struct {
	http.ResponseWriter
	once  sync.Once
	track func()
}

func (t *trackingWriter) WriteHeader(code int) {
	t.once.Do(t.track)
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.once.Do(t.track)
	return t.ResponseWriter.Write(b)
}

func (t *trackingWriter) Flush() {
	t.once.Do(t.track)
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// reserve takes a session slot for caller key, if one is free.
func (h *Handler) reserve(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.perCaller[key] >= h.cfg.MaxSessionsPerCaller {
		return false
	}
	h.perCaller[key]++
	return true
}

func (h *Handler) unreserve(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.perCaller[key]--; h.perCaller[key] <= 0 {
		delete(h.perCaller, key)
	}
}

// track records the session srv got (if the request opened one) and frees
// its slot when it ends: closed by the client (DELETE), idle, or Close.
func (h *Handler) track(srv *mcp.Server, key, ws, sid string) {
	var ss *mcp.ServerSession
	for x := range srv.Sessions() {
		ss = x
	}
	if ss == nil || ss.ID() == "" {
		h.unreserve(key)
		return
	}
	s := &session{ss: ss, callerKey: key, ws: ws, sid: sid}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = ss.Close()
		h.unreserve(key)
		return
	}
	h.sessions[ss.ID()] = s
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		_ = ss.Wait()
		h.mu.Lock()
		delete(h.sessions, ss.ID())
		h.mu.Unlock()
		h.unreserve(key)
	}()
}

// Sessions is the number of open MCP sessions.
func (h *Handler) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Close ends every session and refuses new requests.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	all := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		_ = s.ss.Close()
	}
	h.wg.Wait()
}

// remoteHost is the host part of a RemoteAddr.
func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// AnonymousKey is the Caller.Key of an anonymous caller at remoteAddr.
func AnonymousKey(remoteAddr string) string { return "anonymous@" + remoteHost(remoteAddr) }
