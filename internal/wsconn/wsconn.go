// Package wsconn is the server's end of a websocket connection (RFC 6455):
// the upgrade, reading client frames and writing server frames, with only
// what the Hypha server needs (no compression, no subprotocols).
//
// It replaces a general websocket library on the server's hot path, where
// profiles showed that library's per-message work (a channel-based lock on
// every write, io.ReadAll growing a buffer for every message, a bufio.Writer
// and a frame-state machine per connection) costing a fifth of the server's
// CPU per routed call. Here a message is read into one allocation of its
// exact size, a frame is written as header and payload appended to the
// connection's write queue in one locked step (internal/batchconn, which
// coalesces the writes of many messages into one system call), and an idle
// connection keeps only its read buffer.
package wsconn

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/batchconn"
)

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Close codes sent by this package.
const (
	CloseNormal      = 1000
	CloseProtocol    = 1002
	CloseUnsupported = 1003
	CloseTooBig      = 1009
)

// readBufSize is the read buffer of a connection, the one buffer an idle
// connection keeps. Messages of the Hypha protocol are mostly a few hundred
// bytes; a larger message is read straight into its own allocation.
const readBufSize = 2048

// defaultReadLimit is the largest message when Accept is given no limit.
const defaultReadLimit = 32 << 20

// closeWait bounds how long a connection waits for the peer to answer its
// close frame before the socket is closed anyway.
const closeWait = 2 * time.Second

var (
	// ErrClosed is returned by Write after the connection was closed.
	ErrClosed = errors.New("websocket: connection closed")
	// ErrProtocol wraps a frame that breaks RFC 6455.
	ErrProtocol = errors.New("websocket: protocol error")
	// ErrTooBig is returned by Read for a message over the read limit.
	ErrTooBig = errors.New("websocket: message too big")
	// ErrHandshake wraps an upgrade request that is not a websocket one.
	ErrHandshake = errors.New("websocket: bad handshake")
)

// CloseError is the close frame the peer sent.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket: closed by peer (%d %s)", e.Code, e.Reason)
}

// Conn is the server's end of one websocket connection. Read is for one
// goroutine; Write and Close may be called from any number.
type Conn struct {
	nc    net.Conn
	bc    *batchconn.Conn
	rd    *reader
	limit int64

	// controlReturns makes Read return after a control frame outside a
	// message when nothing more is buffered (ReturnAfterControl).
	controlReturns bool

	mu        sync.Mutex
	closeSent bool
	shutOnce  sync.Once
	timer     *time.Timer
}

// Accept answers a websocket upgrade request and takes over its
// connection. Any origin may connect (browsers on every origin may, as
// with upstream Hypha); compression and subprotocols are not offered. On
// error the request has been answered with an HTTP error.
func Accept(w http.ResponseWriter, r *http.Request, readLimit int64) (*Conn, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	switch {
	case r.Method != http.MethodGet:
		return nil, handshakeError(w, http.StatusMethodNotAllowed, "websocket upgrade needs GET")
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return nil, handshakeError(w, http.StatusUpgradeRequired, "Connection header must include upgrade")
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return nil, handshakeError(w, http.StatusUpgradeRequired, "Upgrade header must include websocket")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		return nil, handshakeError(w, http.StatusBadRequest, "unsupported Sec-WebSocket-Version (want 13)")
	case !validKey(key):
		return nil, handshakeError(w, http.StatusBadRequest, "invalid Sec-WebSocket-Key")
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "websocket: cannot take over the connection", http.StatusInternalServerError)
		return nil, fmt.Errorf("websocket: hijack: %w", err)
	}
	// The HTTP server's deadlines (meant for one request) would otherwise
	// end the long-lived connection.
	if err := nc.SetDeadline(time.Time{}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("websocket: %w", err)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(key) + "\r\n\r\n"
	if _, err := nc.Write([]byte(resp)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("websocket: write upgrade response: %w", err)
	}
	// A client may send its first frame right behind the request: keep
	// the bytes the HTTP server read past it.
	var pending []byte
	if n := brw.Reader.Buffered(); n > 0 {
		pending, _ = brw.Reader.Peek(n)
	}
	return newConn(nc, pending, readLimit), nil
}

func newConn(nc net.Conn, pending []byte, readLimit int64) *Conn {
	if readLimit <= 0 {
		readLimit = defaultReadLimit
	}
	return &Conn{nc: nc, bc: batchconn.New(nc), rd: newReader(nc, pending), limit: readLimit}
}

func handshakeError(w http.ResponseWriter, code int, msg string) error {
	http.Error(w, msg, code)
	return fmt.Errorf("%w: %s", ErrHandshake, msg)
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// Read returns the next data message (OpText or OpBinary) and its payload,
// answering pings and the peer's close on the way. The payload is the
// caller's. After an error the connection is closed (for a protocol error
// or an oversized message, with the matching close code first).
func (c *Conn) Read() (op byte, data []byte, err error) {
	var hdr [14]byte
	var ctl [125]byte
	if err := c.Fill(); err != nil {
		return 0, nil, err
	}
	for {
		fin, fop, n, key, err := c.readHeader(&hdr)
		if err != nil {
			return 0, nil, c.failRead(err)
		}
		if fop >= OpClose { // a control frame, possibly between fragments
			if !fin || n > 125 {
				return 0, nil, c.failRead(fmt.Errorf("%w: fragmented or long control frame", ErrProtocol))
			}
			p := ctl[:n]
			if err := c.rd.readFull(p); err != nil {
				return 0, nil, c.failRead(err)
			}
			mask(key, 0, p)
			switch fop {
			case OpPing:
				_ = c.Write(context.Background(), OpPong, p)
			case OpClose:
				return 0, nil, c.peerClosed(p)
			case OpPong:
			default:
				return 0, nil, c.failRead(fmt.Errorf("%w: unknown opcode %d", ErrProtocol, fop))
			}
			if c.controlReturns && op == 0 && c.rd.buffered() == 0 {
				return 0, nil, nil
			}
			continue
		}
		switch {
		case fop == OpContinuation && op == 0:
			return 0, nil, c.failRead(fmt.Errorf("%w: continuation frame without a message", ErrProtocol))
		case fop == OpText || fop == OpBinary:
			if op != 0 {
				return 0, nil, c.failRead(fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol))
			}
			op = fop
		case fop != OpContinuation:
			return 0, nil, c.failRead(fmt.Errorf("%w: unknown opcode %d", ErrProtocol, fop))
		}
		if n > uint64(c.limit-int64(len(data))) {
			return 0, nil, c.failRead(fmt.Errorf("%w: over %d bytes", ErrTooBig, c.limit))
		}
		if data, err = c.readPayload(data, int(n), key); err != nil {
			return 0, nil, c.failRead(err)
		}
		if fin {
			return op, data, nil
		}
	}
}

// eagerAlloc is the payload size allocated before its bytes arrive; a
// larger payload grows as it arrives, so that a header claiming many
// megabytes costs nothing until they are sent.
const eagerAlloc = 64 << 10

// readPayload appends the n payload bytes of a frame to data, unmasked.
func (c *Conn) readPayload(data []byte, n int, key [4]byte) ([]byte, error) {
	if data == nil && n <= eagerAlloc {
		data = make([]byte, n)
		if err := c.rd.readFullLarge(data); err != nil {
			return nil, err
		}
		mask(key, 0, data)
		return data, nil
	}
	pos := 0
	for pos < n {
		chunk := min(n-pos, max(eagerAlloc, len(data)))
		start := len(data)
		data = append(data, make([]byte, chunk)...)
		if err := c.rd.readFullLarge(data[start:]); err != nil {
			return nil, err
		}
		pos = mask(key, pos, data[start:])
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// Fill waits until bytes can be read, unless some are buffered, and reads
// them into the buffer. Read calls it; a caller that calls it first, from
// a shallow point of its goroutine's stack, parks there instead of deep
// inside Read. After an error the connection is closed.
//
// It does not yield (runtime.Gosched) first: a yield puts the goroutine on
// the global run queue and wakes an idle processor's thread to take it, and
// on two cores those thread wake-ups and sleeps (futex, findRunnable) cost
// more than the reads a yield saved (docs/benchmarks.md §10).
func (c *Conn) Fill() error {
	if c.rd.buffered() > 0 {
		return nil
	}
	if err := c.rd.fill(); err != nil {
		return c.failRead(err)
	}
	return nil
}

// readHeader reads one frame header of a client: masked, no extension bits.
func (c *Conn) readHeader(hdr *[14]byte) (fin bool, op byte, n uint64, key [4]byte, err error) {
	if err = c.rd.readFull(hdr[:2]); err != nil {
		return
	}
	b0, b1 := hdr[0], hdr[1]
	fin, op = b0&0x80 != 0, b0&0x0f
	if b0&0x70 != 0 {
		err = fmt.Errorf("%w: reserved bits set (no extension was negotiated)", ErrProtocol)
		return
	}
	if b1&0x80 == 0 {
		err = fmt.Errorf("%w: client frame not masked", ErrProtocol)
		return
	}
	ext := 0
	switch n = uint64(b1 & 0x7f); n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	rest := hdr[2 : 2+ext+4]
	if err = c.rd.readFull(rest); err != nil {
		return
	}
	switch ext {
	case 2:
		n = uint64(binary.BigEndian.Uint16(rest))
	case 8:
		n = binary.BigEndian.Uint64(rest)
		if n>>63 != 0 {
			err = fmt.Errorf("%w: payload length with the high bit set", ErrProtocol)
			return
		}
	}
	copy(key[:], rest[ext:])
	return
}

// mask applies (or removes) the masking key to b, which starts at offset
// pos of its frame's payload.
func mask(key [4]byte, pos int, b []byte) int {
	k := [4]byte{key[pos&3], key[(pos+1)&3], key[(pos+2)&3], key[(pos+3)&3]}
	k32 := binary.LittleEndian.Uint32(k[:])
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= k[i&3]
	}
	return pos + len(b)
}

// failRead closes the connection after a read error: with a close frame
// saying why for what the peer did wrong.
func (c *Conn) failRead(err error) error {
	// Nobody reads after this: the socket is closed as soon as the close
	// frame is written, without waiting for the peer's answer.
	switch {
	case errors.Is(err, ErrProtocol):
		c.Close(CloseProtocol, "protocol error")
	case errors.Is(err, ErrTooBig):
		c.Close(CloseTooBig, "message too big")
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = io.EOF
	}
	c.shutdown()
	return err
}

// peerClosed answers the peer's close frame with the same code (unless a
// close was sent already) and closes the socket.
func (c *Conn) peerClosed(p []byte) error {
	ce := &CloseError{Code: 1005} // no status in the frame
	switch {
	case len(p) == 1:
		c.Close(CloseProtocol, "invalid close frame")
		c.shutdown()
		return fmt.Errorf("%w: one-byte close frame", ErrProtocol)
	case len(p) >= 2:
		ce.Code, ce.Reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
	}
	c.mu.Lock()
	sent := c.closeSent
	c.closeSent = true
	c.mu.Unlock()
	if !sent {
		var body []byte
		if len(p) >= 2 {
			body = p[:2]
		}
		_ = c.bc.WriteLast(context.Background(), frameHeader(nil, OpClose, len(body)), body)
	}
	c.shutdown()
	return ce
}

// Write sends one message. It returns once the frame is queued (see
// internal/batchconn); ctx bounds the wait when the peer has stopped
// reading and the queue is full.
func (c *Conn) Write(ctx context.Context, op byte, data []byte) error {
	var hb [10]byte
	c.mu.Lock()
	sent := c.closeSent
	c.mu.Unlock()
	if sent {
		return ErrClosed
	}
	if err := c.bc.WriteParts(ctx, frameHeader(hb[:0], op, len(data)), data); err != nil {
		return fmt.Errorf("websocket: write: %w", err)
	}
	return nil
}

// WriteDeferred queues one message like Write but leaves its writing to the
// caller's Flush (see batchconn.Conn.Defer): a read loop routing a batch of
// messages queues them all, then flushes each connection it wrote to once.
// It reports whether the caller must call Flush; it never waits, and
// returns batchconn.ErrWouldWait when the queue is full (the caller then
// uses Write, which waits).
func (c *Conn) WriteDeferred(op byte, data []byte) (mustFlush bool, err error) {
	var hb [10]byte
	c.mu.Lock()
	sent := c.closeSent
	c.mu.Unlock()
	if sent {
		return false, ErrClosed
	}
	mustFlush, err = c.bc.Defer(frameHeader(hb[:0], op, len(data)), data)
	if err != nil && !errors.Is(err, batchconn.ErrWouldWait) {
		err = fmt.Errorf("websocket: write: %w", err)
	}
	return mustFlush, err
}

// Flush writes the messages WriteDeferred queued, without waiting for the
// peer: what the socket does not take at once is left to a flusher
// goroutine.
func (c *Conn) Flush() { c.bc.Flush() }

// ReturnAfterControl makes Read return op 0, no data and no error once it
// has answered a control frame (a ping) that came outside a message, when
// no more bytes are buffered, instead of waiting for the next message: a
// poller loop's goroutine then gives the connection back to the loop
// rather than stay parked until the client's next message.
func (c *Conn) ReturnAfterControl() { c.controlReturns = true }

// BeforeRead sets fn to be called by the reading goroutine (in Read or
// Fill) before every read system call, that is whenever every byte already
// read has been consumed and more are needed, including in the middle of a
// message: a read loop flushes its deferred writes there, before it may
// wait. Set it before the first Read.
func (c *Conn) BeforeRead(fn func()) { c.rd.beforeRead = fn }

// frameHeader appends the header of an unmasked final frame to b.
func frameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// Close sends a close frame (reason cut to fit the frame) and closes the
// socket once the peer answered it, or after closeWait. It does not wait.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	if c.closeSent {
		c.mu.Unlock()
		return
	}
	c.closeSent = true
	c.timer = time.AfterFunc(closeWait, c.shutdown)
	c.mu.Unlock()
	if len(reason) > 123 {
		reason = reason[:123]
	}
	body := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	body = append(body, reason...)
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	if err := c.bc.WriteLast(ctx, frameHeader(nil, OpClose, len(body)), body); err != nil {
		c.shutdown()
	}
}

// shutdown writes what is queued (batchconn bounds that) and closes the
// socket, which ends a pending Read.
func (c *Conn) shutdown() {
	c.shutOnce.Do(func() {
		c.mu.Lock()
		c.closeSent = true
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		_ = c.bc.Close()
	})
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }
