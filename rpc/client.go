package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
)

// Config configures Connect.
type Config struct {
	// ServerURL is http(s)://host[:port] or ws(s)://host/ws.
	ServerURL string
	Workspace string
	Token     string
	// ClientID defaults to a random id.
	ClientID string
	// MethodTimeout bounds every call between heartbeats (default 30 s).
	MethodTimeout time.Duration
	Logger        *slog.Logger
	// NoReconnect disables automatic reconnection after a lost connection.
	NoReconnect bool
	// PingInterval is the text keep-alive interval (default 20 s).
	PingInterval time.Duration
	// MaxMessageSize bounds one incoming frame (default 16 MiB; larger
	// messages travel in chunks).
	MaxMessageSize int64
	// Transport chooses how the client reaches the server: "websocket"
	// (the default, also "") or "http", hypha-rpc's HTTP streaming
	// transport (GET /rpc streams the server's messages, each message to
	// the server is a POST /rpc; see README). Both reconnect the same way.
	Transport string
	// Dialer replaces the transport (the embedded server uses it for
	// in-process clients); Transport and the TLS options below do not
	// apply to it.
	Dialer Dialer
	// RootCAs verifies a wss (https) server's certificate against these
	// roots instead of the system's (a private CA, a self-signed server).
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any certificate from a wss server (the
	// CLI's --disable-ssl): the connection is encrypted but anyone on the
	// path can impersonate the server and read the token. Only for test
	// setups and trusted networks.
	InsecureSkipVerify bool
	// AllowForeignCallables lets this client call functions that a peer
	// sent but does not own (whose _rtarget is not the sender). By default
	// they are refused with ErrForeignCallable when they are decoded: a call
	// carrying one in its arguments or promise is rejected before the
	// handler runs, and a result carrying one fails the call; functions
	// forwarded by the server's manager are accepted, since the manager
	// checks them itself. A client that calls a function given by X under
	// its own identity must be sure the function is X's: set this only when
	// every peer that can reach this client is trusted not to aim its
	// identity at a third party.
	AllowForeignCallables bool
	// ChunkLimits bounds the chunked messages other peers send to this
	// client, per sending peer (zero fields take the defaults).
	ChunkLimits ChunkLimits
}

// ConnectionInfo is what the server said about this connection.
type ConnectionInfo struct {
	Workspace                 string
	ClientID                  string
	User                      UserInfo
	ManagerID                 string
	PublicBaseURL             string
	LocalBaseURL              string
	HyphaVersion              string
	ReconnectionTokenLifeTime float64
	Raw                       map[string]any
}

// Client is a connection to a Hypha server. It is safe for concurrent use.
type Client struct {
	cfg  Config
	peer *peer
	log  *slog.Logger

	mu          sync.Mutex
	conn        Conn
	info        ConnectionInfo
	reconnToken string
	manager     *RemoteService
	subscribed  map[string]bool
	ready       chan struct{} // closed while connected; replaced while reconnecting
	closing     bool
	err         error // why the client ended (set once, with closing)
	onReconnect []*func()

	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// closeIdle closes the connections of the HTTP transport's pool.
	closeIdle func()
}

// Connect opens a connection, performs the handshake, fetches the workspace
// manager and registers the built-in service.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = idgen.New()
	}
	if strings.Contains(cfg.ClientID, "/") {
		return nil, fmt.Errorf("rpc: client id %q must not contain '/'", cfg.ClientID)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 20 * time.Second
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 16 << 20
	}
	if cfg.MethodTimeout <= 0 {
		cfg.MethodTimeout = defaultMethodTimeout
	}
	connType := "websocket"
	var closeIdle func()
	if cfg.Dialer == nil {
		if cfg.ServerURL == "" {
			return nil, errors.New("rpc: ServerURL is empty")
		}
		var tlsCfg *tls.Config
		if cfg.RootCAs != nil || cfg.InsecureSkipVerify {
			tlsCfg = &tls.Config{RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in
		}
		switch cfg.Transport {
		case "", TransportWebsocket:
			if _, err := WebsocketURL(cfg.ServerURL); err != nil {
				return nil, err
			}
			client := batchingClient
			if tlsCfg != nil {
				client = tlsClient(tlsCfg)
			}
			cfg.Dialer = websocketDialer(cfg.ServerURL, cfg.MaxMessageSize, client)
		case TransportHTTP:
			endpoint, err := HTTPStreamURL(cfg.ServerURL)
			if err != nil {
				return nil, err
			}
			tr, closeAll := newHTTPTransport()
			tr.TLSClientConfig = tlsCfg
			cfg.Dialer = httpStreamDialer(endpoint, cfg.MaxMessageSize, tr)
			closeIdle = closeAll
			connType = "http_streaming"
		default:
			return nil, fmt.Errorf("rpc: unknown Transport %q (want %q or %q)", cfg.Transport, TransportWebsocket, TransportHTTP)
		}
	}
	c := &Client{cfg: cfg, log: cfg.Logger, subscribed: map[string]bool{}, done: make(chan struct{}), closeIdle: closeIdle}
	conn, info, err := c.handshake(ctx, "")
	if err != nil {
		if closeIdle != nil {
			closeIdle()
		}
		return nil, err
	}
	c.peer = newPeer(peerConfig{
		ClientID: cfg.ClientID, Workspace: info.Workspace, ServerBaseURL: info.PublicBaseURL,
		ManagerID: info.ManagerID, Send: c.send, MethodTimeout: cfg.MethodTimeout, Logger: cfg.Logger,
		DefaultContext:        map[string]any{"connection_type": connType},
		AllowForeignCallables: cfg.AllowForeignCallables,
		Chunks:                cfg.ChunkLimits,
	})
	c.conn, c.info = conn, info
	ready := make(chan struct{})
	close(ready)
	c.ready = ready
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go c.readLoop(runCtx, conn)
	go c.keepAlive(runCtx)
	if err := c.bootstrap(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) handshake(ctx context.Context, reconnToken string) (Conn, ConnectionInfo, error) {
	hctx, cancel := context.WithTimeout(ctx, c.cfg.MethodTimeout)
	defer cancel()
	conn, err := c.cfg.Dialer(hctx)
	if err != nil {
		return nil, ConnectionInfo{}, err
	}
	hello := map[string]any{"client_id": c.cfg.ClientID, "workspace": nilIfEmpty(c.cfg.Workspace),
		"token": nilIfEmpty(c.cfg.Token), "reconnection_token": nilIfEmpty(reconnToken)}
	b, _ := json.Marshal(hello)
	if err := conn.Write(hctx, Text, b); err != nil {
		conn.Close("handshake failed")
		return nil, ConnectionInfo{}, fmt.Errorf("rpc: send handshake: %w", err)
	}
	for {
		typ, data, err := conn.Read(hctx)
		if err != nil {
			conn.Close("handshake failed")
			return nil, ConnectionInfo{}, fmt.Errorf("rpc: handshake: %w", err)
		}
		if typ != Text {
			continue // buffered messages from before a reconnect
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			conn.Close("bad handshake")
			return nil, ConnectionInfo{}, fmt.Errorf("rpc: handshake reply is not JSON: %w", err)
		}
		switch m["type"] {
		case "connection_info":
		case "error":
			conn.Close("refused")
			return nil, ConnectionInfo{}, &RefusedError{Message: asString(m["message"])}
		default:
			conn.Close("unexpected message")
			return nil, ConnectionInfo{}, fmt.Errorf("rpc: unexpected handshake message type %v", m["type"])
		}
		info := ConnectionInfo{
			Workspace: asString(m["workspace"]), ClientID: asString(m["client_id"]), ManagerID: asString(m["manager_id"]),
			PublicBaseURL: asString(m["public_base_url"]), LocalBaseURL: asString(m["local_base_url"]),
			HyphaVersion: asString(m["hypha_version"]), Raw: m,
		}
		info.ReconnectionTokenLifeTime, _ = m["reconnection_token_life_time"].(float64)
		if u, ok := m["user"].(map[string]any); ok {
			info.User = userFromMap(normalizeJSON(u).(map[string]any))
		}
		if c.cfg.Workspace != "" && info.Workspace != c.cfg.Workspace {
			conn.Close("workspace mismatch")
			return nil, ConnectionInfo{}, fmt.Errorf("rpc: connected to workspace %q, asked for %q", info.Workspace, c.cfg.Workspace)
		}
		if info.ManagerID == "" {
			conn.Close("no manager")
			return nil, ConnectionInfo{}, errors.New("rpc: connection_info has no manager_id")
		}
		c.mu.Lock()
		c.reconnToken = asString(m["reconnection_token"])
		c.mu.Unlock()
		return conn, info, nil
	}
}

// normalizeJSON turns JSON numbers (float64) that are integral into int64 so
// values look the same whether they came as JSON or msgpack.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeJSON(e)
		}
	case float64:
		if x == float64(int64(x)) && x < 1<<53 && x > -(1<<53) {
			return int64(x)
		}
	}
	return v
}

// RefusedError is the server's refusal of a connection (an error message
// instead of connection_info).
type RefusedError struct{ Message string }

func (e *RefusedError) Error() string { return "rpc: server refused the connection: " + e.Message }

// bootstrap fetches the manager, registers every local service (built-in
// first) and restores event subscriptions.
func (c *Client) bootstrap(ctx context.Context) error {
	mgr, err := c.getManager(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.manager = mgr
	subs := make([]any, 0, len(c.subscribed)+1)
	subs = append(subs, "client_disconnected")
	for t := range c.subscribed {
		if t != "client_disconnected" {
			subs = append(subs, t)
		}
	}
	c.mu.Unlock()
	for _, info := range c.peer.ServiceInfos() {
		if _, err := mgr.Call(ctx, "register_service", info); err != nil {
			// A read-only token may not register anything, not even the
			// built-in service; such a client can still call others, as with
			// the reference clients, which only log this refusal.
			var re *RemoteError
			if info["type"] == "built-in" && errors.As(err, &re) && strings.Contains(re.Message, "Permission denied") {
				c.log.Info("the server refused the built-in service (read-only access)", "err", err)
				continue
			}
			return fmt.Errorf("rpc: register service %s: %w", info["id"], err)
		}
	}
	if mgr.Func("subscribe") != nil {
		if _, err := mgr.Call(ctx, "subscribe", subs); err != nil {
			return fmt.Errorf("rpc: subscribe: %w", err)
		}
	}
	return nil
}

func (c *Client) getManager(ctx context.Context) (*RemoteService, error) {
	c.mu.Lock()
	target := "*/" + c.info.ManagerID
	c.mu.Unlock()
	f := &RemoteFunc{peer: c.peer, target: target, method: "services.built-in.get_service", promise: "*"}
	v, err := f.Call(ctx, "default")
	if err != nil {
		return nil, fmt.Errorf("rpc: get workspace manager: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rpc: workspace manager is %T, not a service", v)
	}
	svc := newRemoteService(m)
	svc.ID = target + ":default"
	return svc, nil
}

func (c *Client) send(ctx context.Context, frame []byte) error {
	// A send waits for a reconnection at most one method timeout (the
	// connection timeout), whatever ctx says: a caller's timer only starts
	// once its request is sent. The timer is armed only when waiting.
	var giveUp *time.Timer
	defer func() {
		if giveUp != nil {
			giveUp.Stop()
		}
	}()
	wait := func() <-chan time.Time {
		if giveUp == nil {
			giveUp = time.NewTimer(c.cfg.MethodTimeout)
		}
		return giveUp.C
	}
	errReconnecting := func() error {
		return fmt.Errorf("%w: still reconnecting to the server after %s", ErrTimeout, c.cfg.MethodTimeout)
	}
	for {
		c.mu.Lock()
		conn, ready, closing := c.conn, c.ready, c.closing
		c.mu.Unlock()
		if closing {
			return ErrClosed
		}
		select {
		case <-ready:
		default:
			select {
			case <-ready:
			case <-wait():
				return errReconnecting()
			case <-ctx.Done():
				return ctx.Err()
			case <-c.done:
				return ErrClosed
			}
		}
		c.mu.Lock()
		same := c.conn == conn
		c.mu.Unlock()
		if !same {
			continue
		}
		err := conn.Write(ctx, Binary, frame)
		if err == nil || ctx.Err() != nil {
			return err
		}
		// The connection died under us: wait for the reconnection, if any.
		c.mu.Lock()
		changed := c.conn != conn || c.ready != ready
		noReconnect := c.cfg.NoReconnect || c.closing
		c.mu.Unlock()
		if noReconnect {
			return fmt.Errorf("%w: %v", ErrClosed, err)
		}
		if !changed {
			select {
			case <-time.After(50 * time.Millisecond):
			case <-wait():
				return errReconnecting()
			case <-ctx.Done():
				return ctx.Err()
			case <-c.done:
				return ErrClosed
			}
		}
	}
}

func (c *Client) readLoop(ctx context.Context, conn Conn) {
	defer c.wg.Done()
	for {
		// Reads are not bound to ctx (that costs a timer per frame); Close
		// closes the connection, which ends the read.
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing || ctx.Err() != nil {
				return
			}
			var refused *RefusedError
			if c.cfg.NoReconnect || errors.As(err, &refused) {
				c.log.Warn("connection lost", "err", err)
				c.shutdown(fmt.Errorf("%w: connection lost: %v", ErrClosed, err))
				return
			}
			c.log.Info("connection lost, reconnecting", "err", err)
			conn = c.reconnect(ctx)
			if conn == nil {
				return
			}
			continue
		}
		if typ == Binary {
			c.peer.HandleFrame(data)
			continue
		}
		c.handleText(data)
	}
}

func (c *Client) handleText(data []byte) {
	// Control messages are small; a refreshed reconnection token (a JWT
	// carrying the user's scopes) can exceed the 1000 characters the server
	// accepts from clients, so the client's bound is larger.
	if len(data) > 64<<10 {
		return
	}
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return
	}
	switch m["type"] {
	case "reconnection_token":
		if t := asString(m["reconnection_token"]); t != "" {
			c.mu.Lock()
			c.reconnToken = t
			c.mu.Unlock()
		}
	case "error":
		c.log.Warn("server error", "message", m["message"])
	}
}

// reconnect retries with exponential backoff until it has a new connection
// with every service re-registered, or the client is closed.
func (c *Client) reconnect(ctx context.Context) Conn {
	c.mu.Lock()
	c.ready = make(chan struct{})
	old := c.conn
	c.mu.Unlock()
	old.Close("reconnecting")
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			d := min(time.Second<<min(attempt-1, 6), 60*time.Second)
			d += time.Duration(rand.Int64N(int64(d/5)+1)) - d/10
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil
			}
		}
		c.mu.Lock()
		tok := c.reconnToken
		c.mu.Unlock()
		conn, info, err := c.handshake(ctx, tok)
		if err != nil {
			var refused *RefusedError
			if errors.As(err, &refused) {
				if tok == "" {
					// The server refuses our own credentials: retrying cannot
					// help, so give up as the reference clients do.
					c.log.Error("the server refused the reconnection; giving up", "err", err)
					c.shutdown(fmt.Errorf("%w: reconnection refused: %v", ErrClosed, err))
					return nil
				}
				// The reconnection token may have expired (e.g. the server
				// restarted with another secret): try the original credentials.
				c.mu.Lock()
				c.reconnToken = ""
				c.mu.Unlock()
				attempt = -1 // retry at once
			}
			c.log.Debug("reconnect attempt failed", "attempt", attempt, "err", err)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		c.mu.Lock()
		oldManager := c.info.ManagerID
		c.conn, c.info = conn, info
		ready := c.ready
		c.mu.Unlock()
		c.peer.setIdentity(info.Workspace, info.ManagerID)
		if oldManager != info.ManagerID {
			c.peer.RejectTarget("*/"+oldManager, fmt.Errorf("%w: the server restarted", ErrClosed))
		}
		close(ready)
		// The read loop must keep running while services are re-registered
		// (their replies arrive on it), so re-registration runs beside it. If
		// it fails the connection is dropped, which starts another attempt.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			bctx, cancel := context.WithTimeout(ctx, c.cfg.MethodTimeout)
			defer cancel()
			if err := c.bootstrap(bctx); err != nil {
				if ctx.Err() == nil {
					c.log.Warn("re-registration after reconnect failed", "err", err)
					conn.Close("re-registration failed")
				}
				return
			}
			c.log.Info("reconnected", "workspace", info.Workspace, "client_id", info.ClientID)
			c.mu.Lock()
			hooks := append([]*func(){}, c.onReconnect...)
			c.mu.Unlock()
			for _, h := range hooks {
				(*h)()
			}
		}()
		return conn
	}
}

func (c *Client) keepAlive(ctx context.Context) {
	defer c.wg.Done()
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	refresh := time.NewTimer(2 * time.Second)
	defer refresh.Stop()
	for {
		var msg []byte
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			msg = []byte(`{"type":"ping"}`)
		case <-refresh.C:
			msg = []byte(`{"type":"refresh_token"}`)
			refresh.Reset(time.Hour)
		}
		c.mu.Lock()
		conn, ready := c.conn, c.ready
		c.mu.Unlock()
		select {
		case <-ready:
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = conn.Write(wctx, Text, msg)
			cancel()
		default:
		}
	}
}

func (c *Client) shutdown(err error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.err = err
	conn := c.conn
	c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
	if conn != nil {
		conn.Close("client disconnect")
	}
	if c.peer != nil {
		c.peer.RejectAll(err)
	}
	close(c.done)
}

// errClosedByCaller is Err after Close or Disconnect.
var errClosedByCaller = fmt.Errorf("%w: closed by the client", ErrClosed)

// Close disconnects and releases every goroutine; pending calls fail with
// ErrClosed. It is the same as Disconnect without a context.
func (c *Client) Close() error {
	c.shutdown(errClosedByCaller)
	c.wg.Wait()
	if c.peer != nil {
		c.peer.Close()
	}
	if c.closeIdle != nil {
		c.closeIdle()
	}
	return nil
}

// Disconnect closes the connection (see Close).
func (c *Client) Disconnect(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when the client is closed for good: by Close, or by the
// connection's end when it cannot come back (NoReconnect, or the server
// refusing the reconnection). Err says which.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil until Done is closed; then it says why the client ended. It
// wraps ErrClosed in every case: after Close it is the only cause; after a
// lost connection it also names the transport's error, and after a refused
// reconnection the server's refusal (a *RefusedError's message).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Info describes the current connection.
func (c *Client) Info() ConnectionInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// OnReconnect runs fn after every successful reconnection (once the
// services are registered again). It returns a function that removes fn.
func (c *Client) OnReconnect(fn func()) (remove func()) {
	h := &fn
	c.mu.Lock()
	c.onReconnect = append(c.onReconnect, h)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.onReconnect = slices.DeleteFunc(c.onReconnect, func(x *func()) bool { return x == h })
	}
}

// Manager is the workspace manager service (`*/<manager_id>:default`).
func (c *Client) Manager() *RemoteService {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.manager
}
