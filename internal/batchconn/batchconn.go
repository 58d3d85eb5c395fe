// Package batchconn wraps a net.Conn so that writes are queued and written by
// one flusher goroutine, which sends everything queued in one system call.
//
// A websocket library writes and flushes every message separately; under
// load that is one write system call per message, the dominant cost of an
// RPC hop. Queuing lets the writer go on at once (the server's read loop
// routes the next message instead of waiting for the kernel) and lets many
// messages share one system call. When the connection is idle a message is
// written as soon as the flusher wakes.
package batchconn

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxQueued bounds the bytes waiting to be written; a writer waits beyond it
// (backpressure from a slow peer).
const maxQueued = 8 << 20

// Conn is a net.Conn with queued writes.
type Conn struct {
	net.Conn
	mu       sync.Mutex
	cond     *sync.Cond
	queue    []byte
	spare    []byte
	err      error
	closed   bool
	flushing bool
	done     chan struct{}
}

// New wraps c and starts its flusher.
func New(c net.Conn) *Conn {
	b := &Conn{Conn: c, done: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	go b.flusher()
	return b
}

var errClosed = errors.New("batchconn: connection closed")

// Write queues p. It reports an error of an earlier write, if any.
func (b *Conn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) > maxQueued && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.closed {
		return 0, errClosed
	}
	b.queue = append(b.queue, p...)
	b.cond.Broadcast()
	return len(p), nil
}

func (b *Conn) flusher() {
	defer close(b.done)
	b.mu.Lock()
	for {
		for len(b.queue) == 0 && !b.closed && b.err == nil {
			b.cond.Wait()
		}
		if b.err != nil || (b.closed && len(b.queue) == 0) {
			b.mu.Unlock()
			return
		}
		out := b.queue
		b.queue = b.spare[:0]
		b.flushing = true
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		b.flushing = false
		if cap(out) <= 1<<20 {
			b.spare = out[:0]
		} else {
			b.spare = nil
		}
		if err != nil {
			b.err = err
		}
		b.cond.Broadcast()
	}
}

// Close writes what is queued (for at most two seconds), then closes.
func (b *Conn) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	select {
	case <-b.done:
	case <-time.After(2 * time.Second):
	}
	err := b.Conn.Close()
	<-b.done
	return err
}

// HijackWriter wraps a ResponseWriter so that a websocket library hijacking
// the connection gets a batching Conn.
type HijackWriter struct {
	http.ResponseWriter
}

// Hijack hijacks the underlying connection and wraps it.
func (h HijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("batchconn: the ResponseWriter cannot be hijacked")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	bc := New(c)
	return bc, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(bc, 4096)), nil
}

// Dialer returns a DialContext function producing batching connections (for
// an http.Transport used by a websocket client).
func Dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	}
}
