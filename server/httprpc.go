package server

// The HTTP streaming transport of hypha-rpc (transport="http"): the client
// opens GET /rpc, whose response is an endless stream of frames (a 4-byte
// big-endian length, then one msgpack message), and POSTs its own messages
// to /rpc. Each stream is an ordinary connection of the router: the GET is
// turned into the first message a websocket client would send and served by
// serveAdmitting, so authentication, workspaces, limits, reconnection tokens
// and the clean-up at the end are the websocket's own (ws.go).
//
// Upstream accepts a POST for any stream whose workspace and client id it
// names, so whoever learns a client's id (every frame it sends carries it)
// can speak as that client. Here a POST must prove it comes from the
// stream's opener: it carries the stream's cookie (a random secret set on
// the GET's response) or the very Authorization token the GET carried.
// See docs/security.md, "The HTTP streaming transport".

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
)

const (
	// DefaultMaxRPCStreamsPerCaller is the default of
	// Config.MaxRPCStreamsPerCaller.
	DefaultMaxRPCStreamsPerCaller = 64
	// rpcStreamPingEvery is how often an idle stream carries a ping frame:
	// upstream's clients expect one (the JavaScript client gives up on a
	// stream silent for 120 s), and a write to a vanished client fails.
	rpcStreamPingEvery = 30 * time.Second
	// rpcPostSlots bounds the POSTs of one stream whose bodies are read at
	// once: the memory a stream may hold in message bodies is this many
	// times MaxMessageSize. Further POSTs wait (their bodies stay unread).
	rpcPostSlots = 4
	// rpcStreamCookiePrefix starts the name of a stream's cookie.
	rpcStreamCookiePrefix = "hypha_rpc_"
	// maxControlBytes bounds a POSTed control message (ping, refresh_token).
	maxControlBytes = 1000
)

// ErrStreamClosed is returned by a write to an HTTP stream that has ended.
var ErrStreamClosed = errors.New("HTTP RPC stream closed")

// streamControlTypes are the frame types upstream's HTTP clients take for
// the transport's own messages. A routed frame of such a type would be
// misread as one (a forged connection_info or reconnection_token), so it
// is never delivered to a stream.
var streamControlTypes = map[string]bool{
	"connection_info": true, "ping": true, "pong": true, "reconnection_token": true, "error": true,
}

// rpcStreams is the table of open streams (by ws/client_id, once admitted)
// and the count of streams per caller.
type rpcStreams struct {
	mu        sync.Mutex
	byID      map[string]*httpStream
	perCaller callerCounts // streams per caller (MaxRPCStreamsPerCaller)
}

func (t *rpcStreams) register(id string, st *httpStream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID = map[string]*httpStream{}
	}
	t.byID[id] = st
}

func (t *rpcStreams) unregister(id string, st *httpStream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[id] == st {
		delete(t.byID, id)
	}
}

func (t *rpcStreams) get(id string) *httpStream {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

// httpStream is the server's side of one HTTP streaming connection: the
// transport of its conn. Reads come from POSTs, writes go to the GET's
// response.
type httpStream struct {
	s  *Server
	w  http.ResponseWriter
	rc *http.ResponseController

	// Credentials a POST must show (owns).
	cookieName string
	secret     string
	tokenHash  []byte // sha256 of the GET's Authorization token; nil without one
	secure     bool   // the GET came over TLS: the cookie is Secure

	in     chan pipeMsg // the hello, then POSTed messages; read by the read loop
	slots  chan struct{}
	closed chan struct{}
	once   sync.Once

	// wlock serialises writes to w. It is a channel so that a write with a
	// deadline (a close's error frame) gives up waiting behind a write
	// blocked on a client that stopped reading; CloseWith cuts that one.
	wlock chan struct{}
	// mu guards the fields below; it is never held during network I/O.
	mu       sync.Mutex
	id       string // ws/client_id, set when connection_info is written
	started  bool   // the 200 response and its headers are out
	finished bool   // the handler returned: w must not be touched
	refusal  string // an error message written before the stream started

	// ctlMu guards rc against the handler's return (CloseWith calls it
	// from other goroutines while a write may hold mu).
	ctlMu    sync.Mutex
	ctlDone  bool
	code     int
	reason   string
	pingDone chan struct{}
}

func (st *httpStream) Read(ctx context.Context) (rpc.MessageType, []byte, error) {
	select {
	case m := <-st.in:
		return m.typ, m.data, nil
	default:
	}
	select {
	case m := <-st.in:
		return m.typ, m.data, nil
	case <-st.closed:
		return 0, nil, ErrStreamClosed
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// Write sends one frame on the stream. Text messages (the server's JSON
// control messages) travel as msgpack maps, as upstream sends them. An error
// message before the stream started is kept for the HTTP error answer.
func (st *httpStream) Write(ctx context.Context, typ rpc.MessageType, data []byte) error {
	var frame []byte
	if typ == rpc.Text {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("stream control message: %w", err)
		}
		b, err := wire.Encode(m)
		if err != nil {
			return fmt.Errorf("stream control message: %w", err)
		}
		frame = b
		st.mu.Lock()
		if !st.started && !st.finished {
			switch m["type"] {
			case "error":
				st.refusal, _ = m["message"].(string)
				st.mu.Unlock()
				return nil
			case "connection_info":
				ws, _ := m["workspace"].(string)
				cid, _ := m["client_id"].(string)
				st.start(ws + "/" + cid)
			}
		}
		st.mu.Unlock()
	} else {
		m, err := wire.ScanMain(data)
		if err == nil {
			drop := streamControlTypes[m.Type]
			m.Release()
			if drop {
				return nil
			}
		}
		frame = data
	}
	return st.writeFrame(ctx, frame)
}

// start answers the GET (under mu): 200, the stream's headers and cookie;
// from now on POSTs for id reach this stream.
func (st *httpStream) start(id string) {
	st.id = id
	h := st.w.Header()
	h.Set("Content-Type", "application/x-msgpack-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // reverse proxies must not buffer the stream
	http.SetCookie(st.w, &http.Cookie{
		Name: st.cookieName, Value: st.secret, Path: "/rpc",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: st.secure,
	})
	st.s.streams.register(id, st)
	st.w.WriteHeader(http.StatusOK)
	st.started = true
}

func (st *httpStream) writeFrame(ctx context.Context, frame []byte) error {
	if len(frame) > 1<<32-1 {
		return fmt.Errorf("frame of %d bytes is too large for the stream", len(frame))
	}
	select {
	case st.wlock <- struct{}{}:
		defer func() { <-st.wlock }()
	case <-st.closed:
		return ErrStreamClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	st.mu.Lock()
	usable := st.started && !st.finished
	st.mu.Unlock()
	if !usable {
		return ErrStreamClosed
	}
	select {
	case <-st.closed:
		return ErrStreamClosed
	default:
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.rc.SetWriteDeadline(dl)
		defer func() { _ = st.rc.SetWriteDeadline(time.Time{}) }()
		select {
		case <-st.closed: // CloseWith's cut may have come before our deadline
			return ErrStreamClosed
		default:
		}
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)))
	_, err := st.w.Write(hdr[:])
	if err == nil {
		_, err = st.w.Write(frame)
	}
	if err == nil {
		err = st.rc.Flush()
	}
	if err != nil {
		// The client is gone or stopped reading: the connection ends.
		go st.CloseWith(closeGoingAway, "stream write failed")
		return fmt.Errorf("%w: %v", ErrStreamClosed, err)
	}
	return nil
}

// CloseWith ends the stream: reads fail, a write blocked on the client is
// cut, and the GET handler returns. The first code and reason are kept for
// a stream that never started (they become its HTTP error answer).
func (st *httpStream) CloseWith(code int, reason string) {
	st.once.Do(func() {
		st.ctlMu.Lock()
		st.code, st.reason = code, reason
		close(st.closed)
		if !st.ctlDone {
			_ = st.rc.SetWriteDeadline(time.Now())
		}
		st.ctlMu.Unlock()
	})
}

// owns reports whether a POST carries the credentials of the stream's
// opener: its cookie, or the Authorization token of the GET.
func (st *httpStream) owns(r *http.Request) bool {
	if c, err := r.Cookie(st.cookieName); err == nil &&
		subtle.ConstantTimeCompare([]byte(c.Value), []byte(st.secret)) == 1 {
		return true
	}
	if st.tokenHash != nil {
		if tok := bearerToken(r); tok != "" {
			h := sha256.Sum256([]byte(tok))
			return subtle.ConstantTimeCompare(h[:], st.tokenHash) == 1
		}
	}
	return false
}

// keepAlive pings the client every rpcStreamPingEvery and, for a client
// that sent nothing for half the idle timeout, checks that it still answers
// (a stream client has no reason to send anything while idle): then it
// counts as active. One that does not answer is closed by the idle sweep.
func (st *httpStream) keepAlive() {
	defer close(st.pingDone)
	t := time.NewTicker(rpcStreamPingEvery)
	defer t.Stop()
	ping, _ := json.Marshal(map[string]string{"type": "ping"})
	for {
		select {
		case <-st.closed:
			return
		case <-t.C:
		}
		st.mu.Lock()
		id, started := st.id, st.started
		st.mu.Unlock()
		if !started {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := st.Write(ctx, rpc.Text, ping)
		cancel()
		if err != nil {
			return
		}
		c := st.s.router.get(id)
		if c == nil || c.t != transport(st) {
			continue
		}
		if time.Since(time.Unix(0, c.lastActive.Load())) > st.s.cfg.IdleTimeout/2 {
			pctx, cancel := context.WithCancel(context.Background())
			stop := context.AfterFunc(st.s.ctx, cancel)
			if st.s.alive(pctx, c) {
				c.lastActive.Store(time.Now().UnixNano())
			}
			stop()
			cancel()
		}
	}
}

// bearerToken is the token of the Authorization header ("Bearer T" or T).
func bearerToken(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		h = strings.TrimSpace(h[7:])
	}
	return h
}

// streamCookieName is the cookie of stream id: one per client, so that
// several clients sharing a cookie jar (a browser page) keep theirs apart.
func streamCookieName(id string) string {
	h := sha256.Sum256([]byte(id))
	return rpcStreamCookiePrefix + hex.EncodeToString(h[:8])
}

// streamCallerKey is who a stream counts against for MaxRPCStreamsPerCaller:
// the user of its token or reconnection token, else (anonymous) its network
// address.
func (s *Server) streamCallerKey(r *http.Request, tok, rtok string) string {
	for _, t := range []string{tok, rtok} {
		if t == "" {
			continue
		}
		if u, err := s.parseToken(t); err == nil {
			return "user:" + u.ID
		}
	}
	return "addr:" + remoteHost(r.RemoteAddr)
}

// handleRPCStream serves GET /rpc: the stream of one client connection.
// Query: client_id (random when missing), workspace, reconnection_token;
// the token comes in the Authorization header.
func (s *Server) handleRPCStream(w http.ResponseWriter, r *http.Request) {
	if !s.track() {
		httpError(w, http.StatusServiceUnavailable, "Server is shutting down")
		return
	}
	defer s.wg.Done()
	q := r.URL.Query()
	cid, ws, rtok := q.Get("client_id"), q.Get("workspace"), q.Get("reconnection_token")
	if cid == "" {
		cid = idgen.New()
	}
	tok := bearerToken(r)
	if tok == "" && rtok == "" && ws == "public" {
		// As upstream's HTTP transport: an anonymous client asking for the
		// public workspace gets its own.
		ws = ""
	}
	key := s.streamCallerKey(r, tok, rtok)
	if !s.streams.perCaller.acquire(key, s.cfg.MaxRPCStreamsPerCaller) {
		httpError(w, http.StatusTooManyRequests, fmt.Sprintf(
			"too many RPC streams for this caller (at most %d open, max RPC streams per caller); close one first",
			s.cfg.MaxRPCStreamsPerCaller))
		return
	}
	defer s.streams.perCaller.release(key)
	pendingDone, admitted := s.admitPending()
	if !admitted {
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf(
			"Too many connections waiting for authentication (limit %d, max pending connections); try again later",
			s.cfg.MaxPendingConnections))
		return
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	st := &httpStream{
		s: s, w: w, rc: http.NewResponseController(w),
		secret: base64.RawURLEncoding.EncodeToString(secret),
		secure: r.TLS != nil,
		in:     make(chan pipeMsg, 1), slots: make(chan struct{}, rpcPostSlots), wlock: make(chan struct{}, 1),
		closed: make(chan struct{}), pingDone: make(chan struct{}),
	}
	if tok != "" {
		h := sha256.Sum256([]byte(tok))
		st.tokenHash = h[:]
	}
	// The cookie is named after the client id (the workspace the server
	// picks is only known later).
	st.cookieName = streamCookieName(cid)
	// The stream outlives the server's whole-request read timeout, which
	// would otherwise end it (Go cancels a request whose connection read
	// fails, and the deadline makes the pending read fail).
	_ = st.rc.SetReadDeadline(time.Time{})
	first, _ := json.Marshal(hello{ClientID: cid, Workspace: ws, Token: tok, ReconnectionToken: rtok})
	st.in <- pipeMsg{rpc.Text, first}
	stop := context.AfterFunc(r.Context(), func() { st.CloseWith(closeGoingAway, "the client closed the stream") })
	defer stop()
	go st.keepAlive()

	s.serveAdmitting(st, r.RemoteAddr, pendingDone)

	st.CloseWith(closeGoingAway, "Connection closed")
	<-st.pingDone
	st.wlock <- struct{}{} // a write in progress ends (cut by CloseWith)
	st.mu.Lock()
	st.finished = true
	started, id, refusal := st.started, st.id, st.refusal
	st.mu.Unlock()
	st.ctlMu.Lock()
	st.ctlDone = true
	code, reason := st.code, st.reason
	st.ctlMu.Unlock()
	if started {
		s.streams.unregister(id, st)
		// The response's end still goes out after the handler returns; a
		// client that stopped reading must not hold it forever.
		_ = st.rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return
	}
	if refusal == "" {
		refusal = reason
	}
	// CloseWith cut writes by a past deadline; the refusal gets its own.
	_ = st.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	httpError(w, refusalStatus(code), refusal)
}

// refusalStatus is the HTTP status of a connection refused before its
// stream started, from the websocket close code it would have had.
func refusalStatus(code int) int {
	switch code {
	case closePolicy:
		return http.StatusUnauthorized
	case closeTryAgainLater:
		return http.StatusServiceUnavailable
	case closeUnsupported:
		return http.StatusBadRequest
	default:
		return http.StatusForbidden
	}
}

// handleRPCPost serves POST /rpc?client_id=C&workspace=W: one message of
// the client's stream (a msgpack RPC message, or a control message ping or
// refresh_token), accepted only with the stream's credentials (owns).
func (s *Server) handleRPCPost(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cid, ws := q.Get("client_id"), q.Get("workspace")
	if cid == "" {
		httpError(w, http.StatusBadRequest, "client_id is required")
		return
	}
	if ws == "" {
		if tok := bearerToken(r); tok != "" {
			if u, err := s.parseToken(tok); err == nil {
				ws = u.Scope.CurrentWorkspace
			}
		}
		if ws == "" {
			httpError(w, http.StatusBadRequest, "workspace is required (the workspace of the stream's connection_info)")
			return
		}
	}
	id := ws + "/" + cid
	st := s.streams.get(id)
	if st == nil {
		// 400: upstream's clients retry it (their stream may be reconnecting).
		httpError(w, http.StatusBadRequest, fmt.Sprintf("no open RPC stream for client %s: open it with GET /rpc first", id))
		return
	}
	if !st.owns(r) {
		httpError(w, http.StatusForbidden, fmt.Sprintf(
			"Permission denied: this request does not carry the credentials of the RPC stream of %s (its cookie or the Authorization token that opened it)", id))
		return
	}
	select {
	case st.slots <- struct{}{}:
		defer func() { <-st.slots }()
	case <-st.closed:
		httpError(w, http.StatusBadRequest, "the RPC stream of "+id+" has closed")
		return
	case <-r.Context().Done():
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxMessageSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"message over the limit of %d bytes (max message size; larger messages travel in chunks)", mbe.Limit))
			return
		}
		httpError(w, http.StatusBadRequest, "reading the message: "+err.Error())
		return
	}
	if len(body) == 0 {
		httpError(w, http.StatusBadRequest, "empty body: POST one msgpack message")
		return
	}
	msg := pipeMsg{rpc.Binary, body}
	var malformed error
	if ctl := controlType(body); ctl != "" {
		b, _ := json.Marshal(map[string]string{"type": ctl})
		msg = pipeMsg{rpc.Text, b}
	} else if m, err := wire.ScanMain(body); err != nil {
		// Handed on all the same: the read loop counts it against the
		// connection's malformed frames, as for a websocket.
		malformed = err
	} else {
		m.Release()
	}
	select {
	case st.in <- msg:
	case <-st.closed:
		httpError(w, http.StatusBadRequest, "the RPC stream of "+id+" has closed")
		return
	case <-r.Context().Done():
		return
	}
	if malformed != nil {
		httpError(w, http.StatusBadRequest, "malformed message: "+malformed.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
}

// controlType is "ping" or "refresh_token" when body is that control
// message (a small map without a target), else "".
func controlType(body []byte) string {
	if len(body) > maxControlBytes {
		return ""
	}
	m, _, err := wire.DecodeMain(body)
	if err != nil {
		return ""
	}
	if _, routed := m["to"]; routed {
		return ""
	}
	switch t, _ := m["type"].(string); t {
	case "ping", "refresh_token":
		return t
	}
	return ""
}
