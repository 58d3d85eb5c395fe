package rpc

// The HTTP streaming transport (Config.Transport "http"), as hypha-rpc's
// http_client: GET <server>/rpc is an endless response of frames (a 4-byte
// big-endian length, then one msgpack message) from the server; every
// message to the server is a POST to <server>/rpc. It is a Conn like the
// websocket one, so Client's handshake, reconnection and keep-alive work
// unchanged: the handshake's first (JSON) message becomes the GET's query
// and Authorization header, and the server's control messages (msgpack
// maps such as connection_info) are handed to the client as JSON text.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/wire"
)

// Transports of Config.Transport.
const (
	TransportWebsocket = "websocket"
	TransportHTTP      = "http"
)

// ErrHTTPStream wraps the failures of the HTTP streaming transport (a
// refused POST, a stream answered with an error status, a bad frame).
var ErrHTTPStream = errors.New("rpc: HTTP stream")

// postTimeout bounds one POST of the HTTP transport.
const postTimeout = 2 * time.Minute

// HTTPStreamURL normalises a server URL to its /rpc endpoint:
// ws(s)://host/ws → http(s)://host/rpc; http(s)://host → http(s)://host/rpc.
func HTTPStreamURL(server string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil {
		return "", fmt.Errorf("server url %q: %w", server, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("server url %q: scheme must be http, https, ws or wss", server)
	}
	p := strings.TrimSuffix(u.Path, "/")
	p = strings.TrimSuffix(p, "/ws")
	u.Path = p + "/rpc"
	u.RawQuery = ""
	return u.String(), nil
}

// httpStreamDialer returns the Dialer of the HTTP transport and the
// function that closes its idle keep-alive connections (called when the
// client closes). Nothing is sent until the handshake's first message.
func httpStreamDialer(endpoint string, maxFrame int64, tr *http.Transport) Dialer {
	client := &http.Client{Transport: tr}
	return func(ctx context.Context) (Conn, error) {
		c := &httpConn{endpoint: endpoint, client: client, tr: tr, maxFrame: maxFrame}
		c.ctx, c.cancel = context.WithCancel(context.Background())
		return c, nil
	}
}

// newHTTPTransport is the connection pool of one client's HTTP transport
// and the function that closes every connection it ever opened (Close of
// the client: a kept-alive connection has goroutines of its own, and one
// may return to the pool after a plain CloseIdleConnections).
func newHTTPTransport() (*http.Transport, func()) {
	var mu sync.Mutex
	open := map[*trackedConn]struct{}{}
	closed := false
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := &trackedConn{Conn: nc}
			tc.forget = func() {
				mu.Lock()
				delete(open, tc)
				mu.Unlock()
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				nc.Close()
				return nil, net.ErrClosed
			}
			open[tc] = struct{}{}
			mu.Unlock()
			return tc, nil
		},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
	closeAll := func() {
		mu.Lock()
		closed = true
		conns := make([]*trackedConn, 0, len(open))
		for tc := range open {
			conns = append(conns, tc)
		}
		mu.Unlock()
		for _, tc := range conns {
			tc.Close()
		}
		tr.CloseIdleConnections()
	}
	return tr, closeAll
}

type trackedConn struct {
	net.Conn
	forget func()
	once   sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(t.forget)
	return t.Conn.Close()
}

type httpConn struct {
	endpoint string
	client   *http.Client
	tr       *http.Transport
	maxFrame int64
	ctx      context.Context // the connection's life: Close cancels it
	cancel   context.CancelFunc

	mu        sync.Mutex
	opened    bool
	clientID  string
	workspace string
	token     string
	cookies   []*http.Cookie
	body      io.ReadCloser
	br        *bufio.Reader
	pending   [][]byte // text messages for Read (a refusal)

	// postMu keeps POSTs in order, as a websocket keeps frames in order.
	postMu sync.Mutex
}

// Write sends the handshake (the first text message opens the stream),
// control messages and RPC frames (POSTs).
func (c *httpConn) Write(ctx context.Context, typ MessageType, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	opened := c.opened
	c.mu.Unlock()
	if !opened {
		if typ != Text {
			return fmt.Errorf("%w: a message before the stream is open", ErrHTTPStream)
		}
		return c.open(ctx, data)
	}
	body := data
	if typ == Text {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("%w: control message: %v", ErrHTTPStream, err)
		}
		b, err := wire.Encode(m)
		if err != nil {
			return fmt.Errorf("%w: control message: %v", ErrHTTPStream, err)
		}
		body = b
	}
	return c.post(ctx, body)
}

func (c *httpConn) open(ctx context.Context, first []byte) error {
	var h struct {
		ClientID          string `json:"client_id"`
		Workspace         string `json:"workspace"`
		Token             string `json:"token"`
		ReconnectionToken string `json:"reconnection_token"`
	}
	if err := json.Unmarshal(first, &h); err != nil {
		return fmt.Errorf("%w: handshake message: %v", ErrHTTPStream, err)
	}
	q := url.Values{"client_id": {h.ClientID}}
	if h.Workspace != "" {
		q.Set("workspace", h.Workspace)
	}
	if h.ReconnectionToken != "" {
		q.Set("reconnection_token", h.ReconnectionToken)
	}
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, c.endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHTTPStream, err)
	}
	req.Header.Set("Accept", "application/x-msgpack-stream")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	// The response headers must come within the handshake's time; the
	// stream itself lives as long as the connection.
	stop := context.AfterFunc(ctx, c.cancel)
	resp, err := c.client.Do(req)
	stopped := stop()
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrHTTPStream, c.endpoint, err)
	}
	if !stopped {
		resp.Body.Close()
		return ctx.Err()
	}
	if resp.StatusCode != http.StatusOK {
		detail := errorDetail(resp)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			// A refusal: the handshake reads it as the server's error
			// message (RefusedError), as over a websocket.
			b, _ := json.Marshal(map[string]string{"type": "error", "message": detail})
			c.mu.Lock()
			c.opened, c.pending = true, append(c.pending, b)
			c.mu.Unlock()
			return nil
		}
		return fmt.Errorf("%w: GET %s: %s: %s", ErrHTTPStream, c.endpoint, resp.Status, detail)
	}
	c.mu.Lock()
	c.opened = true
	c.clientID, c.workspace, c.token = h.ClientID, h.Workspace, h.Token
	c.cookies = resp.Cookies()
	c.body, c.br = resp.Body, bufio.NewReaderSize(resp.Body, 64<<10)
	c.mu.Unlock()
	return nil
}

// errorDetail is the reason of an error answer: upstream's JSON
// {"detail": ...} or the text of the body (bounded).
func errorDetail(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var m struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(b, &m) == nil && m.Detail != nil {
		return fmt.Sprint(m.Detail)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return resp.Status
}

func (c *httpConn) post(ctx context.Context, body []byte) error {
	c.mu.Lock()
	ws, cid, tok, cookies := c.workspace, c.clientID, c.token, c.cookies
	c.mu.Unlock()
	q := url.Values{"client_id": {cid}, "workspace": {ws}}
	// Like the websocket's, a write is not cut when its caller gives up
	// (half a message would be lost anyway); it ends with the connection.
	pctx, cancel := context.WithTimeout(c.ctx, postTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, c.endpoint+"?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHTTPStream, err)
	}
	req.Header.Set("Content-Type", "application/msgpack")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	c.postMu.Lock()
	defer c.postMu.Unlock()
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: POST %s: %v", ErrHTTPStream, c.endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: POST %s: %s: %s", ErrHTTPStream, c.endpoint, resp.Status, errorDetail(resp))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return nil
}

// Read returns the next message of the stream: the server's control
// messages (connection_info, pong, reconnection_token, error, ping) as JSON
// text, RPC messages as binary frames.
func (c *httpConn) Read(ctx context.Context) (MessageType, []byte, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		return Text, m, nil
	}
	br := c.br
	c.mu.Unlock()
	if br == nil {
		return 0, nil, fmt.Errorf("%w: the stream is not open", ErrHTTPStream)
	}
	stop := context.AfterFunc(ctx, c.cancel)
	defer stop()
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, nil, c.readErr(ctx, err)
	}
	n := int64(binary.BigEndian.Uint32(hdr[:]))
	if n > c.maxFrame {
		c.cancel()
		return 0, nil, fmt.Errorf("%w: a frame of %d bytes is over the limit of %d (MaxMessageSize)", ErrHTTPStream, n, c.maxFrame)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(br, frame); err != nil {
		return 0, nil, c.readErr(ctx, err)
	}
	if text, ws := controlText(frame); text != nil {
		if ws != "" {
			// POSTs name the workspace the server chose.
			c.mu.Lock()
			c.workspace = ws
			c.mu.Unlock()
		}
		return Text, text, nil
	}
	return Binary, frame, nil
}

func (c *httpConn) readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the server ended the stream", ErrHTTPStream)
	}
	return fmt.Errorf("%w: %v", ErrHTTPStream, err)
}

// controlText is the JSON text of a control message of the server: a
// small frame that is one map with a control type and no sender. Routed
// messages always carry the sender the server stamped ("from"), so another
// peer cannot pass a message off as the server's.
// For connection_info it also returns the connection's workspace.
func controlText(frame []byte) (text []byte, workspace string) {
	if len(frame) > 64<<10 {
		return nil, ""
	}
	m, extra, err := wire.DecodeMain(frame)
	if err != nil || len(extra) > 0 {
		return nil, ""
	}
	if _, routed := m["from"]; routed {
		return nil, ""
	}
	switch m["type"] {
	case "connection_info":
		workspace, _ = m["workspace"].(string)
	case "ping", "pong", "reconnection_token", "error":
	default:
		return nil, ""
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, ""
	}
	return b, workspace
}

// Close ends the stream and every POST in flight, and closes the
// transport's idle connections (no goroutine stays behind).
func (c *httpConn) Close(reason string) error {
	c.cancel()
	c.mu.Lock()
	body := c.body
	c.mu.Unlock()
	if body != nil {
		body.Close()
	}
	c.tr.CloseIdleConnections()
	return nil
}
