package wsconn

import (
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/hypha-go/hypha/internal/netpoll"
)

// reader is the connection's read buffer, taken from a shared pool only
// while it holds unread bytes: an idle connection, parked until its socket
// is readable, holds no buffer at all. For a TCP connection the read system
// call is made inside syscall.RawConn.Read, which parks the goroutine when
// the socket is empty (the same read, wait, read sequence as net.Conn.Read)
// without a buffer being taken first.
type reader struct {
	nc net.Conn
	rc syscall.RawConn // nil: not a plain TCP connection, read through nc
	fd *netpoll.FD     // set once adopted by a poller (nc is fd then)
	// beforeRead, when set, is called before every read system call (see
	// Conn.BeforeRead).
	beforeRead func()
	buf        []byte  // nil when empty
	bp         *[]byte // buf's pool entry, when it came from readPool
	r, w       int

	// State of the read in progress, kept here rather than captured by a
	// closure (which would cost an allocation per read).
	fn     func(fd uintptr) bool
	dst    []byte  // read into this; nil: into a pooled buffer
	dstBP  *[]byte // the pooled buffer taken for the read in progress
	n      int
	sysErr error
}

var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

func newReader(nc net.Conn, pending []byte) *reader {
	rd := &reader{nc: nc}
	if tc, ok := nc.(*net.TCPConn); ok {
		rd.rc, _ = tc.SyscallConn()
		rd.fn = rd.sysRead
	}
	if len(pending) > 0 { // bytes the HTTP server read past the upgrade request
		rd.buf, rd.r, rd.w = append([]byte(nil), pending...), 0, len(pending)
	}
	return rd
}

// buffered is the number of unread bytes held.
func (rd *reader) buffered() int { return rd.w - rd.r }

// readFull fills p from the buffer, refilling it as needed.
func (rd *reader) readFull(p []byte) error {
	for len(p) > 0 {
		if rd.r == rd.w {
			if err := rd.fill(); err != nil {
				return err
			}
		}
		n := copy(p, rd.buf[rd.r:rd.w])
		rd.r += n
		p = p[n:]
		if rd.r == rd.w {
			rd.release()
		}
	}
	return nil
}

// readFullLarge is readFull for a payload: once the buffer is empty, a
// large remainder is read straight into p.
func (rd *reader) readFullLarge(p []byte) error {
	for len(p) > 0 {
		if rd.r == rd.w {
			if len(p) < readBufSize {
				return rd.readFull(p)
			}
			n, _, err := rd.readOnce(p)
			if err != nil {
				return err
			}
			p = p[n:]
			continue
		}
		k := min(len(p), rd.w-rd.r)
		if err := rd.readFull(p[:k]); err != nil { // from the buffer only
			return err
		}
		p = p[k:]
	}
	return nil
}

func (rd *reader) release() {
	if rd.bp != nil {
		readPool.Put(rd.bp)
		rd.bp = nil
	}
	rd.buf, rd.r, rd.w = nil, 0, 0
}

// fill reads into a pooled buffer (the buffer is empty).
func (rd *reader) fill() error {
	n, bp, err := rd.readOnce(nil)
	if err != nil {
		return err
	}
	rd.bp, rd.buf, rd.r, rd.w = bp, *bp, 0, n
	return nil
}

// readOnce makes one read, waiting until the socket is readable: into p,
// or, when p is nil, into a buffer from readPool (returned in bp).
func (rd *reader) readOnce(p []byte) (n int, bp *[]byte, err error) {
	if rd.beforeRead != nil {
		rd.beforeRead()
	}
	if rd.rc == nil {
		if p == nil {
			bp = readPool.Get().(*[]byte)
			p = *bp
		}
		n, err = rd.nc.Read(p)
		if n > 0 {
			return n, bp, nil
		}
		if bp != nil {
			readPool.Put(bp)
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, nil, err
	}
	rd.dst, rd.dstBP, rd.n, rd.sysErr = p, nil, 0, nil
	err = rd.rc.Read(rd.fn)
	n, bp = rd.n, rd.dstBP
	rd.dst, rd.dstBP = nil, nil
	if err == nil && rd.sysErr == nil && n > 0 {
		return n, bp, nil
	}
	if bp != nil {
		readPool.Put(bp)
	}
	switch {
	case err != nil:
		return 0, nil, err
	case rd.sysErr != nil:
		return 0, nil, rd.sysErr
	}
	return 0, nil, io.EOF
}

// sysRead is the function given to RawConn.Read: one read system call;
// false (wait until readable, then call again) when the socket is empty.
// A pooled buffer is taken only once there may be bytes to read into it.
func (rd *reader) sysRead(fd uintptr) bool {
	b := rd.dst
	if b == nil {
		if rd.dstBP == nil {
			rd.dstBP = readPool.Get().(*[]byte)
		}
		b = *rd.dstBP
	}
	for {
		rd.n, rd.sysErr = syscall.Read(int(fd), b)
		if rd.sysErr != syscall.EINTR {
			break
		}
	}
	if rd.sysErr == syscall.EAGAIN {
		if rd.dstBP != nil {
			readPool.Put(rd.dstBP)
			rd.dstBP = nil
		}
		rd.n, rd.sysErr = 0, nil
		return false
	}
	return true
}
