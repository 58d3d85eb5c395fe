package testserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
)

// Tap is an rpc.Dialer for tests: it records the binary frames the client
// receives and can kill or freeze the current connection the way a crashed
// or hung peer would (no close frame).
type Tap struct {
	url string

	mu      sync.Mutex
	net     net.Conn
	cur     *tapConn
	frozen  chan struct{} // non-nil while frozen; closed to thaw
	refuse  bool
	dials   int
	onFrame func(main map[string]any)
}

// NewTap returns a Tap dialing the server at serverURL (http://host:port).
func NewTap(serverURL string) *Tap {
	u, _ := rpc.WebsocketURL(serverURL)
	return &Tap{url: u}
}

// Dial implements rpc.Dialer.
func (tp *Tap) Dial(ctx context.Context) (rpc.Conn, error) {
	tp.mu.Lock()
	refuse := tp.refuse
	tp.dials++
	tp.mu.Unlock()
	if refuse {
		return nil, errors.New("tap: dialing refused")
	}
	var nc net.Conn
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		nc = c
		return c, err
	}}}
	c, _, err := websocket.Dial(ctx, tp.url, &websocket.DialOptions{HTTPClient: hc, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(64 << 20)
	tc := &tapConn{tp: tp, c: c, closed: make(chan struct{})}
	tp.mu.Lock()
	tp.net, tp.cur = nc, tc
	tp.mu.Unlock()
	return tc, nil
}

// Dials counts connection attempts.
func (tp *Tap) Dials() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.dials
}

// Kill closes the TCP connection under the current websocket without a close
// handshake, as a crashed process would.
func (tp *Tap) Kill() {
	tp.mu.Lock()
	nc := tp.net
	tp.mu.Unlock()
	if nc != nil {
		_ = nc.Close()
	}
}

// Refuse makes further dials fail (a peer that stays dead).
func (tp *Tap) Refuse() {
	tp.mu.Lock()
	tp.refuse = true
	tp.mu.Unlock()
}

// Allow undoes Refuse: further dials reach the server again (a peer whose
// network came back).
func (tp *Tap) Allow() {
	tp.mu.Lock()
	tp.refuse = false
	tp.mu.Unlock()
}

// Freeze stops the client from reading: the connection stays open but
// nothing is processed (a hung peer). Thaw undoes it.
func (tp *Tap) Freeze() {
	tp.mu.Lock()
	if tp.frozen == nil {
		tp.frozen = make(chan struct{})
	}
	tp.mu.Unlock()
}

// Thaw resumes reading after Freeze.
func (tp *Tap) Thaw() {
	tp.mu.Lock()
	if tp.frozen != nil {
		close(tp.frozen)
		tp.frozen = nil
	}
	tp.mu.Unlock()
}

// OnFrame calls fn (on the client's read goroutine, before the client sees
// the frame) with the main segment of every binary frame received.
func (tp *Tap) OnFrame(fn func(main map[string]any)) {
	tp.mu.Lock()
	tp.onFrame = fn
	tp.mu.Unlock()
}

type tapConn struct {
	tp     *Tap
	c      *websocket.Conn
	closed chan struct{}
	once   sync.Once
}

// waitThawed blocks while the tap is frozen.
func (t *tapConn) waitThawed(ctx context.Context) error {
	t.tp.mu.Lock()
	frozen := t.tp.frozen
	t.tp.mu.Unlock()
	if frozen == nil {
		return nil
	}
	select {
	case <-frozen:
		return nil
	case <-t.closed:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *tapConn) Read(ctx context.Context) (rpc.MessageType, []byte, error) {
	if err := t.waitThawed(ctx); err != nil {
		return 0, nil, err
	}
	typ, b, err := t.c.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return 0, nil, &rpc.CloseError{Code: int(ce.Code), Reason: ce.Reason}
		}
		return 0, nil, err
	}
	// A frame read just before Freeze is held back too: a hung peer
	// processes nothing.
	if err := t.waitThawed(ctx); err != nil {
		return 0, nil, err
	}
	if typ == websocket.MessageBinary {
		t.tp.mu.Lock()
		fn := t.tp.onFrame
		t.tp.mu.Unlock()
		if fn != nil {
			if main, _, err := wire.DecodeMain(b); err == nil {
				fn(main)
			}
		}
	}
	return rpc.MessageType(typ), b, nil
}

func (t *tapConn) Write(ctx context.Context, typ rpc.MessageType, data []byte) error {
	return t.c.Write(ctx, websocket.MessageType(typ), data)
}

func (t *tapConn) Close(reason string) error {
	t.once.Do(func() { close(t.closed) })
	t.tp.mu.Lock()
	frozen := t.tp.frozen != nil
	t.tp.mu.Unlock()
	if frozen {
		// A frozen peer would not answer the close handshake either.
		return t.c.CloseNow()
	}
	return t.c.Close(websocket.StatusNormalClosure, reason)
}
