package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hypha-go/hypha/internal/batchconn"
)

// MessageType tells text frames (JSON control messages) from binary frames
// (RPC messages).
type MessageType int

const (
	Text   MessageType = 1
	Binary MessageType = 2
)

// Conn is one transport connection to a server. The websocket transport is
// the default; the embedded server offers an in-memory one.
type Conn interface {
	Read(ctx context.Context) (MessageType, []byte, error)
	// Write must be safe for concurrent use.
	Write(ctx context.Context, typ MessageType, data []byte) error
	Close(reason string) error
}

// Dialer opens a new Conn (used for the first connection and every reconnection).
type Dialer func(ctx context.Context) (Conn, error)

// CloseError is a close frame received from the server.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("connection closed by server (%d): %s", e.Code, e.Reason)
}

// WebsocketURL normalises a server URL to its /ws endpoint: http(s)://host →
// ws(s)://host/ws; ws(s) URLs are kept.
func WebsocketURL(server string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil {
		return "", fmt.Errorf("server url %q: %w", server, err)
	}
	switch u.Scheme {
	case "ws", "wss":
		return u.String(), nil
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("server url %q: scheme must be http, https, ws or wss", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/ws"
	return u.String(), nil
}

// WebsocketDialer dials the server's /ws endpoint, verifying a wss
// server's certificate against the system roots.
func WebsocketDialer(serverURL string, readLimit int64) Dialer {
	return websocketDialer(serverURL, readLimit, batchingClient)
}

// tlsClient is batchingClient with its own TLS settings.
func tlsClient(cfg *tls.Config) *http.Client {
	tr := batchingClient.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}
}

func websocketDialer(serverURL string, readLimit int64, client *http.Client) Dialer {
	return func(ctx context.Context) (Conn, error) {
		u, err := WebsocketURL(serverURL)
		if err != nil {
			return nil, err
		}
		c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled,
			HTTPClient: client})
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", u, err)
		}
		c.SetReadLimit(readLimit)
		return &wsConn{c: c}, nil
	}
}

// batchingClient dials connections whose writes are batched (see
// internal/batchconn): messages sent while a write is in progress share one
// system call.
var batchingClient = &http.Client{Transport: &http.Transport{
	Proxy:               http.ProxyFromEnvironment,
	DialContext:         batchconn.Dialer(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}),
	ForceAttemptHTTP2:   false,
	TLSHandshakeTimeout: 10 * time.Second,
}}

type wsConn struct {
	c *websocket.Conn
	// wmu serialises writes before the library's own channel-based lock:
	// with many concurrent callers a sync.Mutex is much cheaper.
	wmu sync.Mutex
}

func (w *wsConn) Read(ctx context.Context) (MessageType, []byte, error) {
	t, b, err := w.c.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return 0, nil, &CloseError{Code: int(ce.Code), Reason: ce.Reason}
		}
		return 0, nil, err
	}
	return MessageType(t), b, nil
}

// Write ignores ctx once the write has started: the websocket library closes
// the whole connection when a write's context ends, and a caller giving up on
// one call must not take the connection down with it.
func (w *wsConn) Write(ctx context.Context, typ MessageType, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.c.Write(context.Background(), websocket.MessageType(typ), data)
}

func (w *wsConn) Close(reason string) error {
	return w.c.Close(websocket.StatusNormalClosure, reason)
}
