package jupyter

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// zmq4 reads every ZMTP frame into a buffer of the size announced by the
// peer, without any limit (a frame header can announce 2^63 bytes, which
// ends the whole process). The kernel runs user code, so its sockets are
// hostile input: every connection to a kernel goes through boundedConn,
// which parses the ZMTP framing as it streams past and replaces a frame over
// the limit by an empty one while discarding its bytes. The Jupyter message
// that carried it then fails its HMAC check and is dropped and counted like
// any other bad message, and memory stays bounded.

// transportName is the zmq4 transport of kernel connections: TCP with the
// frame guard. Endpoints are written "jupytertcp://127.0.0.1:PORT".
const transportName = "jupytertcp"

var registerOnce sync.Once

func registerTransport() {
	registerOnce.Do(func() {
		// The only error is a duplicate name, impossible under the Once.
		_ = zmq4.RegisterTransport(transportName, guardTransport{})
	})
}

// guardKey carries a kernel's wire limits into the transport: zmq4 hands
// Dial the socket's own context, which is derived from the one the kernel
// created the socket with.
type guardKey struct{}

type guardConfig struct {
	maxMessage int64         // bytes of one ZMTP message (all its frames)
	dropped    *atomic.Int64 // frames emptied for being over the limit
}

type guardTransport struct{}

func (guardTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	cfg, _ := ctx.Value(guardKey{}).(*guardConfig)
	if cfg == nil {
		return nil, fmt.Errorf("jupyter: %s dialled without wire limits", transportName)
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &boundedConn{Conn: c, r: bufio.NewReaderSize(c, 32<<10), cfg: cfg, greeting: 64}, nil
}

func (guardTransport) Listen(context.Context, string) (net.Listener, error) {
	return nil, fmt.Errorf("jupyter: %s only dials", transportName)
}

func (guardTransport) Addr(ep string) (string, error) {
	if _, _, err := net.SplitHostPort(ep); err != nil {
		return "", err
	}
	return ep, nil
}

// ZMTP 3 frame flags.
const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
)

// boundedConn passes a ZMTP 3 stream through unchanged except for frames
// that would take a message over the limit. Only Read is wrapped; writes go
// straight to the connection.
type boundedConn struct {
	net.Conn
	r   *bufio.Reader
	cfg *guardConfig

	greeting int64  // greeting bytes still to pass through
	body     int64  // bytes of the current frame's body still to pass through
	skip     int64  // bytes of an emptied frame still to discard
	msgSize  int64  // bytes of the current message so far
	pending  []byte // a rewritten frame header not yet handed out
	lastMore bool   // the current frame announced more frames
}

func (c *boundedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch {
		case len(c.pending) > 0:
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		case c.greeting > 0:
			n, err := c.r.Read(p[:min(int64(len(p)), c.greeting)])
			c.greeting -= int64(n)
			return n, err
		case c.body > 0:
			n, err := c.r.Read(p[:min(int64(len(p)), c.body)])
			c.body -= int64(n)
			c.frameDone()
			return n, err
		case c.skip > 0:
			n, err := c.r.Discard(int(min(c.skip, 1<<20)))
			c.skip -= int64(n)
			if err != nil {
				return 0, err
			}
			c.frameDone()
			continue
		}
		if err := c.readHeader(); err != nil {
			return 0, err
		}
	}
}

// readHeader reads the next frame header and decides whether its body
// passes or is emptied.
func (c *boundedConn) readHeader() error {
	flags, err := c.r.ReadByte()
	if err != nil {
		return err
	}
	var size uint64
	hdr := []byte{flags}
	if flags&flagLong != 0 {
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return err
		}
		size = binary.BigEndian.Uint64(b[:])
		hdr = append(hdr, b[:]...)
	} else {
		b, err := c.r.ReadByte()
		if err != nil {
			return err
		}
		size = uint64(b)
		hdr = append(hdr, b)
	}
	c.lastMore = flags&flagMore != 0 && flags&flagCommand == 0
	if size > uint64(c.cfg.maxMessage) || c.msgSize+int64(size) > c.cfg.maxMessage {
		// Keep the flags (so the message keeps its shape) and announce an
		// empty body; throw the real body away as it arrives.
		c.cfg.dropped.Add(1)
		c.pending = []byte{flags &^ flagLong, 0}
		c.skip = int64(min(size, uint64(1<<62)))
		if c.skip == 0 {
			c.frameDone()
		}
		return nil
	}
	c.pending = hdr
	c.body = int64(size)
	c.msgSize += int64(size)
	if size == 0 {
		c.frameDone()
	}
	return nil
}

// frameDone resets the message size once the last frame of a message has
// been passed or discarded.
func (c *boundedConn) frameDone() {
	if c.body == 0 && c.skip == 0 && !c.lastMore {
		c.msgSize = 0
	}
}
