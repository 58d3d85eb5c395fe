package wsconn

import (
	"encoding/binary"
	"errors"
	"net"

	"github.com/hypha-go/hypha/internal/netpoll"
)

// maxPolledFrame is the largest frame read on a poller's loop: a larger one
// is read by a goroutine (Read), which does not hold the whole frame in the
// read buffer first.
const maxPolledFrame = 64 << 10

// ErrNotTCP is returned by Adopt for a connection that is not a plain TCP
// one (a TLS one, say): it keeps a reading goroutine.
var ErrNotTCP = errors.New("websocket: not a plain TCP connection")

// Adopt moves the connection's socket to p (see internal/netpoll): from then
// on its reads and writes go through the returned FD, which starts not
// polling. The caller is the connection's reader; bytes already buffered
// stay buffered.
func (c *Conn) Adopt(p *netpoll.Poller, h netpoll.Handler) (*netpoll.FD, error) {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return nil, ErrNotTCP
	}
	var fd *netpoll.FD
	err := c.bc.Replace(func(net.Conn) (net.Conn, error) {
		f, err := p.Adopt(tc, h)
		if err != nil {
			return nil, err
		}
		fd = f
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	c.nc = fd
	c.rd.nc, c.rd.rc, c.rd.fn = fd, nil, nil
	c.rd.fd = fd
	return fd, nil
}

// Buffered is the number of bytes read from the socket and not yet consumed.
func (c *Conn) Buffered() int { return c.rd.buffered() }

// PollStatus says what NextPolled found.
type PollStatus int

const (
	// PollMessage: a binary message was returned.
	PollMessage PollStatus = iota
	// PollWait: the socket is empty; wait until it is readable again.
	PollWait
	// PollBlocking: what comes next must be read with Read on a goroutine
	// (a text message, a control or fragmented frame, a frame over 64 KiB,
	// a protocol error, or the end of the connection).
	PollBlocking
)

// NextPolled returns the next binary message when the buffer holds all of
// it, reading the socket (adopted, see Adopt) while *reads is positive:
// each read counts one, and a read that did not fill the buffer (the socket
// is drained) sets it to 0. A loop gives each readiness report a few reads,
// so that a client sending without pause cannot keep it from the others
// (bytes left unread are reported again). It never waits. It is for a
// poller loop's Readable.
func (c *Conn) NextPolled(reads *int) ([]byte, PollStatus) {
	rd := c.rd
	for {
		need, complete := rd.peekBinary(c.limit)
		switch {
		case complete:
			return rd.takeBinary(), PollMessage
		case need == 0:
			return nil, PollBlocking
		case *reads <= 0:
			return nil, PollWait
		}
		*reads--
		full, err := rd.readNow(need)
		switch {
		case errors.Is(err, netpoll.ErrWouldBlock):
			return nil, PollWait
		case err != nil:
			return nil, PollBlocking // Read meets the error again and closes
		}
		if !full {
			*reads = 0
		}
	}
}

// peekBinary looks at the buffered bytes: complete when they start with a
// whole binary frame that is a message of its own (final, masked, no
// reserved bits, at most maxPolledFrame and the read limit); otherwise need
// is the number of bytes the frame needs buffered (its header's largest
// size while the header is incomplete), or 0 when the frame is not such a
// frame (Read handles it).
func (rd *reader) peekBinary(limit int64) (need int, complete bool) {
	b := rd.buf[rd.r:rd.w]
	if len(b) < 2 {
		return 14, false
	}
	if b[0] != 0x80|OpBinary || b[1]&0x80 == 0 {
		return 0, false
	}
	hl := 6
	n := uint64(b[1] & 0x7f)
	switch n {
	case 126:
		hl = 8
		if len(b) < 4 {
			return hl, false
		}
		n = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		return 0, false // 64 KiB or more
	}
	if n > maxPolledFrame || int64(n) > limit {
		return 0, false
	}
	total := hl + int(n)
	return total, len(b) >= total
}

// takeBinary consumes the frame peekBinary found complete and returns its
// payload, unmasked, in an allocation of its own.
func (rd *reader) takeBinary() []byte {
	b := rd.buf[rd.r:rd.w]
	hl, n := 6, int(b[1]&0x7f)
	if n == 126 {
		hl, n = 8, int(binary.BigEndian.Uint16(b[2:]))
	}
	var key [4]byte
	copy(key[:], b[hl-4:hl])
	data := make([]byte, n)
	copy(data, b[hl:hl+n])
	mask(key, 0, data)
	rd.r += hl + n
	if rd.r == rd.w {
		rd.release()
	}
	return data
}

// readNow makes one non-blocking read into the buffer, which is made to
// hold at least need bytes from its start; full reports that the read
// filled the buffer (more may be waiting).
func (rd *reader) readNow(need int) (full bool, err error) {
	switch {
	case rd.buf == nil:
		bp := readPool.Get().(*[]byte)
		rd.bp, rd.buf, rd.r, rd.w = bp, *bp, 0, 0
		if need > len(rd.buf) {
			rd.grow(need)
		}
	case need > len(rd.buf)-rd.r:
		if need > len(rd.buf) {
			rd.grow(need)
		} else {
			rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
			rd.r = 0
		}
	}
	n, err := rd.fd.ReadNow(rd.buf[rd.w:])
	if err != nil {
		if rd.r == rd.w {
			rd.release()
		}
		return false, err
	}
	rd.w += n
	return rd.w == len(rd.buf), nil
}

// grow moves the buffered bytes to a buffer of their own, of n bytes (at
// least the pooled buffers' size).
func (rd *reader) grow(n int) {
	nb := make([]byte, max(n, readBufSize))
	w := copy(nb, rd.buf[rd.r:rd.w])
	if rd.bp != nil {
		readPool.Put(rd.bp)
		rd.bp = nil
	}
	rd.buf, rd.r, rd.w = nb, 0, w
}
