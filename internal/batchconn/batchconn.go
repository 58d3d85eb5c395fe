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
	"syscall"
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
	sealed   bool            // WriteLast was called
	flushing bool            // a flusher goroutine is running
	done     chan struct{}   // made by Close while writing; closed when writing ends
	rc       syscall.RawConn // for Flush; nil until the first Defer (rawWritable)
	nbw      NonblockWriter  // for Flush, when the Conn is one (rawWritable)

	// State of the inline write in progress (Flush), kept here rather than
	// captured by a closure, which would cost an allocation per write.
	wfn  func(fd uintptr) bool
	wout []byte
	wn   int
	werr error
}

// New wraps c. A flusher goroutine runs only while there is something to
// write, so idle connections cost no goroutine.
func New(c net.Conn) *Conn {
	b := &Conn{Conn: c}
	b.cond = sync.NewCond(&b.mu)
	return b
}

var errClosed = errors.New("batchconn: connection closed")

// Write queues p. It reports an error of an earlier write, if any.
func (b *Conn) Write(p []byte) (int, error) {
	if err := b.WriteParts(context.Background(), p, nil); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteParts queues a and then b as one unit: no other writer's bytes come
// between them (a websocket frame's header and payload, without copying
// them into one slice first). It waits only while more than maxQueued bytes
// are queued (a peer that does not read), and then at most until ctx ends.
func (b *Conn) WriteParts(ctx context.Context, a, c []byte) error {
	return b.writeParts(ctx, a, c, false)
}

// WriteLast is WriteParts for the last bytes of the connection (a
// websocket close frame): any later write fails, so that nothing a
// concurrent writer queues can follow them.
func (b *Conn) WriteLast(ctx context.Context, a, c []byte) error {
	return b.writeParts(ctx, a, c, true)
}

func (b *Conn) writeParts(ctx context.Context, a, c []byte, last bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) > maxQueued && b.err == nil && !b.closed {
		// Wake the wait when ctx ends; a context that never ends (the
		// common case) costs nothing here.
		stop := context.AfterFunc(ctx, func() {
			b.mu.Lock()
			b.cond.Broadcast()
			b.mu.Unlock()
		})
		defer stop()
		for len(b.queue) > maxQueued && b.err == nil && !b.closed && ctx.Err() == nil {
			b.cond.Wait()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if b.err != nil {
		return b.err
	}
	if b.closed || b.sealed {
		return errClosed
	}
	b.sealed = last
	if b.queue == nil {
		b.queue = getBuf()
	}
	b.queue = append(append(b.queue, a...), c...)
	if !b.flushing {
		b.startFlusher()
	}
	return nil
}

// ErrWouldWait is returned by Defer when the queue is full: the caller
// flushes what it deferred elsewhere and then calls WriteParts, which waits.
var ErrWouldWait = errors.New("batchconn: queue full")

// deferLimit is the most Defer lets wait for the caller's Flush; beyond it a
// flusher starts at once.
const deferLimit = 64 << 10

// Defer queues a and c like WriteParts but starts no flusher: the caller, a
// read loop routing every message it has already read, calls Flush once
// its batch is done, so that the frames of a batch to one peer share one
// write system call made by the read loop itself, and no goroutine is
// started and woken per burst. It reports whether the caller must call
// Flush (false: a flusher is running and writes them). It never waits.
func (b *Conn) Defer(a, c []byte) (mustFlush bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.err != nil:
		return false, b.err
	case b.closed || b.sealed:
		return false, errClosed
	case len(b.queue) > maxQueued:
		return false, ErrWouldWait
	}
	if b.queue == nil {
		b.queue = getBuf()
	}
	b.queue = append(append(b.queue, a...), c...)
	if b.flushing {
		return false, nil
	}
	if len(b.queue) > deferLimit || !b.rawWritable() {
		b.startFlusher()
		return false, nil
	}
	return true, nil
}

// Flush writes what is queued with one non-blocking write system call made
// by the calling goroutine, unless a flusher is already running. Whatever
// the socket does not take at once (a peer that reads slowly or not at
// all) is left to a flusher goroutine, so the caller never waits for a peer.
func (b *Conn) Flush() {
	b.mu.Lock()
	if b.flushing || len(b.queue) == 0 || b.err != nil {
		b.mu.Unlock()
		return
	}
	if !b.rawWritable() {
		b.startFlusher()
		b.mu.Unlock()
		return
	}
	b.flushing = true // other writers append; nobody else writes meanwhile
	out := b.queue
	b.queue = b.spare
	b.spare = nil
	b.mu.Unlock()

	var n int
	var err error
	if b.nbw != nil {
		n, err = b.nbw.WriteNonblock(out)
	} else {
		b.wout, b.wn, b.werr = out, 0, nil
		err = b.rc.Write(b.wfn)
		n = b.wn
		b.wout = nil
		if err == nil {
			err = b.werr
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && err != syscall.EAGAIN {
		b.err = err
		b.cond.Broadcast()
	}
	if n < len(out) && b.err == nil {
		// The rest goes first, before what other writers queued meanwhile.
		rest := append(getBuf(), out[n:]...)
		rest = append(rest, b.queue...)
		putBuf(b.queue)
		b.queue = rest
	}
	if b.spare == nil && cap(out) <= maxPooled {
		b.spare = out[:0]
	} else {
		putBuf(out)
	}
	if len(b.queue) > 0 && b.err == nil {
		b.startFlusher()
		return
	}
	b.flushed()
}

// rawWritable reports whether Flush can write without waiting: the
// connection is a plain TCP one (b.mu held). The raw connection is set up
// at the first deferred write, so that a connection that never gets one
// (an idle one) does not carry it.
func (b *Conn) rawWritable() bool {
	if b.rc != nil || b.nbw != nil {
		return true
	}
	if w, ok := b.Conn.(NonblockWriter); ok {
		b.nbw = w
		return true
	}
	tc, ok := b.Conn.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	b.rc, b.wfn = rc, b.sysWrite
	return true
}

// sysWrite is the function given to RawConn.Write: one write system call,
// never waiting for the socket to become writable.
func (b *Conn) sysWrite(fd uintptr) bool {
	for {
		b.wn, b.werr = syscall.Write(int(fd), b.wout)
		if b.werr != syscall.EINTR {
			break
		}
	}
	if b.wn < 0 {
		b.wn = 0
	}
	return true
}

// NonblockWriter is a connection whose writes can be made without waiting
// (internal/netpoll's FD): Flush then uses it instead of the TCP socket's
// raw connection. WriteNonblock returns how much the socket took, with
// syscall.EAGAIN when that was less than p because it is full.
type NonblockWriter interface {
	WriteNonblock(p []byte) (int, error)
}

// Replace swaps the connection written to for the one fn returns, once no
// write is in progress; writes queued meanwhile go to the new one. fn gets
// the current connection (it may close it once it has what it needs). On
// error nothing changes.
func (b *Conn) Replace(fn func(old net.Conn) (net.Conn, error)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.flushing && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	switch {
	case b.err != nil:
		return b.err
	case b.closed:
		return errClosed
	}
	nc, err := fn(b.Conn)
	if err != nil {
		return err
	}
	b.Conn, b.rc, b.wfn, b.nbw = nc, nil, nil, nil
	return nil
}

// startFlusher starts the flusher goroutine (b.mu held).
func (b *Conn) startFlusher() {
	b.flushing = true
	go b.flusher()
}

// flushed marks the end of writing (b.mu held), waking a Close waiting
// for it.
func (b *Conn) flushed() {
	b.flushing = false
	b.cond.Broadcast()
	if b.done != nil {
		close(b.done)
		b.done = nil
	}
	// An idle connection keeps no buffer: both go back to the shared pool.
	putBuf(b.queue)
	putBuf(b.spare)
	b.queue, b.spare = nil, nil
}

// flusher writes the queue until it is empty, then exits.
func (b *Conn) flusher() {
	b.mu.Lock()
	for len(b.queue) > 0 && b.err == nil {
		out := b.queue
		b.queue = b.spare
		b.spare = nil
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		if b.spare == nil && cap(out) <= maxPooled {
			b.spare = out[:0]
		}
		if err != nil {
			b.err = err
		}
		b.cond.Broadcast()
	}
	b.flushed()
	b.mu.Unlock()
}

// maxPooled bounds the buffers kept for reuse.
const maxPooled = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() []byte {
	return (*bufPool.Get().(*[]byte))[:0]
}

func putBuf(b []byte) {
	if b == nil || cap(b) > maxPooled {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
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
	if !b.flushing && len(b.queue) > 0 && b.err == nil {
		// Deferred frames nobody flushed yet (see Defer).
		b.startFlusher()
	}
	flushing := b.flushing
	var done chan struct{}
	if flushing {
		if b.done == nil {
			b.done = make(chan struct{})
		}
		done = b.done
	}
	b.mu.Unlock()
	if flushing {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	err := b.Conn.Close()
	if flushing {
		<-done
	}
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
	// The HTTP server's read deadline (its ReadTimeout, meant for one
	// request) would otherwise end the long-lived connection.
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	bc := New(c)
	brw.Writer.Reset(bc) // reuse the server's buffer rather than adding one per connection
	return bc, brw, nil
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
