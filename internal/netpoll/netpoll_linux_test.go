//go:build linux

package netpoll

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for an event; it is generous because the machine
// running the tests may be loaded. Tests never assert how long something
// took, only that it happened.
const wait = 30 * time.Second

// funcHandler is a Handler calling fn (set before Poll).
type funcHandler struct{ fn func() }

func (h *funcHandler) Readable() { h.fn() }

// newPoller starts a poller of n loops, closed when the test ends.
func newPoller(t *testing.T, n int) *Poller {
	t.Helper()
	p, err := New(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// tcpPair is a connected pair of loopback TCP connections: the server's
// end (to adopt) and the peer's.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		acc <- res{c, err}
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-acc
	if r.err != nil {
		peer.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { peer.Close(); r.c.Close() })
	return r.c.(*net.TCPConn), peer.(*net.TCPConn)
}

// adopt adopts the server end of a new pair into p, with h.
func adopt(t *testing.T, p *Poller, h Handler) (*FD, *net.TCPConn) {
	t.Helper()
	sc, peer := tcpPair(t)
	f, err := p.Adopt(sc, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, peer
}

// waitFor waits until cond holds (checked under f.st), for state the test
// cannot observe otherwise: a Read or Write that has started to wait.
func waitFor(t *testing.T, f *FD, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		f.st.Lock()
		ok := cond()
		f.st.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func recvErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(wait):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// pattern is n bytes that show a reordering or loss: byte i is i*7 mod 251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

// TestReadNowAndReadable: an empty socket reads ErrWouldBlock; bytes the
// peer sends make the loop call Readable, where ReadNow returns them; the
// peer's close is io.EOF.
func TestReadNowAndReadable(t *testing.T) {
	p := newPoller(t, 2)
	type read struct {
		data []byte
		err  error
	}
	reads := make(chan read, 16)
	h := &funcHandler{}
	f, peer := adopt(t, p, h)
	h.fn = func() {
		var b [64]byte
		n, err := f.ReadNow(b[:])
		if errors.Is(err, ErrWouldBlock) {
			return // a level-triggered report already read from
		}
		if err != nil {
			f.Unpoll() // otherwise reported again and again
		}
		reads <- read{append([]byte(nil), b[:n]...), err}
	}
	var b [8]byte
	if n, err := f.ReadNow(b[:]); n != 0 || !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("ReadNow on an empty socket: %d, %v; want ErrWouldBlock", n, err)
	}
	if err := f.Poll(); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"hello", "second"} {
		if _, err := peer.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-reads:
			if r.err != nil || string(r.data) != msg {
				t.Fatalf("Readable read %q, %v; want %q", r.data, r.err, msg)
			}
		case <-time.After(wait):
			t.Fatalf("no Readable after %q was sent", msg)
		}
	}
	peer.Close()
	select {
	case r := <-reads:
		if !errors.Is(r.err, io.EOF) {
			t.Fatalf("after the peer closed, ReadNow returned %q, %v; want io.EOF", r.data, r.err)
		}
	case <-time.After(wait):
		t.Fatal("no Readable after the peer closed")
	}
}

// TestUnpollThenRead: after Unpoll the loop no longer calls Readable, and a
// blocking Read waits (through the loop) for bytes and returns them.
func TestUnpollThenRead(t *testing.T) {
	p := newPoller(t, 1)
	calls := make(chan struct{}, 16)
	f, peer := adopt(t, p, &funcHandler{fn: func() { calls <- struct{}{} }})
	if err := f.Poll(); err != nil {
		t.Fatal(err)
	}
	f.Unpoll()
	got := make(chan error, 1)
	var buf [16]byte
	var n int
	go func() {
		var err error
		n, err = f.Read(buf[:])
		got <- err
	}()
	waitFor(t, f, "Read waits", func() bool { return f.rwait })
	if _, err := peer.Write([]byte("late bytes")); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, got, "Read"); err != nil || string(buf[:n]) != "late bytes" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	select {
	case <-calls:
		t.Fatal("Readable was called after Unpoll")
	default:
	}
}

// TestWriteWaitsForSlowPeer: Write of many MiB to a peer that reads in
// small pieces waits for the socket (EPOLLOUT) as often as needed, and
// every byte arrives, in order.
func TestWriteWaitsForSlowPeer(t *testing.T) {
	p := newPoller(t, 1)
	f, peer := adopt(t, p, &funcHandler{fn: func() {}})
	want := pattern(24 << 20)
	got := make(chan []byte, 1)
	go func() {
		var all bytes.Buffer
		b := make([]byte, 1500)
		for i := 0; ; i++ {
			n, err := peer.Read(b)
			all.Write(b[:n])
			if err != nil {
				break
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // slower than the writer
			}
		}
		got <- all.Bytes()
	}()
	n, err := f.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("Write: %d of %d, %v", n, len(want), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("the peer received %d bytes, not the %d written in order", len(b), len(want))
		}
	case <-time.After(2 * wait):
		t.Fatal("the peer did not receive everything")
	}
}

// fill writes to f without waiting until the socket takes no more (the
// peer does not read): the last WriteNonblock returns EAGAIN with less
// than it was given.
func fill(t *testing.T, f *FD) {
	t.Helper()
	chunk := make([]byte, 1<<20)
	for range 1024 {
		n, err := f.WriteNonblock(chunk)
		if errors.Is(err, syscall.EAGAIN) {
			if n >= len(chunk) {
				t.Fatalf("WriteNonblock returned EAGAIN having written all %d bytes", n)
			}
			return
		}
		if err != nil || n != len(chunk) {
			t.Fatalf("WriteNonblock: %d of %d, %v (want all, or EAGAIN)", n, len(chunk), err)
		}
	}
	t.Fatal("the socket took 1 GiB without the peer reading")
}

// TestWriteNonblockFullSocket: to a peer that does not read, WriteNonblock
// never waits: once the socket is full it returns syscall.EAGAIN with a
// short count, and again (0 bytes) on the next call.
func TestWriteNonblockFullSocket(t *testing.T) {
	p := newPoller(t, 1)
	f, _ := adopt(t, p, &funcHandler{fn: func() {}})
	fill(t, f)
	n, err := f.WriteNonblock([]byte("more"))
	if n != 0 || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("WriteNonblock on a full socket: %d, %v; want 0, EAGAIN", n, err)
	}
}

// TestCloseWakesWaiters: Close while a Read waits for bytes, or while a
// Write waits for a full socket, ends the wait with net.ErrClosed.
func TestCloseWakesWaiters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		op      func(f *FD) error
		waiting func(f *FD) bool
	}{
		{"Read", func(f *FD) error {
			var b [8]byte
			_, err := f.Read(b[:])
			return err
		}, func(f *FD) bool { return f.rwait }},
		{"Write", func(f *FD) error {
			_, err := f.Write(make([]byte, 64<<20))
			return err
		}, func(f *FD) bool { return f.wwait }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPoller(t, 1)
			f, _ := adopt(t, p, &funcHandler{fn: func() {}})
			done := make(chan error, 1)
			go func() { done <- tc.op(f) }()
			waitFor(t, f, tc.name+" waits", func() bool { return tc.waiting(f) })
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := recvErr(t, done, tc.name); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("%s after Close: %v; want net.ErrClosed", tc.name, err)
			}
		})
	}
}

// TestCloseWhilePolling: a polling FD that is closed gets exactly one more
// Readable from its loop, in which ReadNow fails with net.ErrClosed; an FD
// that had stopped polling gets none.
func TestCloseWhilePolling(t *testing.T) {
	for _, unpoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("unpolled=%v", unpoll), func(t *testing.T) {
			p, err := New(1, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			var mu sync.Mutex
			var errs []error
			h := &funcHandler{}
			f, _ := adopt(t, p, h)
			h.fn = func() {
				var b [8]byte
				_, err := f.ReadNow(b[:])
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			if err := f.Poll(); err != nil {
				t.Fatal(err)
			}
			if unpoll {
				f.Unpoll()
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Poll(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Poll after Close: %v", err)
			}
			if !unpoll {
				deadline := time.Now().Add(wait)
				for {
					mu.Lock()
					n := len(errs)
					mu.Unlock()
					if n > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("no Readable after Close")
					}
					time.Sleep(time.Millisecond)
				}
			}
			// Poller.Close waits for the loop: any other call would
			// have been made by then.
			p.Close()
			mu.Lock()
			defer mu.Unlock()
			want := 1
			if unpoll {
				want = 0
			}
			if len(errs) != want {
				t.Fatalf("%d Readable calls after Close (%v); want %d", len(errs), errs, want)
			}
			if want == 1 && !errors.Is(errs[0], net.ErrClosed) {
				t.Fatalf("ReadNow in the final Readable: %v; want net.ErrClosed", errs[0])
			}
		})
	}
}

// fdTarget is what /proc says descriptor n of this process is.
func fdTarget(n int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", n))
	return s
}

// TestHostileDescriptorReuse: once an FD is closed its descriptor number
// may be given to the next connection. Nothing done through the old FD may
// reach the new connection: every operation fails with net.ErrClosed, and
// the new connection's peer receives only its own bytes.
func TestHostileDescriptorReuse(t *testing.T) {
	p := newPoller(t, 1)
	a, aPeer := adopt(t, p, &funcHandler{fn: func() {}})
	// B's connection exists before A closes, so that the duplicate made
	// by Adopt takes the lowest free number: A's.
	bConn, bPeer := tcpPair(t)
	aNum, aWas := a.fd, fdTarget(a.fd)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := p.Adopt(bConn, &funcHandler{fn: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.fd == aNum {
		if now := fdTarget(aNum); now == aWas {
			t.Fatalf("descriptor %d still names A's socket %s", aNum, now)
		}
	} else {
		t.Logf("B got descriptor %d, not A's %d: the operations are checked anyway", b.fd, aNum)
	}
	if err := b.Poll(); err != nil {
		t.Fatal(err)
	}
	secret := []byte("A's bytes")
	var buf [64]byte
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"WriteNonblock", func() error { _, err := a.WriteNonblock(secret); return err }},
		{"Write", func() error { _, err := a.Write(secret); return err }},
		{"ReadNow", func() error { _, err := a.ReadNow(buf[:]); return err }},
		{"Read", func() error { _, err := a.Read(buf[:]); return err }},
		{"Poll", func() error { return a.Poll() }},
	} {
		if err := op.do(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s on the closed FD: %v; want net.ErrClosed", op.name, err)
		}
	}
	a.Unpoll() // nothing to check but that it does not touch B
	if err := a.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	// B's peer must receive B's bytes and nothing else; A's peer nothing.
	if _, err := b.Write([]byte("B")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	got, err := io.ReadAll(bPeer)
	if err != nil || string(got) != "B" {
		t.Fatalf("B's peer received %q, %v; want only \"B\"", got, err)
	}
	got, err = io.ReadAll(aPeer)
	if err != nil || len(got) != 0 {
		t.Fatalf("A's peer received %q, %v; want nothing", got, err)
	}
}

// TestConcurrentWritesAndClose: many goroutines write (waiting and not
// waiting) to one FD whose peer reads slowly, while another closes it:
// every call returns (with net.ErrClosed or EAGAIN once closed or full),
// and no write is stuck. Run with -race.
func TestConcurrentWritesAndClose(t *testing.T) {
	p := newPoller(t, 2)
	for round := range 20 {
		f, peer := adopt(t, p, &funcHandler{fn: func() {}})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			b := make([]byte, 4096)
			for {
				if _, err := peer.Read(b); err != nil {
					return
				}
				if round%2 == 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}()
		const writers = 8
		errs := make(chan error, writers)
		for w := range writers {
			go func() {
				b := make([]byte, 256<<10)
				for {
					var err error
					if w%2 == 0 {
						_, err = f.Write(b)
					} else {
						_, err = f.WriteNonblock(b)
						if errors.Is(err, syscall.EAGAIN) {
							err = nil
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		if round%2 == 1 {
			// Let the writers fill the socket and wait.
			waitFor(t, f, "a Write waits", func() bool { return f.wwait })
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		for range writers {
			if err := recvErr(t, errs, fmt.Sprintf("round %d: a writer", round)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("round %d: a writer ended with %v; want net.ErrClosed", round, err)
			}
		}
		peer.Close()
		<-readDone
	}
}

// TestConcurrentReadsAndClose: several goroutines waiting in Read on one
// FD all return when it is closed.
func TestConcurrentReadsAndClose(t *testing.T) {
	p := newPoller(t, 1)
	f, _ := adopt(t, p, &funcHandler{fn: func() {}})
	const readers = 4
	errs := make(chan error, readers)
	for range readers {
		go func() {
			var b [8]byte
			_, err := f.Read(b[:])
			errs <- err
		}()
	}
	waitFor(t, f, "a Read waits", func() bool { return f.rwait })
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for range readers {
		if err := recvErr(t, errs, "a Read"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v; want net.ErrClosed", err)
		}
	}
}

// TestPollerClose: Close ends every loop's goroutine (and calls after
// Close are refused).
func TestPollerClose(t *testing.T) {
	before := goleak.IgnoreCurrent()
	p, err := New(3, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	if p.Loops() != 3 {
		t.Fatalf("Loops() = %d", p.Loops())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	goleak.VerifyNone(t, before)
	sc, _ := tcpPair(t)
	if _, err := p.Adopt(sc, &funcHandler{fn: func() {}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Adopt after Close: %v; want net.ErrClosed", err)
	}
	if _, err := New(0, nil); err == nil {
		t.Fatal("New(0) made a poller")
	}
}

// TestHostileCloseAfterPollerClose: an FD closed after its poller (against
// Poller.Close's advice, as a timer closing a connection late might) must
// not touch the descriptors the poller had: their numbers may belong to
// something else by then. Here socket pairs take the numbers the poller
// freed; none may receive anything.
func TestHostileCloseAfterPollerClose(t *testing.T) {
	p, err := New(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := adopt(t, p, &funcHandler{fn: func() {}})
	if err := f.Poll(); err != nil {
		t.Fatal(err)
	}
	l := p.loops[0]
	wake := l.wake[1]
	p.Close()
	// Take the freed numbers (the lowest free ones) with socket pairs,
	// whose ends both read what was written to the other.
	var pairs [][2]int
	defer func() {
		for _, sp := range pairs {
			syscall.Close(sp[0])
			syscall.Close(sp[1])
		}
	}()
	taken := false
	for range 2 {
		sp, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, sp)
		taken = taken || sp[0] == wake || sp[1] == wake
	}
	if !taken {
		t.Logf("no socket took the poller's old number %d: checked anyway", wake)
	}
	if err := f.Poll(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Poll after Poller.Close: %v; want net.ErrClosed", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, sp := range pairs {
		for _, fd := range sp {
			var b [8]byte
			if n, _ := syscall.Read(fd, b[:]); n > 0 {
				t.Fatalf("a socket that took a number of the closed poller received %q from FD.Close", b[:n])
			}
		}
	}
}
