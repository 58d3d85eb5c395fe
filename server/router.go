package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hypha-go/hypha/internal/batchconn"
	"github.com/hypha-go/hypha/internal/lograte"
	"github.com/hypha-go/hypha/internal/netpoll"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/internal/wsconn"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// writeTimeout bounds one delivery to a slow client.
const writeTimeout = 30 * time.Second

// conn is one connected peer as the router sees it.
type conn struct {
	id, ws, cid string
	user        *auth.UserInfo
	userRaw     wire.Raw // the user map, encoded once, stamped on every frame
	readOnly    bool
	t           transport // nil for the manager
	deliverFn   func(frame []byte) error
	gen         uint64
	lastActive  atomic.Int64
	// lastCall is when the peer last received an RPC call (unix ns; set at
	// connection): the activity behind stop_after_inactive (apphooks.go).
	lastCall atomic.Int64
	// writing is when the current write started (unix ns), 0 when idle; the
	// sweeper closes connections whose writes hang.
	writing   atomic.Int64
	closed    chan struct{}
	closeOnce sync.Once

	subsMu sync.Mutex
	subs   map[string]bool

	// malformed counts the frames of this client the server could not
	// route or decode; badLog limits their warnings. Both belong to the
	// connection's read loop (badLog is nil for the server's own peers).
	malformed int
	badLog    *lograte.Limiter
	// clientLog limits the lines the client writes to the server's log
	// through the manager's log function (nil: the server's own peers).
	clientLog *lograte.Limiter

	// batch, when not nil, collects the websocket peers this connection's
	// reader queued frames for without writing them (deliverFrom): its own
	// list (own) while a goroutine reads it, flushed before each read
	// system call (readLoop), or its poller loop's list while the loop
	// reads it, flushed once the loop has handled every ready socket
	// (polled.go). onLoop says which; stalled holds frames for peers that
	// could not take them at once (deliverFrom), which the loop may not
	// wait for: a goroutine delivers them (polled.go). All belong to
	// whoever reads the connection.
	batch   *peerBatch
	own     peerBatch
	onLoop  bool
	stalled []stalledFrame

	// fd is set when a poller loop reads the connection (polled.go).
	fd     *netpoll.FD
	srv    *Server
	ended  atomic.Bool // disconnected has run (polled.go)
	tokens float64     // the rate limit's bucket (onBinary)
	last   time.Time
}

// stalledFrame is a frame a poller loop could not queue for dst without
// waiting.
type stalledFrame struct {
	dst   *conn
	frame []byte
}

// peerBatch lists the websocket peers that have frames queued and not
// written (see conn.batch).
type peerBatch struct {
	list []*wsconn.Conn
}

// deliverFrom delivers a frame routed from src to c: queued for src's
// reader to flush when src batches, otherwise written as usual.
func (c *conn) deliverFrom(src *conn, frame []byte) error {
	if src.batch == nil || c.deliverFn != nil {
		return c.deliver(frame)
	}
	ws, ok := c.t.(*wsTransport)
	if !ok {
		if src.onLoop {
			// A poller loop never waits: an in-process peer's pipe takes
			// the frame only while it has room, and an HTTP stream's write
			// waits for its client, who may have stopped reading. A
			// goroutine delivers what cannot go at once (polled.go).
			if p, isPipe := c.t.(*pipeEnd); isPipe {
				if sent, err := p.tryWrite(rpc.Binary, frame); sent || err != nil {
					return err
				}
			}
			src.stalled = append(src.stalled, stalledFrame{dst: c, frame: frame})
			return nil
		}
		return c.deliver(frame)
	}
	mustFlush, err := ws.c.WriteDeferred(byte(rpc.Binary), frame)
	b := src.batch
	switch {
	case errors.Is(err, batchconn.ErrWouldWait):
		if src.onLoop {
			// A poller loop never waits: a goroutine delivers it, before
			// anything else src sends (polled.go).
			src.stalled = append(src.stalled, stalledFrame{dst: c, frame: frame})
			src.srv.stalledFrames.Add(1)
			return nil
		}
		// c's queue is full: write what src's batch holds for others
		// first, so that they do not wait on c, then wait as Write does.
		b.flush()
		return c.deliver(frame)
	case err != nil:
		return err
	case mustFlush && (len(b.list) == 0 || b.list[len(b.list)-1] != ws.c):
		// Only a repeat of the last peer is skipped: a broadcast to many
		// peers stays linear, and a peer listed twice costs a Flush that
		// finds nothing left to write.
		b.list = append(b.list, ws.c)
	}
	return nil
}

// maxKeptBatch bounds the batch list kept between batches.
const maxKeptBatch = 64

// flush writes the frames queued for the listed peers (see deliverFrom).
func (b *peerBatch) flush() {
	for i, w := range b.list {
		w.Flush()
		b.list[i] = nil
	}
	if cap(b.list) > maxKeptBatch {
		b.list = nil // after a broadcast to many peers
	} else {
		b.list = b.list[:0]
	}
}

// flushBatch writes what c's reading goroutine queued.
func (c *conn) flushBatch() { c.own.flush() }

func (c *conn) subscribed(typ string) bool {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	return c.subs[typ]
}

func (c *conn) deliver(frame []byte) error {
	if c.deliverFn != nil {
		return c.deliverFn(frame)
	}
	return c.write(rpc.Binary, frame)
}

// write sends one frame. It is not bound by a context (the websocket library
// would set a timer per write); the idle sweeper closes stuck writers instead.
func (c *conn) write(typ rpc.MessageType, frame []byte) error {
	c.writing.Store(time.Now().UnixNano())
	err := c.t.Write(context.Background(), typ, frame)
	c.writing.Store(0)
	return err
}

func (c *conn) sendText(msg []byte) {
	if c.t == nil {
		return
	}
	_ = c.write(rpc.Text, msg)
}

// close sends an error frame, then closes with code and reason.
func (c *conn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		if c.t != nil {
			// Bounded, unlike c.write: the peer being closed may have stopped
			// reading, and closing is rare enough to afford a timer.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = c.t.Write(ctx, rpc.Text, errorFrame(reason))
			cancel()
			c.t.CloseWith(code, reason)
		}
		close(c.closed)
	})
}

type router struct {
	s     *Server
	mu    sync.RWMutex
	conns map[string]*conn
	byWS  map[string]map[*conn]struct{}
	gen   atomic.Uint64
}

func newRouter(s *Server) *router {
	return &router{s: s, conns: map[string]*conn{}, byWS: map[string]map[*conn]struct{}{}}
}

func (r *router) get(id string) *conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.conns[id]
}

// add registers c, superseding an older connection with the same id.
func (r *router) add(c *conn) (old *conn) {
	c.gen = r.gen.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.conns[c.id]
	if old != nil {
		delete(r.byWS[old.ws], old)
	}
	r.conns[c.id] = c
	m := r.byWS[c.ws]
	if m == nil {
		m = map[*conn]struct{}{}
		r.byWS[c.ws] = m
	}
	m[c] = struct{}{}
	return old
}

// remove forgets c unless a newer connection took its id; it reports whether
// c was the current one (then its services must be cleaned up).
func (r *router) remove(c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byWS[c.ws], c)
	if len(r.byWS[c.ws]) == 0 {
		delete(r.byWS, c.ws)
	}
	if r.conns[c.id] != c {
		return false
	}
	delete(r.conns, c.id)
	return true
}

func (r *router) inWorkspace(ws string) []*conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*conn, 0, len(r.byWS[ws]))
	for c := range r.byWS[ws] {
		out = append(out, c)
	}
	return out
}

func (r *router) all() []*conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c)
	}
	return out
}

// closeAll closes every connection, many at a time: each close may wait
// seconds for an unresponsive peer's close handshake.
func (r *router) closeAll(code int, reason string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range r.all() {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.close(code, reason)
		}()
	}
	wg.Wait()
}

var errNoTarget = errors.New("message has no target")

// errMalformedFrame is wrapped by route's errors for frames that cannot be
// routed or that their server-side recipient cannot decode.
var errMalformedFrame = errors.New("malformed frame")

// route stamps the trusted fields of a frame from src and delivers it. The
// main segment is scanned, not decoded, and the payload is never touched.
func (r *router) route(src *conn, frame []byte) error {
	m, err := wire.ScanMain(frame)
	if err != nil {
		return fmt.Errorf("%w: %w", errMalformedFrame, err)
	}
	defer m.Release()
	to := m.To
	if to == "" {
		return fmt.Errorf("%w: %w", errMalformedFrame, errNoTarget)
	}
	var target string
	switch {
	case to == "*":
		if src.readOnly {
			return fmt.Errorf("%w: read-only connections may not broadcast", errReadOnlyBroadcast)
		}
		target = src.ws + "/*"
	case !strings.Contains(to, "/"):
		target = src.ws + "/" + to
	default:
		target = to
	}
	stampWS := src.ws
	tws, tcid, _ := strings.Cut(target, "/")
	if m.Type != "method" && src.ws != "*" && tws != src.ws {
		// Events (every frame that is not an RPC call) reach a client only
		// from its own workspace or from the server: a client of another
		// workspace could otherwise feed it forged notifications.
		return fmt.Errorf("%w: %s may not send event %q to workspace %s", errCrossWorkspaceEvent, src.id, m.Type, tws)
	}
	if stampWS == "*" {
		stampWS = tws
	} else if tcid == "*" {
		// However it is spelled ("*" or "<ws>/*"), a client's broadcast
		// reaches its own workspace only, and never from a read-only connection.
		if tws != src.ws {
			return fmt.Errorf("%w: cannot broadcast to workspace %s", errReadOnlyBroadcast, tws)
		}
		if src.readOnly {
			return fmt.Errorf("%w: read-only connections may not broadcast", errReadOnlyBroadcast)
		}
	}
	out := m.Restamp(frame, src.id, target, stampWS, src.userRaw)
	if tcid == "*" {
		for _, c := range r.inWorkspace(tws) {
			if c.subscribed(m.Type) {
				_ = c.deliverFrom(src, out)
			}
		}
		return nil
	}
	dst := r.get(target)
	if dst == nil {
		if m.Session != "" {
			r.rejectUnreachable(src, target, m.Session)
		}
		return nil
	}
	if m.Type == "method" {
		dst.lastCall.Store(time.Now().UnixNano()) // activity (apphooks.go)
	}
	if err := dst.deliverFrom(src, out); err != nil {
		if errors.Is(err, wire.ErrMalformed) {
			// A server-side peer (the manager) could not decode it.
			return fmt.Errorf("%w: %w", errMalformedFrame, err)
		}
		r.s.log.Debug("delivery failed", "to", target, "err", err)
		if m.Session != "" {
			r.rejectUnreachable(src, target, m.Session)
		}
	}
	return nil
}

var (
	errReadOnlyBroadcast   = errors.New("permission denied")
	errCrossWorkspaceEvent = errors.New("permission denied: events stay in their workspace")
)

// rejectUnreachable answers a call to a peer that is not connected with an
// immediate reject, so the caller does not wait for its timeout.
func (r *router) rejectUnreachable(src *conn, target, session string) {
	main := map[string]any{"type": "method", "from": target, "to": src.id, "method": session + ".reject"}
	extra := map[string]any{"args": []any{map[string]any{
		"_rtype": "error", "_rvalue": "Target peer " + target + " is not connected", "_rtrace": ""}}}
	frame, err := wire.Encode(main, extra)
	if err == nil {
		go func() { _ = src.deliver(frame) }()
	}
}

// event sends a server event to the subscribers of a workspace.
func (r *router) event(ws, typ string, data any) {
	r.s.notifyObservers(ws, typ, data) // event observers (extensions.go)
	frame, err := wire.Encode(map[string]any{"type": typ, "to": "*", "data": data})
	if err != nil {
		r.s.log.Error("encode event", "type", typ, "err", err)
		return
	}
	for _, c := range r.inWorkspace(ws) {
		if c.subscribed(typ) {
			_ = c.deliver(frame)
		}
	}
}
