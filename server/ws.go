package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/lograte"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/internal/wsconn"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// Close codes used by upstream Hypha.
const (
	closeGoingAway     = 1001
	closeUnsupported   = 1003
	closePolicy        = 1008
	closeTryAgainLater = 1013
)

const legacyRejection = "Connection rejected, please  upgrade to `hypha-rpc` which pass the authentication information in the first message"

// wsTransport is a websocket connection (internal/wsconn: its reads and
// writes are the server's hot path).
type wsTransport struct {
	c *wsconn.Conn
}

// Read ignores ctx: the server never cancels a read; closing the
// connection ends it.
func (w *wsTransport) Read(context.Context) (rpc.MessageType, []byte, error) {
	op, b, err := w.c.Read()
	return rpc.MessageType(op), b, err
}

// Write queues the message (internal/batchconn); ctx bounds only the wait
// for a peer that stopped reading.
func (w *wsTransport) Write(ctx context.Context, typ rpc.MessageType, data []byte) error {
	return w.c.Write(ctx, byte(typ), data)
}

// Fill waits until the connection has bytes to read (see readLoop).
func (w *wsTransport) Fill() error { return w.c.Fill() }

func (w *wsTransport) CloseWith(code int, reason string) {
	w.c.Close(code, reason)
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if !s.track() {
		http.Error(w, "Server is shutting down", http.StatusServiceUnavailable)
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			s.wg.Done()
		}
	}()
	// Counted before the upgrade is answered, so that a client that sees
	// its upgrade complete is already counted: back-to-back dials cannot
	// overtake each other's count.
	pendingDone, admitted := s.admitPending()
	// Any origin may connect (browsers on any origin, as upstream allows).
	c, err := wsconn.Accept(w, r, s.cfg.MaxMessageSize)
	if err != nil {
		if admitted {
			pendingDone()
		}
		return
	}
	q := r.URL.Query()
	for _, k := range []string{"workspace", "client_id", "token", "reconnection_token"} {
		if q.Has(k) {
			if admitted {
				pendingDone()
			}
			c.Close(closePolicy, legacyRejection[:min(len(legacyRejection), 120)])
			return
		}
	}
	// The connection is served on a fresh goroutine and this handler returns:
	// the HTTP server's goroutine, whose stack grew while parsing the
	// upgrade request, goes away, and an idle connection keeps only the
	// small stack of its read loop.
	t := &wsTransport{c: c}
	if !admitted {
		t.CloseWith(closeTryAgainLater, fmt.Sprintf(
			"Too many connections waiting for authentication (limit %d, max pending connections); try again later",
			s.cfg.MaxPendingConnections))
		return
	}
	handedOff = true
	remote := r.RemoteAddr
	go func() {
		defer s.wg.Done()
		s.serveAdmitting(t, remote, pendingDone)
	}()
}

func errorFrame(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"type": "error", "message": msg})
	return b
}

type hello struct {
	ClientID          string `json:"client_id"`
	Workspace         string `json:"workspace"`
	Token             string `json:"token"`
	ReconnectionToken string `json:"reconnection_token"`
}

// setupError carries the close code for a refused connection.
type setupError struct {
	code   int
	reason string
}

func (e *setupError) Error() string { return e.reason }

func refuse(code int, format string, args ...any) *setupError {
	return &setupError{code: code, reason: fmt.Sprintf(format, args...)}
}

// serveConn runs one client connection from its first message to its end.
func (s *Server) serveConn(t transport, remote string) { s.serveAdmitting(t, remote, nil) }

// admitPending counts one more connection waiting for its first message and
// returns the function that stops counting it (idempotent), or false when
// MaxPendingConnections are already waiting. Each costs a socket and a
// goroutine for up to AuthTimeout, and anyone can open them.
func (s *Server) admitPending() (done func(), ok bool) {
	if n := s.pending.Add(1); n > int64(s.cfg.MaxPendingConnections) {
		s.pending.Add(-1)
		return nil, false
	}
	return sync.OnceFunc(func() { s.pending.Add(-1) }), true
}

// serveAdmitting is serveConn for a connection counted by admitPending:
// pendingDone is called once its first message arrived (or it ended).
func (s *Server) serveAdmitting(t transport, remote string, pendingDone func()) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // shutting down ends admission
	defer stop()
	c := s.handshake(ctx, t, remote, pendingDone)
	if c == nil {
		return
	}
	cancel()
	stop()
	if s.readPolled(c) {
		return // a poller loop reads it from now on (polled.go)
	}
	// An idle connection spends its life parked in readLoop, with
	// handshake's large stack frame gone from below it (see readLoop).
	s.readLoop(c)
	s.disconnected(c)
}

// handshake admits a connection from its first message and sends
// connection_info; nil when the connection was refused or has ended.
func (s *Server) handshake(ctx context.Context, t transport, remote string, pendingDone func()) *conn {
	// The wait for the first message ends with a close frame on timeout or
	// shutdown; the close also ends the pending read. (Expiring the read's
	// context instead would drop the socket without a close frame: the
	// websocket library closes a connection whose read is cancelled.)
	if pendingDone == nil {
		pendingDone = func() {}
	}
	defer pendingDone()
	authTimer := time.AfterFunc(s.cfg.AuthTimeout, func() {
		t.CloseWith(closePolicy, "Authentication payload timeout")
	})
	stopShutdownClose := context.AfterFunc(s.ctx, func() {
		t.CloseWith(closeGoingAway, "Server is shutting down")
	})
	var typ rpc.MessageType
	var data []byte
	var err error
	for {
		typ, data, err = t.Read(context.Background())
		if err != nil || typ == rpc.Text {
			break
		}
	}
	timedOut, shutDown := !authTimer.Stop(), !stopShutdownClose()
	pendingDone()
	if timedOut || shutDown {
		return nil // closed by the timer or by Close
	}
	if err != nil {
		t.CloseWith(closeGoingAway, "connection closed during authentication")
		return nil
	}
	var h hello
	if err := json.Unmarshal(data, &h); err != nil {
		sendAndClose(t, closeUnsupported, "Failed to decode authentication information")
		return nil
	}
	c, serr := s.admit(ctx, h)
	if serr != nil {
		s.log.Info("connection refused", "client_id", h.ClientID, "remote", remote, "reason", serr.reason)
		sendAndClose(t, serr.code, serr.reason)
		return nil
	}
	c.t = t
	if old := s.router.add(c); old != nil {
		// In the background: the old socket is typically the half-dead one,
		// and its close handshake must not delay this connection.
		s.closeLater(old, "Old connection for "+c.id+" superseded")
	}
	if s.closing() {
		// Close's closeAll may have run before the add: do its job here.
		s.router.remove(c)
		sendAndClose(t, closeGoingAway, "Server is shutting down")
		return nil
	}
	reconnTok, err := s.reconnectionToken(c)
	if err != nil {
		s.router.remove(c)
		sendAndClose(t, closeGoingAway, "Failed to establish connection: "+err.Error())
		return nil
	}
	info := map[string]any{
		"type": "connection_info", "hypha_version": Version,
		"public_base_url": s.URL(), "local_base_url": s.URL(),
		"manager_id": s.managerID, "workspace": c.ws, "client_id": c.cid,
		"user": c.user.ToMap(), "reconnection_token": reconnTok,
		"reconnection_token_life_time": s.cfg.ReconnectionTokenLife.Seconds(),
	}
	b, _ := json.Marshal(info)
	wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
	err = t.Write(wctx, rpc.Text, b)
	wcancel()
	if err != nil {
		s.disconnected(c)
		return nil
	}
	s.log.Debug("client connected", "id", c.id, "user", c.user.ID, "remote", remote)
	return c
}

// closeLater closes c (1001, reason) on a goroutine counted in s.wg; the
// caller must itself be counted (serveConn is), so that Close waits for it.
func (s *Server) closeLater(c *conn, reason string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.close(closeGoingAway, reason)
	}()
}

func sendAndClose(t transport, code int, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = t.Write(ctx, rpc.Text, errorFrame(reason))
	cancel()
	t.CloseWith(code, reason)
}

// admit authenticates the first message and decides the workspace.
func (s *Server) admit(ctx context.Context, h hello) (*conn, *setupError) {
	if h.ClientID == "" {
		return nil, refuse(closeGoingAway, "Failed to establish connection: client_id is required")
	}
	if strings.ContainsAny(h.ClientID, "/*") || len(h.ClientID) > 256 {
		return nil, refuse(closeGoingAway, "Failed to establish connection: invalid client_id %q", h.ClientID)
	}
	if strings.ContainsAny(h.Workspace, "/:@*") {
		return nil, refuse(closeGoingAway, "Failed to establish connection: invalid workspace %q", h.Workspace)
	}
	var user *auth.UserInfo
	ws := h.Workspace
	reconnecting := false
	authFail := func(err error) *setupError {
		if errors.Is(err, auth.ErrTokenExpired) || errors.Is(err, auth.ErrTokenInvalid) {
			return refuse(closePolicy, "Authentication error: %v", err)
		}
		return refuse(closeGoingAway, "Failed to establish connection: Failed to authenticate user: %v", err)
	}
	switch {
	case h.ReconnectionToken != "":
		u, err := s.parseToken(h.ReconnectionToken)
		if err != nil {
			return nil, authFail(err)
		}
		if u.Specialized() {
			return nil, authFail(errors.New("specialized tokens cannot be used to connect"))
		}
		if u.Scope.CurrentWorkspace == "" || u.Scope.ClientID == "" {
			return nil, authFail(errors.New("invalid reconnection token: missing workspace or client id"))
		}
		if ws != "" && ws != u.Scope.CurrentWorkspace {
			return nil, authFail(fmt.Errorf("workspace mismatch: %s != %s", ws, u.Scope.CurrentWorkspace))
		}
		if u.Scope.ClientID != h.ClientID {
			return nil, authFail(errors.New("Client id mismatch, disconnecting"))
		}
		ws = u.Scope.CurrentWorkspace
		// A reconnection token continues its connection: the connection
		// keeps the chain of the token it first authenticated with (so
		// that revoking that token still reaches it) but does not add the
		// reconnection token itself, or the chain would grow with every
		// reconnection.
		u.TokenID = ""
		user = u
		reconnecting = true
	case h.Token != "":
		u, err := s.parseToken(h.Token)
		if err != nil {
			return nil, authFail(err)
		}
		if u.Specialized() {
			return nil, authFail(errors.New("specialized tokens cannot be used to connect"))
		}
		if u.Scope.ClientID != "" && u.Scope.ClientID != h.ClientID {
			return nil, authFail(fmt.Errorf("the token is for client %s, not %s", u.Scope.ClientID, h.ClientID))
		}
		wid := u.Scope.CurrentWorkspace
		if wid != "" && ws != "" && wid != ws {
			return nil, authFail(fmt.Errorf("workspace mismatch: the token is for %s, not %s", wid, ws))
		}
		if ws == "" {
			ws = wid
		}
		// Upstream redirects clients away from the read-only public
		// workspace; root (which may write there) is let in, so that
		// built-in services can live in public.
		if ws == "public" && wid != "public" && !u.IsRoot() {
			ws = wid
		}
		user = u
	default:
		user = s.issuer.NewAnonymous()
	}
	if ws == "" {
		ws = user.Workspace()
	}
	if strings.ContainsAny(ws, "/:@*") {
		// "*" is the server's own workspace: a client there (say with a
		// token whose current workspace is "*") would be stamped as the
		// server and could speak for any workspace.
		return nil, refuse(closeGoingAway, "Failed to establish connection: invalid workspace %q", ws)
	}
	_, loaded := s.work.get(ws)
	if err := s.work.ensure(ws, user); err != nil {
		return nil, refuse(closeGoingAway, "Failed to establish connection: %v", err)
	}
	if !loaded {
		s.workspaceLoaded(ws) // apps: daemon apps (apphooks.go)
	}
	perm := s.permission(user, ws)
	if perm < auth.Read {
		return nil, refuse(closeGoingAway, "Failed to establish connection: Permission denied for workspace: %s", ws)
	}
	user = user.Clone()
	user.Scope.CurrentWorkspace = ws
	user.CurrentWorkspace = ws
	user.Scope.ClientID = h.ClientID
	// The user stamped on every message carries the effective permission on
	// the connection's workspace (ownership included), so that services
	// deciding from the stamped user (workers, see worker/hyphaworker) see
	// what the server sees. Tokens minted from the connection keep the
	// token's own grants.
	stamped := user.Clone()
	if perm > stamped.Scope.Workspaces[ws] {
		if stamped.Scope.Workspaces == nil {
			stamped.Scope.Workspaces = map[string]auth.Permission{}
		}
		stamped.Scope.Workspaces[ws] = perm
	}
	id := ws + "/" + h.ClientID
	if !reconnecting {
		if old := s.router.get(id); old != nil {
			if s.alive(ctx, old) {
				return nil, refuse(closeGoingAway, "Failed to establish connection: Client already exists and is active: %s", id)
			}
			s.closeLater(old, "Stale connection for "+id+" replaced")
		}
	}
	c := &conn{
		id: id, ws: ws, cid: h.ClientID, user: user, userRaw: wire.MustRaw(stamped.ToMap()),
		readOnly: perm == auth.Read, closed: make(chan struct{}), subs: map[string]bool{},
		badLog: lograte.New(malformedLogEvery), clientLog: lograte.New(clientLogEvery),
	}
	c.lastActive.Store(time.Now().UnixNano())
	c.lastCall.Store(c.lastActive.Load())
	return c, nil
}

// alive pings a client's built-in service through the manager.
func (s *Server) alive(ctx context.Context, c *conn) bool {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := s.callPeer(pctx, c.id, "services.built-in.ping", "ping")
	return err == nil && v == "pong"
}

func (s *Server) reconnectionToken(c *conn) (string, error) {
	u := c.user.Clone()
	u.Scope.CurrentWorkspace = c.ws
	u.Scope.ClientID = c.cid
	u.Chain = c.user.Lineage()
	return s.issuer.Generate(u, s.cfg.ReconnectionTokenLife)
}

func (s *Server) readLoop(c *conn) {
	filler, _ := c.t.(*wsTransport)
	if filler != nil {
		// Frames routed to websocket peers are queued, and written once
		// every message already read has been routed: one write system
		// call per peer per batch, made here, instead of a flusher
		// goroutine started and woken per frame (conn.deliverFrom).
		// The flush comes before every read system call, so also when a
		// read waits for the rest of a long message.
		c.batch = &c.own
		filler.c.BeforeRead(c.flushBatch)
		defer c.flushBatch()
	}
	for {
		if filler != nil {
			// An idle connection waits here, near the top of its
			// goroutine: parked this shallow, the runtime shrinks the
			// goroutine's stack to 4 KB (it shrinks a stack only while
			// under a quarter of it is in use), half of what waiting
			// inside Read would keep per idle connection.
			if err := filler.Fill(); err != nil {
				return
			}
		}
		if !s.readOne(c) {
			return
		}
	}
}

// readOne reads and handles one message of c; false when c has ended.
func (s *Server) readOne(c *conn) bool {
	// Not bound to a context: closing the connection ends the read.
	typ, data, err := c.t.Read(context.Background())
	if err != nil {
		return false
	}
	if typ == 0 {
		return true // a control frame (wsconn.Conn.ReturnAfterControl)
	}
	if typ == rpc.Text {
		c.lastActive.Store(time.Now().UnixNano())
		s.handleText(c, data)
		return true
	}
	if reason := s.onBinary(c, data); reason != "" {
		c.close(closePolicy, reason)
		return false
	}
	return true
}

// onBinary accounts for and routes one binary message of c. A reason is
// returned when c must be closed for it (the caller closes: on a poller
// loop, which never waits, a goroutine does).
func (s *Server) onBinary(c *conn, data []byte) (closeReason string) {
	now := time.Now()
	c.lastActive.Store(now.UnixNano())
	if c.last.IsZero() {
		c.tokens = s.cfg.MsgBurstLimit
	} else {
		c.tokens = min(s.cfg.MsgBurstLimit, c.tokens+now.Sub(c.last).Seconds()*s.cfg.MsgRateLimit)
	}
	c.last = now
	if c.tokens < 1 {
		return "Rate limit exceeded: too many messages per second"
	}
	c.tokens--
	if err := s.router.route(c, data); err != nil {
		if errors.Is(err, errMalformedFrame) {
			return s.malformedFrame(c, err)
		}
		s.log.Debug("dropped a frame", "from", c.id, "err", err)
	}
	return ""
}

// malformedLogEvery is how often a connection's malformed frames are logged.
const malformedLogEvery = 10 * time.Second

// malformedFrame accounts for a frame of c that could not be routed or
// decoded: one warning per malformedLogEvery per connection (with the count
// of those not logged), and the connection must be closed once it sent
// MaxMalformedFrames of them (a correct client never sends one): then the
// reason to close it with is returned.
func (s *Server) malformedFrame(c *conn, err error) string {
	c.malformed++
	if ok, suppressed := c.badLog.Allow(); ok {
		s.log.Warn("dropping malformed frames", "from", c.id, "err", err, "suppressed", suppressed, "total", c.malformed)
	}
	if limit := s.cfg.MaxMalformedFrames; limit > 0 && c.malformed >= limit {
		s.log.Warn("closing a connection that sent too many malformed frames", "id", c.id,
			"total", c.malformed, "suppressed", c.badLog.Flush())
		return fmt.Sprintf("Too many malformed frames (limit %d, max malformed frames)", limit)
	}
	return ""
}

func (s *Server) handleText(c *conn, data []byte) {
	if len(data) > 1000 {
		return
	}
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return
	}
	switch m["type"] {
	case "ping":
		c.sendText([]byte(`{"type":"pong"}`))
	case "refresh_token":
		tok, err := s.reconnectionToken(c)
		if err != nil {
			return
		}
		b, _ := json.Marshal(map[string]string{"type": "reconnection_token", "reconnection_token": tok})
		c.sendText(b)
	}
}

// disconnected cleans up after a connection ends: unless a newer connection
// took over the client id, its services go and the workspace hears of it.
func (s *Server) disconnected(c *conn) {
	c.close(closeGoingAway, "Connection closed")
	if c.badLog != nil {
		if n := c.badLog.Flush(); n > 0 {
			s.log.Warn("malformed frames not logged before the client left", "id", c.id, "suppressed", n, "total", c.malformed)
		}
	}
	if !s.router.remove(c) {
		return
	}
	s.registry.RemoveClient(c.ws, c.cid)
	s.manager.RejectTarget(c.id, fmt.Errorf("%w: %s", rpc.ErrClientDisconnect, c.id))
	s.router.event(c.ws, "client_disconnected", map[string]any{"id": c.cid, "workspace": c.ws})
	s.work.maybeUnload(c.ws, s.router)
	if _, loaded := s.work.get(c.ws); !loaded {
		s.extra.forget(c.ws)
	}
	s.log.Debug("client disconnected", "id", c.id)
}

// idleSweep closes connections that sent nothing for IdleTimeout.
func (s *Server) idleSweep() {
	defer s.wg.Done()
	every := min(s.cfg.IdleTimeout/4, 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			for _, c := range s.router.all() {
				if c.t == nil {
					continue
				}
				if w := c.writing.Load(); w != 0 && now.Sub(time.Unix(0, w)) > writeTimeout {
					s.log.Warn("closing a connection that stopped reading", "id", c.id)
					c.t.CloseWith(closeGoingAway, "Write timeout")
					continue
				}
				if now.Sub(time.Unix(0, c.lastActive.Load())) > s.cfg.IdleTimeout {
					c.close(closeGoingAway, fmt.Sprintf("Idle timeout (%ds)", int(s.cfg.IdleTimeout.Seconds())))
				}
			}
		}
	}
}
