package server

import (
	"context"
	"errors"
	"sync"

	"github.com/hypha-go/hypha/rpc"
)

// transport is the server's side of one client connection: a websocket or,
// for in-process clients, one end of a pipe.
type transport interface {
	Read(ctx context.Context) (rpc.MessageType, []byte, error)
	Write(ctx context.Context, typ rpc.MessageType, data []byte) error
	CloseWith(code int, reason string)
}

var errPipeClosed = errors.New("pipe closed")

type pipeMsg struct {
	typ  rpc.MessageType
	data []byte
}

// pipeEnd is one end of an in-memory connection. Messages are delivered in
// order through a buffered channel; a full channel makes the writer wait, as
// a full socket buffer would.
type pipeEnd struct {
	in     chan pipeMsg
	peer   *pipeEnd
	closed chan struct{}
	once   *sync.Once
	code   int
	reason string
	mu     *sync.Mutex
}

func newPipe() (*pipeEnd, *pipeEnd) {
	closed := make(chan struct{})
	once := &sync.Once{}
	mu := &sync.Mutex{}
	a := &pipeEnd{in: make(chan pipeMsg, 256), closed: closed, once: once, mu: mu}
	b := &pipeEnd{in: make(chan pipeMsg, 256), closed: closed, once: once, mu: mu}
	a.peer, b.peer = b, a
	return a, b
}

func (p *pipeEnd) Read(ctx context.Context) (rpc.MessageType, []byte, error) {
	select {
	case m := <-p.in:
		return m.typ, m.data, nil
	default:
	}
	select {
	case m := <-p.in:
		return m.typ, m.data, nil
	case <-p.closed:
		p.mu.Lock()
		code, reason := p.code, p.reason
		p.mu.Unlock()
		if code != 0 {
			return 0, nil, &rpc.CloseError{Code: code, Reason: reason}
		}
		return 0, nil, errPipeClosed
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

func (p *pipeEnd) Write(ctx context.Context, typ rpc.MessageType, data []byte) error {
	select {
	case <-p.closed:
		return errPipeClosed
	default:
	}
	select {
	case p.peer.in <- pipeMsg{typ, data}:
		return nil
	case <-p.closed:
		return errPipeClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryWrite is Write without waiting: sent is false when the peer's queue
// is full (a poller loop then leaves the frame to a goroutine).
func (p *pipeEnd) tryWrite(typ rpc.MessageType, data []byte) (sent bool, err error) {
	select {
	case <-p.closed:
		return false, errPipeClosed
	default:
	}
	select {
	case p.peer.in <- pipeMsg{typ, data}:
		return true, nil
	default:
		return false, nil
	}
}

func (p *pipeEnd) CloseWith(code int, reason string) {
	p.once.Do(func() {
		p.mu.Lock()
		// Both ends report the close (the reader is usually the other end).
		p.code, p.reason = code, reason
		p.peer.code, p.peer.reason = code, reason
		p.mu.Unlock()
		close(p.closed)
	})
}

// Close implements rpc.Conn for the client end.
func (p *pipeEnd) Close(reason string) error {
	p.CloseWith(1000, reason)
	return nil
}
