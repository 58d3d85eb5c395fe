package wsconn

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// reader is the connection's read buffer, taken from a shared pool only
// while it holds unread bytes: an idle connection, parked until its socket
// is readable, holds no buffer at all. For a TCP connection the read system
// call is made inside syscall.RawConn.Read, which parks the goroutine when
// the socket is empty (the same read, wait, read sequence as net.Conn.Read)
// without a buffer being taken first.
type reader struct {
	nc   net.Conn
	rc   syscall.RawConn // nil: not a plain TCP connection, read through nc
	buf  []byte          // nil when empty
	bp   *[]byte         // buf's pool entry, when it came from readPool
	r, w int
}

var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

func newReader(nc net.Conn, pending []byte) *reader {
	rd := &reader{nc: nc}
	if tc, ok := nc.(*net.TCPConn); ok {
		rd.rc, _ = tc.SyscallConn()
	}
	if len(pending) > 0 { // bytes the HTTP server read past the upgrade request
		rd.buf, rd.r, rd.w = append([]byte(nil), pending...), 0, len(pending)
	}
	return rd
}

// buffered is the number of unread bytes held.
func (rd *reader) buffered() int { return rd.w - rd.r }

// readFull fills p.
func (rd *reader) readFull(p []byte) error {
	for len(p) > 0 {
		if rd.r == rd.w {
			if len(p) >= readBufSize {
				// Large payloads go straight into their destination.
				n, err := rd.read(p)
				if err != nil {
					return err
				}
				p = p[n:]
				continue
			}
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

func (rd *reader) release() {
	if rd.bp != nil {
		readPool.Put(rd.bp)
		rd.bp = nil
	}
	rd.buf, rd.r, rd.w = nil, 0, 0
}

// fill reads into a pooled buffer (the buffer is empty).
func (rd *reader) fill() error {
	var bp *[]byte
	n, err := rd.readWith(func() []byte {
		bp = readPool.Get().(*[]byte)
		return *bp
	}, func() { readPool.Put(bp) })
	if err != nil {
		return err
	}
	rd.bp, rd.buf, rd.r, rd.w = bp, *bp, 0, n
	return nil
}

// read reads into p directly.
func (rd *reader) read(p []byte) (int, error) {
	return rd.readWith(func() []byte { return p }, func() {})
}

// readWith makes one read into the buffer get returns, waiting for the
// socket to become readable if it is empty; put gives the buffer back
// when nothing was read into it.
func (rd *reader) readWith(get func() []byte, put func()) (int, error) {
	if rd.rc == nil {
		b := get()
		n, err := rd.nc.Read(b)
		if n > 0 {
			return n, nil
		}
		put()
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, err
	}
	var n int
	var rerr error
	holding := false
	err := rd.rc.Read(func(fd uintptr) bool {
		b := get()
		holding = true
		for {
			n, rerr = syscall.Read(int(fd), b)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			put()
			holding = false
			return false // park until readable, then call again
		}
		return true
	})
	if err == nil && rerr == nil && n > 0 {
		return n, nil
	}
	if holding {
		put()
	}
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	}
	return 0, io.EOF
}
