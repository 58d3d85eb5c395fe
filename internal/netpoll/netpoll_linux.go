//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	evIn    = syscall.EPOLLIN | syscall.EPOLLRDHUP
	evOut   = syscall.EPOLLOUT
	evError = syscall.EPOLLERR | syscall.EPOLLHUP
)

// Poller is a set of loops, each with its own epoll instance.
type Poller struct {
	loops  []*loop
	next   atomic.Uint32
	closed atomic.Bool
	wg     sync.WaitGroup
}

type loop struct {
	p     *Poller
	index int
	epfd  int
	wake  [2]int // a pipe: a byte written to wake[1] wakes epoll_wait
	after func(loop int)

	mu     sync.Mutex
	fds    map[int32]*FD
	finals []*FD // closed while polling: one last Readable each
	stop   bool
	// dead: Poller.Close has closed epfd and wake, whose numbers may
	// belong to other files by now; an FD closed later touches neither.
	dead bool
}

// New starts n loops. after, when not nil, is called on a loop's goroutine
// each time it has handled one batch of ready sockets (the server flushes
// the frames the batch routed there).
func New(n int, after func(loop int)) (*Poller, error) {
	if n < 1 {
		return nil, fmt.Errorf("netpoll: %d loops", n)
	}
	p := &Poller{}
	for i := range n {
		l, err := newLoop(p, i, after)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.loops = append(p.loops, l)
	}
	for _, l := range p.loops {
		p.wg.Add(1)
		go l.run()
	}
	return p, nil
}

func newLoop(p *Poller, i int, after func(int)) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	l := &loop{p: p, index: i, epfd: epfd, after: after, fds: map[int32]*FD{}}
	if err := syscall.Pipe2(l.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("netpoll: pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.wake[0], &ev); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	return l, nil
}

func (l *loop) closeFDs() {
	syscall.Close(l.wake[0])
	syscall.Close(l.wake[1])
	syscall.Close(l.epfd)
}

// Loops is the number of loops.
func (p *Poller) Loops() int { return len(p.loops) }

// Close stops the loops once they finish their current batch. Connections
// still adopted are not closed (the caller closes them first).
func (p *Poller) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	for _, l := range p.loops {
		l.mu.Lock()
		l.stop = true
		l.mu.Unlock()
		l.wakeUp()
	}
	p.wg.Wait()
	for _, l := range p.loops {
		l.mu.Lock()
		l.dead = true
		l.closeFDs()
		l.mu.Unlock()
	}
	return nil
}

func (l *loop) wakeUp() {
	b := [1]byte{1}
	_, _ = syscall.Write(l.wake[1], b[:])
}

func (l *loop) run() {
	defer l.p.wg.Done()
	events := make([]syscall.EpollEvent, 128)
	var finals []*FD
	for {
		n, err := syscall.EpollWait(l.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		woken := false
		for i := range n {
			fd := events[i].Fd
			if fd == int32(l.wake[0]) {
				woken = true
				continue
			}
			l.mu.Lock()
			f := l.fds[fd]
			l.mu.Unlock()
			if f != nil {
				f.event(events[i].Events)
			}
		}
		if woken {
			var b [64]byte
			for {
				if n, _ := syscall.Read(l.wake[0], b[:]); n <= 0 {
					break
				}
			}
			l.mu.Lock()
			finals, l.finals = l.finals, finals[:0]
			stop := l.stop
			l.mu.Unlock()
			for i, f := range finals {
				// Unless Readable handed the FD to a goroutine meanwhile
				// (which then meets the close itself).
				f.st.Lock()
				polling := f.polling
				f.st.Unlock()
				if polling {
					f.h.Readable()
				}
				finals[i] = nil
			}
			if stop {
				return
			}
		}
		if l.after != nil {
			l.after(l.index)
		}
	}
}

// FD is an adopted connection. It is a net.Conn whose Read and Write wait
// through the poller; deadlines are not supported.
type FD struct {
	l            *loop
	fd           int
	h            Handler
	laddr, raddr net.Addr

	// mu is held for reading around every system call on fd (and every
	// epoll_ctl), and for writing by Close, which closes fd only once
	// none is in progress.
	mu     sync.RWMutex
	closed bool

	// rmu and wmu let one Read and one Write at a time wait on rch and
	// wch, which wake one waiter: a second one would sleep through the
	// wake-up (and through Close's) and never return. They also keep
	// concurrent Writes from interleaving their bytes, as net.Conn does.
	rmu sync.Mutex
	wmu sync.Mutex

	st      sync.Mutex // what the loop waits for on fd's behalf
	polling bool       // call h.Readable when readable
	rwait   bool       // a Read waits
	wwait   bool       // a Write waits
	mask    uint32     // registered events; 0: not registered
	rch     chan struct{}
	wch     chan struct{}
}

// Adopt takes tc over: its descriptor is duplicated, tc is closed (which
// removes the socket from the Go runtime's poller), and the duplicate is
// read through one of p's loops. The FD starts not polling: call Poll.
func (p *Poller) Adopt(tc *net.TCPConn, h Handler) (*FD, error) {
	if p.closed.Load() {
		return nil, net.ErrClosed
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netpoll: %w", err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		nfd = int(r)
	}); err != nil {
		return nil, fmt.Errorf("netpoll: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("netpoll: dup: %w", derr)
	}
	// The duplicate shares the socket's file status flags: it is already
	// non-blocking.
	l := p.loops[int(p.next.Add(1))%len(p.loops)]
	f := &FD{l: l, fd: nfd, h: h, laddr: tc.LocalAddr(), raddr: tc.RemoteAddr(),
		rch: make(chan struct{}, 1), wch: make(chan struct{}, 1)}
	_ = tc.Close()
	l.mu.Lock()
	l.fds[int32(nfd)] = f
	l.mu.Unlock()
	return f, nil
}

// Loop is the index of the loop f is read through.
func (f *FD) Loop() int { return f.l.index }

// apply registers the events f needs (f.st held, f.mu held for reading or
// writing, f not closed).
func (f *FD) apply() error {
	var want uint32
	if f.polling || f.rwait {
		want |= evIn
	}
	if f.wwait {
		want |= evOut
	}
	if want == f.mask {
		return nil
	}
	op := syscall.EPOLL_CTL_MOD
	switch {
	case f.mask == 0:
		op = syscall.EPOLL_CTL_ADD
	case want == 0:
		// Removed rather than left with no events: epoll reports errors
		// and hang-ups whatever the mask, and a level-triggered one would
		// then be reported on every wait.
		op = syscall.EPOLL_CTL_DEL
	}
	l := f.l
	l.mu.Lock()
	var err error
	if l.dead {
		// The poller is closed: its epoll number may be another file's.
		err = net.ErrClosed
	} else {
		ev := syscall.EpollEvent{Events: want, Fd: int32(f.fd)}
		err = syscall.EpollCtl(l.epfd, op, f.fd, &ev)
	}
	l.mu.Unlock()
	if err != nil {
		// The system's epoll watch limit (ENOSPC), memory, or a closed
		// poller: nothing will wake a waiter, so it must not wait.
		return fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	f.mask = want
	return nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// event handles what epoll reported for f (on the loop).
func (f *FD) event(ev uint32) {
	f.mu.RLock()
	if f.closed {
		f.mu.RUnlock()
		return
	}
	f.st.Lock()
	readable := false
	if ev&(evIn|evError) != 0 {
		if f.polling {
			readable = true
		} else if f.rwait {
			f.rwait = false
			signal(f.rch)
		}
	}
	if ev&(evOut|evError) != 0 && f.wwait {
		f.wwait = false
		signal(f.wch)
	}
	_ = f.apply() // fewer events: only a broken descriptor fails that
	f.st.Unlock()
	f.mu.RUnlock()
	if readable {
		f.h.Readable()
	}
}

// Poll makes the loop call Readable whenever f is readable, from now on:
// the caller must not read f any more. It fails once f or its poller is
// closed (a closed poller's epoll descriptor may be another file's by now).
func (f *FD) Poll() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed || f.l.p.closed.Load() {
		return net.ErrClosed
	}
	f.st.Lock()
	defer f.st.Unlock()
	f.polling = true
	if err := f.apply(); err != nil {
		f.polling = false // the caller goes on reading f itself
		return err
	}
	return nil
}

// Unpoll stops the calls to Readable (made from Readable itself, or by
// whoever knows the loop is not in it): the caller reads f from now on.
func (f *FD) Unpoll() {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.st.Lock()
	f.polling = false
	if !f.closed {
		_ = f.apply() // fewer events: only a broken descriptor fails that
	}
	f.st.Unlock()
}

// ReadNow makes one read system call: ErrWouldBlock when the socket is
// empty, io.EOF when the peer closed its side.
func (f *FD) ReadNow(p []byte) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, net.ErrClosed
	}
	return f.read(p)
}

func (f *FD) read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(f.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, ErrWouldBlock
		case err != nil:
			return 0, &net.OpError{Op: "read", Net: "tcp", Source: f.laddr, Addr: f.raddr, Err: err}
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Read reads into p, waiting until the socket is readable (f not polling).
// Concurrent Reads take turns.
func (f *FD) Read(p []byte) (int, error) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	for {
		f.mu.RLock()
		if f.closed {
			f.mu.RUnlock()
			return 0, net.ErrClosed
		}
		n, err := f.read(p)
		if err != ErrWouldBlock {
			f.mu.RUnlock()
			return n, err
		}
		f.st.Lock()
		f.rwait = true
		if err := f.apply(); err != nil {
			f.rwait = false
			f.st.Unlock()
			f.mu.RUnlock()
			return 0, err
		}
		f.st.Unlock()
		f.mu.RUnlock()
		<-f.rch
	}
}

// WriteNonblock makes one write system call: it returns how much the
// socket took, and syscall.EAGAIN when it took less than p because it is
// full. While a Write is in progress it writes nothing and returns
// syscall.EAGAIN, rather than wait for that Write or put its bytes among
// the Write's.
func (f *FD) WriteNonblock(p []byte) (int, error) {
	if !f.wmu.TryLock() {
		return 0, syscall.EAGAIN
	}
	defer f.wmu.Unlock()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, net.ErrClosed
	}
	n, err := f.write(p)
	if err == nil && n < len(p) {
		err = syscall.EAGAIN
	}
	return n, err
}

func (f *FD) write(p []byte) (int, error) {
	for {
		n, err := syscall.Write(f.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, &net.OpError{Op: "write", Net: "tcp", Source: f.laddr, Addr: f.raddr, Err: err}
		}
		return n, nil
	}
}

// Write writes all of p, waiting while the socket is full. Concurrent
// Writes take turns, each writing all its bytes before the next.
func (f *FD) Write(p []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	done := 0
	for done < len(p) {
		f.mu.RLock()
		if f.closed {
			f.mu.RUnlock()
			return done, net.ErrClosed
		}
		n, err := f.write(p[done:])
		done += n
		if err != nil || done == len(p) {
			f.mu.RUnlock()
			return done, err
		}
		if n > 0 {
			f.mu.RUnlock()
			continue
		}
		f.st.Lock()
		f.wwait = true
		if err := f.apply(); err != nil {
			f.wwait = false
			f.st.Unlock()
			f.mu.RUnlock()
			return done, err
		}
		f.st.Unlock()
		f.mu.RUnlock()
		<-f.wch
	}
	return done, nil
}

// Close closes the socket once no system call on it is in progress, and
// wakes every waiting Read and Write. A polling FD gets one more Readable
// from its loop.
func (f *FD) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.st.Lock()
	registered := f.mask != 0
	f.mask = 0
	polling := f.polling
	f.rwait, f.wwait = false, false
	f.st.Unlock()
	signal(f.rch)
	signal(f.wch)
	l := f.l
	l.mu.Lock()
	if registered && !l.dead {
		_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, f.fd, &syscall.EpollEvent{})
	}
	if l.fds[int32(f.fd)] == f {
		delete(l.fds, int32(f.fd))
	}
	polling = polling && !l.dead // no loop is left to call Readable
	if polling {
		l.finals = append(l.finals, f)
	}
	l.mu.Unlock()
	err := syscall.Close(f.fd)
	f.mu.Unlock()
	if polling {
		// Under l.mu, so that Poller.Close cannot close the pipe
		// between the check and the write.
		l.mu.Lock()
		if !l.dead {
			l.wakeUp()
		}
		l.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("netpoll: close: %w", err)
	}
	return nil
}

// LocalAddr is the socket's local address.
func (f *FD) LocalAddr() net.Addr { return f.laddr }

// RemoteAddr is the peer's address.
func (f *FD) RemoteAddr() net.Addr { return f.raddr }

var errNoDeadlines = errors.New("netpoll: deadlines are not supported")

// SetDeadline is not supported.
func (f *FD) SetDeadline(time.Time) error { return errNoDeadlines }

// SetReadDeadline is not supported.
func (f *FD) SetReadDeadline(time.Time) error { return errNoDeadlines }

// SetWriteDeadline is not supported.
func (f *FD) SetWriteDeadline(time.Time) error { return errNoDeadlines }
