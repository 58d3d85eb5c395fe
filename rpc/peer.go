package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/internal/lograte"
	"github.com/hypha-go/hypha/internal/wire"
)

// Sentinel errors callers can test with errors.Is.
var (
	ErrTimeout          = errors.New("method call timed out")
	ErrClosed           = errors.New("connection is closed")
	ErrClientDisconnect = errors.New("client disconnected")
	ErrNotFound         = errors.New("not found")
	ErrPermission       = errors.New("permission denied")
	// ErrForeignCallable refuses a function received from one peer that
	// belongs to another: calling it would act for the sender under this
	// peer's identity (a confused deputy). See Config.AllowForeignCallables.
	ErrForeignCallable = errors.New("foreign callable refused")
	// ErrLimit is wrapped by the errors of a configured limit being reached.
	ErrLimit = errors.New("limit exceeded")
	// ErrArguments is wrapped by the error a service function answers when
	// a call's arguments do not fit its parameters (missing, unknown, given
	// twice, too many, or not convertible). Its text starts the message, as
	// Python's TypeError does, so that HTTP front ends (this server's and
	// upstream's) answer such a call with 400 Bad Request.
	ErrArguments = errors.New("TypeError")
)

const (
	defaultMethodTimeout = 30 * time.Second
	// chunkSize is the slice size used for messages sent through message_cache;
	// frames above chunkSize+1024 bytes are chunked, as the reference clients do.
	chunkSize         = 256 * 1024
	chunkThreshold    = chunkSize + 1024
	chunkConcurrency  = 8
	sessionIdleExpiry = 10 * time.Minute
)

// peerConfig configures a peer, the RPC engine shared by clients and the
// embedded server's manager and HTTP callers (which build it through
// internal/rpcengine, see engine.go).
type peerConfig struct {
	ClientID      string
	Workspace     string // "*" for the server's manager
	ServerBaseURL string // written into every encoded function as _rserver
	// ManagerID is the server manager's client id; the manager may call
	// protected services of any workspace.
	ManagerID string
	// Send writes one frame to the transport. It must be safe for concurrent use.
	Send           func(ctx context.Context, frame []byte) error
	MethodTimeout  time.Duration
	Logger         *slog.Logger
	DefaultContext map[string]any
	// AllowForeignCallables accepts functions whose owner (_rtarget) is not
	// the peer that sent them: see Config.AllowForeignCallables.
	AllowForeignCallables bool
	// Chunks bounds the chunked messages reassembled for other peers.
	Chunks ChunkLimits
}

// peer is one RPC endpoint: an object store of services and call sessions
// driven by incoming frames (HandleFrame) and producing frames through Send.
type peer struct {
	cfg    peerConfig
	log    *slog.Logger
	closed chan struct{}
	once   sync.Once
	// baseCtx is cancelled by Close; handler contexts derive from it.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu        sync.Mutex
	workspace string
	managerID string
	services  map[string]*localService
	sessions  map[string]*session
	cache     map[string]*chunkBuffer
	chunks    ChunkLimits
	// cacheUse is each sender's share of the cache, cacheBytes the sum.
	cacheUse   map[string]*chunkUse
	cacheBytes int64
	// badFrames limits the warnings about frames that cannot be decoded;
	// refusals and settleRefusals those about foreign callables and refused
	// settles (once a minute each), so a hostile peer cannot flood the log.
	badFrames, refusals, settleRefusals *lograte.Limiter
	handlers                            map[string][]*eventHandler
	users                               map[string]any
	wg                                  sync.WaitGroup
}

type session struct {
	id       string
	target   string // absolute id of the peer this session talks to
	funcs    map[string]*localFunc
	children []string
	gens     []*generator // generators served from this session (released with it)
	call     *pendingCall
	touched  time.Time
}

type pendingCall struct {
	done    chan callResult
	timer   *time.Timer
	timeout time.Duration
	desc    string
}

type callResult struct {
	value any
	err   error
}

type eventHandler struct{ fn func(map[string]any) }

// newPeer creates a peer: Connect builds one per client, and the server
// builds its own through rpcengine.New (engine.go).
func newPeer(cfg peerConfig) *peer {
	if cfg.MethodTimeout <= 0 {
		cfg.MethodTimeout = defaultMethodTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &peer{
		cfg:       cfg,
		log:       cfg.Logger,
		closed:    make(chan struct{}),
		workspace: cfg.Workspace,
		managerID: cfg.ManagerID,
		services:  map[string]*localService{},
		sessions:  map[string]*session{},
		cache:     map[string]*chunkBuffer{},
		chunks:    cfg.Chunks.withDefaults(),
		cacheUse:  map[string]*chunkUse{},
		badFrames: lograte.New(badFrameLogEvery),
		refusals:  lograte.New(time.Minute), settleRefusals: lograte.New(time.Minute),
		handlers: map[string][]*eventHandler{},
		users:    map[string]any{},
	}
	p.baseCtx, p.cancelBase = context.WithCancel(context.Background())
	p.addBuiltin()
	p.wg.Add(1)
	go p.gcLoop()
	return p
}

// ID returns "<workspace>/<client_id>".
func (p *peer) ID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workspace + "/" + p.cfg.ClientID
}

func (p *peer) ws() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workspace
}

// setIdentity updates the workspace and manager id (after a (re)connection).
func (p *peer) setIdentity(ws, managerID string) {
	p.mu.Lock()
	p.workspace = ws
	p.managerID = managerID
	p.mu.Unlock()
}

// Close rejects every pending call with ErrClosed and stops background work.
func (p *peer) Close() {
	p.once.Do(func() {
		close(p.closed)
		p.cancelBase()
		p.mu.Lock()
		var pend []*pendingCall
		for id, s := range p.sessions {
			if s.call != nil {
				pend = append(pend, s.call)
			}
			releaseGens(s.gens)
			delete(p.sessions, id)
		}
		p.cache = map[string]*chunkBuffer{}
		p.cacheUse = map[string]*chunkUse{}
		p.cacheBytes = 0
		p.mu.Unlock()
		for _, c := range pend {
			c.finish(callResult{err: fmt.Errorf("%w: %s", ErrClosed, c.desc)})
		}
		p.wg.Wait()
	})
}

func (c *pendingCall) finish(r callResult) {
	if c.timer != nil {
		c.timer.Stop()
	}
	select {
	case c.done <- r:
	default:
	}
}

// RejectAll fails every pending call with err (used when the connection is
// lost for good).
func (p *peer) RejectAll(err error) {
	p.rejectWhere(func(*session) bool { return true }, err)
}

// RejectTarget fails pending calls to a peer that has gone away, drops
// the chunked messages it was sending (its share of the message cache) and
// releases the generators it was reading.
func (p *peer) RejectTarget(target string, err error) {
	p.mu.Lock()
	p.dropSenderLocked(target)
	for id, s := range p.sessions {
		if len(s.gens) > 0 && s.target == target {
			p.deleteSessionLocked(id)
		}
	}
	p.mu.Unlock()
	p.rejectWhere(func(s *session) bool { return s.target == target }, err)
}

func (p *peer) rejectWhere(match func(*session) bool, err error) {
	p.mu.Lock()
	var pend []*pendingCall
	for id, s := range p.sessions {
		if s.call != nil && match(s) {
			pend = append(pend, s.call)
			p.deleteSessionLocked(id)
		}
	}
	p.mu.Unlock()
	for _, c := range pend {
		c.finish(callResult{err: err})
	}
}

// newSession creates a session nested under parent (if it still exists).
func (p *peer) newSessionLocked(parent, target string) *session {
	id := idgen.New()
	if parent != "" {
		if ps, ok := p.sessions[parent]; ok {
			id = parent + "." + id
			ps.children = append(ps.children, id)
		}
	}
	s := &session{id: id, target: target, touched: time.Now()}
	p.sessions[id] = s
	return s
}

func (p *peer) deleteSessionLocked(id string) {
	s, ok := p.sessions[id]
	if !ok {
		return
	}
	delete(p.sessions, id)
	releaseGens(s.gens)
	for _, c := range s.children {
		p.deleteSessionLocked(c)
	}
}

// gcLoop drops sessions that hold only callbacks (no pending call) and saw no
// activity for sessionIdleExpiry, so fire-and-forget callbacks cannot leak forever.
func (p *peer) gcLoop() {
	defer p.wg.Done()
	t := time.NewTicker(min(sessionIdleExpiry, p.chunks.Idle) / 2)
	defer t.Stop()
	for {
		select {
		case <-p.closed:
			return
		case now := <-t.C:
			p.mu.Lock()
			for id, s := range p.sessions {
				if s.call == nil && now.Sub(s.touched) > sessionIdleExpiry && !strings.Contains(id, ".") {
					p.deleteSessionLocked(id)
				}
			}
			for k, b := range p.cache {
				if now.Sub(b.touched) > p.chunks.Idle {
					p.dropCacheLocked(k, b)
				}
			}
			p.mu.Unlock()
		}
	}
}

// On registers a handler for events (messages whose type is not "method"),
// such as client_disconnected or service_added. It returns a function that
// removes the handler. Handlers run on their own goroutine.
func (p *peer) On(eventType string, fn func(data map[string]any)) (off func()) {
	h := &eventHandler{fn: fn}
	p.mu.Lock()
	p.handlers[eventType] = append(p.handlers[eventType], h)
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		hs := p.handlers[eventType]
		for i, x := range hs {
			if x == h {
				p.handlers[eventType] = append(hs[:i:i], hs[i+1:]...)
				break
			}
		}
	}
}

func (p *peer) emitLocal(eventType string, msg map[string]any) {
	p.mu.Lock()
	hs := append([]*eventHandler(nil), p.handlers[eventType]...)
	p.mu.Unlock()
	for _, h := range hs {
		go h.fn(msg)
	}
}

// badFrameLogEvery is how often a peer logs frames it cannot decode: one
// line per interval, with the count of the ones not logged.
const badFrameLogEvery = 10 * time.Second

// HandleFrame processes one binary frame from the transport. It decodes on
// the caller's goroutine and never runs user code there. Frames that cannot
// be decoded are dropped and logged at most once per badFrameLogEvery.
func (p *peer) HandleFrame(frame []byte) {
	if err := p.Receive(frame); err != nil {
		p.badFrames.Warn(p.log, "dropping undecodable frame", "err", err, "bytes", len(frame))
	}
}

// Receive is HandleFrame for callers that account for bad frames themselves
// (the server counts them per connection): it logs nothing and returns the
// decoding error, which wraps wire.ErrMalformed.
func (p *peer) Receive(frame []byte) error {
	main, extra, user, err := wire.DecodeFrameRawUser(frame)
	if err != nil {
		return err
	}
	if user != nil {
		main["user"] = p.decodeUser(user)
	}
	p.handleMessage(main, extra, nil)
	return nil
}

// maxCachedUsers bounds the decoded-user cache.
const maxCachedUsers = 256

// decodeUser decodes the server-stamped user of a message. Each client's
// messages carry identical user bytes, so decoded users are cached by their
// bytes; the cached maps are shared and must be treated as read-only.
func (p *peer) decodeUser(raw []byte) any {
	p.mu.Lock()
	u, ok := p.users[string(raw)]
	p.mu.Unlock()
	if ok {
		return u
	}
	v, err := wire.Decode(raw)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	if len(p.users) >= maxCachedUsers {
		clear(p.users)
	}
	p.users[string(raw)] = v
	p.mu.Unlock()
	return v
}

// handleMessage dispatches a decoded message. override, when set, replaces the
// trusted fields (used for reassembled chunked messages).
func (p *peer) handleMessage(main, extra map[string]any, override map[string]any) {
	for k, v := range override {
		switch k {
		case "from", "to", "ws", "user":
			main[k] = v
		}
	}
	typ, _ := main["type"].(string)
	if typ == "method" {
		// Results, errors and heartbeats of our own calls are the most
		// common messages; they need no context.
		method, _ := main["method"].(string)
		from, _ := main["from"].(string)
		if isSettle(method) {
			args, _ := extra["args"].([]any)
			ws, _ := splitPeer(from)
			if handled, err := p.settle(method, from, args, &decState{from: from, remoteWS: ws}); handled {
				if err != nil {
					p.settleRefusals.Warn(p.log, "refused to settle call", "err", err)
				}
				return
			}
		}
	}
	ctx := make(map[string]any, len(main)+len(p.cfg.DefaultContext))
	for k, v := range p.cfg.DefaultContext {
		ctx[k] = v
	}
	for k, v := range main {
		ctx[k] = v
	}
	msg := main
	for k, v := range extra {
		switch k {
		case "from", "to", "ws", "user":
			// The server stamps these into main and forwards the extra
			// segment untouched: a sender's own values there are ignored.
			continue
		}
		msg[k] = v
	}
	if typ != "method" {
		if from, sentByPeer := msg["from"].(string); sentByPeer {
			// Events come only from this peer's workspace or from the
			// server ("*"); a server that forwards others is not trusted
			// for them.
			if fws, _ := splitPeer(from); fws != "*" && fws != p.ws() {
				p.log.Debug("dropped an event from another workspace", "type", typ, "from", from)
				return
			}
		}
		if typ != "" {
			// Only the server announces departures: its events carry no
			// "from", which the router stamps on every client's frame.
			_, sentByPeer := msg["from"]
			if data, ok := msg["data"].(map[string]any); ok && typ == "client_disconnected" && !sentByPeer {
				p.onClientDisconnected(data)
			}
			p.emitLocal(typ, msg)
		}
		return
	}
	p.handleMethod(msg, ctx)
}

// isSettle reports whether a method path ends in .resolve, .reject or .heartbeat.
func isSettle(method string) bool {
	if strings.HasPrefix(method, "services.") {
		return false // a service may have functions called resolve, reject or heartbeat
	}
	return strings.HasSuffix(method, ".resolve") || strings.HasSuffix(method, ".reject") || strings.HasSuffix(method, ".heartbeat")
}

func (p *peer) onClientDisconnected(data map[string]any) {
	id, _ := data["id"].(string)
	if id == "" {
		return
	}
	if !strings.Contains(id, "/") {
		ws, _ := data["workspace"].(string)
		id = ws + "/" + id
	}
	p.RejectTarget(id, fmt.Errorf("%w: %s", ErrClientDisconnect, id))
}

// sendMessage encodes and sends main+extra, chunking through the target's
// message_cache when the frame is large.
func (p *peer) sendMessage(ctx context.Context, main, extra map[string]any, remoteParent string) error {
	var frame []byte
	var err error
	if extra != nil {
		frame, err = wire.Encode(main, extra)
	} else {
		frame, err = wire.Encode(main)
	}
	if err != nil {
		return err
	}
	if len(frame) > chunkThreshold {
		if m := asString(main["method"]); !strings.HasPrefix(m, "services.built-in.message_cache.") {
			return p.sendChunked(ctx, asString(main["to"]), frame, remoteParent)
		}
	}
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	return p.cfg.Send(ctx, frame)
}
