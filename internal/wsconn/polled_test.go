//go:build linux

package wsconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/netpoll"
)

// The differential tests below read one stream of client frames twice, on
// real loopback sockets: with plain Read on a goroutine, and the way
// server/polled.go reads an adopted connection (NextPolled on the poller's
// loop until PollWait or PollBlocking, Read on a goroutine for
// PollBlocking, then back to the loop). Both must see the same messages,
// end with the same kind of error, and write the same bytes back (pongs,
// close frames).

const pollWait = 60 * time.Second // generous: the machine may be loaded

// clientFrame is one client frame: masked unless unmasked is set.
func clientFrame(b0 byte, payload []byte, key [4]byte, unmasked bool) []byte {
	n := len(payload)
	var h []byte
	mbit := byte(0x80)
	if unmasked {
		mbit = 0
	}
	switch {
	case n < 126:
		h = []byte{b0, mbit | byte(n)}
	case n < 1<<16:
		h = binary.BigEndian.AppendUint16([]byte{b0, mbit | 126}, uint16(n))
	default:
		h = binary.BigEndian.AppendUint64([]byte{b0, mbit | 127}, uint64(n))
	}
	if unmasked {
		return append(h, payload...)
	}
	h = append(h, key[:]...)
	p := append([]byte(nil), payload...)
	mask(key, 0, p)
	return append(h, p...)
}

// streamGen writes random streams of client frames.
type streamGen struct {
	r     *rand.Rand
	limit int
	out   []byte
}

var frameSizes = []int{0, 1, 2, 125, 126, 127, 1000, 2047, 2048, 2049, 4096,
	60 << 10, 64<<10 - 1, 64 << 10, 64<<10 + 1, 100_000}

func (g *streamGen) payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(g.r.IntN(256))
	}
	return p
}

func (g *streamGen) key() [4]byte {
	return [4]byte{byte(g.r.IntN(256)), byte(g.r.IntN(256)), byte(g.r.IntN(256)), byte(g.r.IntN(256))}
}

func (g *streamGen) add(b0 byte, payload []byte) {
	g.out = append(g.out, clientFrame(b0, payload, g.key(), false)...)
}

// size picks a frame size, mostly small ones (which the loop reads) and
// under the limit.
func (g *streamGen) size() int {
	if g.r.IntN(3) == 0 {
		return g.r.IntN(300)
	}
	n := frameSizes[g.r.IntN(len(frameSizes))]
	if n > g.limit {
		n = g.limit
	}
	return n
}

// stream is n random messages and control frames followed by one ending.
func (g *streamGen) stream(n int) (stream []byte, ending string) {
	g.out = nil
	for range n {
		switch k := g.r.IntN(20); {
		case k < 11:
			g.add(0x80|OpBinary, g.payload(g.size()))
		case k < 14:
			g.add(0x80|OpText, g.payload(g.size()))
		case k < 15:
			g.add(0x80|OpPing, g.payload(g.r.IntN(126)))
		case k < 16:
			g.add(0x80|OpPong, g.payload(g.r.IntN(126)))
		default: // fragmented, maybe with a ping between fragments
			op := byte(OpBinary)
			if g.r.IntN(2) == 0 {
				op = OpText
			}
			total := g.size()
			parts := 1 + g.r.IntN(4)
			for i := range parts {
				chunk := total / parts
				if i == parts-1 {
					chunk = total - chunk*(parts-1)
				}
				b0 := byte(OpContinuation)
				if i == 0 {
					b0 = op
				}
				if i == parts-1 {
					b0 |= 0x80
				}
				g.add(b0, g.payload(chunk))
				if i < parts-1 && g.r.IntN(3) == 0 {
					g.add(0x80|OpPing, g.payload(g.r.IntN(10)))
				}
			}
		}
	}
	endings := []string{"close", "close-empty", "eof", "unmasked", "reserved", "opcode", "too-big", "truncated", "one-byte-close"}
	ending = endings[g.r.IntN(len(endings))]
	switch ending {
	case "close":
		g.add(0x80|OpClose, binary.BigEndian.AppendUint16(nil, 1000))
	case "close-empty":
		g.add(0x80|OpClose, nil)
	case "unmasked":
		g.out = append(g.out, clientFrame(0x80|OpBinary, []byte("x"), [4]byte{}, true)...)
	case "reserved":
		g.add(0xC0|OpBinary, []byte("x"))
	case "opcode":
		g.add(0x83, nil)
	case "too-big":
		g.add(0x80|OpBinary, g.payload(g.limit+1))
	case "truncated":
		f := clientFrame(0x80|OpBinary, g.payload(g.size()+10), g.key(), false)
		g.out = append(g.out, f[:g.r.IntN(len(f))]...)
	case "one-byte-close":
		g.add(0x80|OpClose, []byte{3})
	}
	return g.out, ending
}

// splits cuts stream into the writes a client makes: runs of one-byte
// writes and writes of random sizes, driven by r.
func splits(stream []byte, r func(n int) int) [][]byte {
	var out [][]byte
	for len(stream) > 0 {
		switch r(4) {
		case 0: // a run of one-byte writes
			for range min(1+r(40), len(stream)) {
				out = append(out, stream[:1])
				stream = stream[1:]
			}
		case 1:
			out = append(out, stream)
			stream = nil
		default:
			n := min(1+r(9000), len(stream))
			out = append(out, stream[:n])
			stream = stream[n:]
		}
	}
	return out
}

type message struct {
	op   byte
	data []byte
}

// result is what the server end saw and wrote back.
type result struct {
	msgs  []message
	err   error
	wrote []byte // what the client received, when it read to a clean end
}

func errKind(err error) string {
	var ce *CloseError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d", ce.Code)
	case errors.Is(err, ErrProtocol):
		return "protocol"
	case errors.Is(err, ErrTooBig):
		return "too big"
	case errors.Is(err, io.EOF):
		return "eof"
	}
	return "other: " + err.Error()
}

// loopbackPair is a connected pair of loopback TCP connections: the
// server's end and the client's.
func loopbackPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-acc
	if server == nil {
		client.Close()
		t.Fatal("accept failed")
	}
	return server.(*net.TCPConn), client.(*net.TCPConn)
}

// feeder is a client writing pieces and collecting what the server wrote.
type feeder struct {
	wrote chan []byte
	sent  chan struct{}
}

// feed writes the pieces to the client end, then half-closes it, and
// collects what the server wrote until the server closed.
func feed(client *net.TCPConn, pieces [][]byte) feeder {
	fe := feeder{wrote: make(chan []byte, 1), sent: make(chan struct{})}
	go func() {
		b, err := io.ReadAll(client)
		if err != nil {
			b = nil // a reset lost part of it: not compared
		}
		fe.wrote <- b
	}()
	go func() {
		defer close(fe.sent)
		for _, p := range pieces {
			if _, err := client.Write(p); err != nil {
				break // the server closed after an error
			}
		}
		_ = client.CloseWrite()
	}()
	return fe
}

// collect waits until the server end closed and the client is done.
func collect(t testing.TB, client *net.TCPConn, fe feeder, res *result) {
	t.Helper()
	defer client.Close()
	select {
	case res.wrote = <-fe.wrote:
	case <-time.After(pollWait):
		t.Fatal("the server end did not close")
	}
	client.Close() // ends a write the closed server end did not take
	<-fe.sent
}

// readPlain reads the stream with Read on one goroutine.
func readPlain(t testing.TB, pieces [][]byte, limit int64) result {
	server, client := loopbackPair(t)
	wrote := feed(client, pieces)
	c := newConn(server, nil, limit)
	var res result
	for {
		op, data, err := c.Read()
		if err != nil {
			res.err = err
			break
		}
		res.msgs = append(res.msgs, message{op, data})
	}
	collect(t, client, wrote, &res)
	return res
}

// polledReader reads an adopted connection as server/polled.go does.
type polledReader struct {
	c    *Conn
	fd   *netpoll.FD
	mu   sync.Mutex
	msgs []message
	done chan error
}

func (r *polledReader) add(op byte, data []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, message{op, data})
	r.mu.Unlock()
}

// Readable runs on the loop: messages complete in the buffer are taken
// there; anything else goes to a goroutine.
func (r *polledReader) Readable() {
	reads := 2 // a small budget: bytes left unread are reported again
	for {
		data, st := r.c.NextPolled(&reads)
		switch st {
		case PollWait:
			return
		case PollBlocking:
			r.fd.Unpoll()
			go r.handedOff(true)
			return
		}
		r.add(OpBinary, data)
	}
}

// handedOff reads with Read (at least one message when mustRead) until
// the buffer is empty, then gives the connection back to the loop.
func (r *polledReader) handedOff(mustRead bool) {
	for mustRead || r.c.Buffered() > 0 {
		mustRead = false
		op, data, err := r.c.Read()
		if err != nil {
			r.done <- err
			return
		}
		r.add(op, data)
	}
	if err := r.fd.Poll(); err != nil {
		r.done <- err
	}
}

func readPolled(t testing.TB, p *netpoll.Poller, pieces [][]byte, limit int64) result {
	server, client := loopbackPair(t)
	c := newConn(server, nil, limit)
	r := &polledReader{c: c, done: make(chan error, 1)}
	fd, err := c.Adopt(p, r)
	if err != nil {
		t.Fatal(err)
	}
	r.fd = fd
	wrote := feed(client, pieces)
	r.handedOff(false)
	var res result
	select {
	case res.err = <-r.done:
	case <-time.After(pollWait):
		t.Fatal("the polled read did not end")
	}
	collect(t, client, wrote, &res)
	r.mu.Lock()
	res.msgs = r.msgs
	r.mu.Unlock()
	return res
}

// compare reports how the polled read differs from the plain one.
func compare(plain, polled result) error {
	if len(plain.msgs) != len(polled.msgs) {
		return fmt.Errorf("plain read %d messages, polled %d", len(plain.msgs), len(polled.msgs))
	}
	for i, m := range plain.msgs {
		q := polled.msgs[i]
		if m.op != q.op || !bytes.Equal(m.data, q.data) {
			return fmt.Errorf("message %d: plain op %d, %d bytes; polled op %d, %d bytes", i, m.op, len(m.data), q.op, len(q.data))
		}
	}
	if a, b := errKind(plain.err), errKind(polled.err); a != b {
		return fmt.Errorf("plain read ended with %s (%v), polled with %s (%v)", a, plain.err, b, polled.err)
	}
	if plain.wrote != nil && polled.wrote != nil && !bytes.Equal(plain.wrote, polled.wrote) {
		return fmt.Errorf("the server wrote back %d bytes read plainly, %d polled", len(plain.wrote), len(polled.wrote))
	}
	return nil
}

// TestPolledReadMatchesRead: random streams of client frames (binary and
// text messages of sizes around every header and buffer boundary,
// fragmented messages with pings between fragments, pongs, and an ending:
// a close, EOF, a truncated frame, a protocol error or an oversized
// frame), written in random pieces including runs of one-byte writes, give
// the same messages, the same ending and the same bytes written back
// whether read plainly or polled.
func TestPolledReadMatchesRead(t *testing.T) {
	p, err := netpoll.New(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	seeds := 30
	if testing.Short() {
		seeds = 8
	}
	for _, limit := range []int{1000, 100_000} {
		for seed := range seeds {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(limit)))
			g := &streamGen{r: r, limit: limit}
			stream, ending := g.stream(1 + r.IntN(25))
			pieces := splits(stream, r.IntN)
			plain := readPlain(t, pieces, int64(limit))
			polled := readPolled(t, p, pieces, int64(limit))
			if err := compare(plain, polled); err != nil {
				t.Fatalf("limit %d, seed %d (%d bytes in %d writes, ending %s): %v", limit, seed, len(stream), len(pieces), ending, err)
			}
		}
	}
}

// FuzzNextPolled: any client bytes, written in pieces the fuzzer chooses,
// read polled give what Read gives. Each input costs two loopback
// connections: fuzz with a short -fuzzminimizetime (say 3s), or the
// minimization of every new input stalls the run for a minute.
func FuzzNextPolled(f *testing.F) {
	for seed := range 8 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		g := &streamGen{r: r, limit: 4096}
		stream, _ := g.stream(1 + r.IntN(6))
		if len(stream) > 32<<10 {
			continue
		}
		f.Add(stream, []byte{byte(seed), 1, 0, 200, 3})
	}
	f.Add([]byte{0x82, 0x81, 1, 2, 3, 4, 'x' ^ 1}, []byte{0})
	f.Add([]byte{0x82, 0xFE, 0x01, 0x00, 0, 0, 0, 0}, []byte{1})
	p, err := netpoll.New(1, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	const limit = 4096
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		if len(stream) > 256<<10 {
			return
		}
		i := 0
		next := func(n int) int {
			if len(cuts) == 0 {
				return 0
			}
			v := int(cuts[i%len(cuts)])
			i++
			return v % n
		}
		pieces := splits(stream, next)
		plain := readPlain(t, pieces, limit)
		polled := readPolled(t, p, pieces, limit)
		if err := compare(plain, polled); err != nil {
			t.Fatal(err)
		}
	})
}

// TestHostilePolledHeaderOnly: a header claiming a 60 KiB frame, then
// nothing, makes the polled read buffer room for that frame and no more
// (not the read limit); an oversized frame is handed to Read, which closes
// with 1009.
func TestHostilePolledHeaderOnly(t *testing.T) {
	p, err := netpoll.New(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	server, client := loopbackPair(t)
	defer client.Close()
	c := newConn(server, nil, 32<<20)
	if _, err := c.Adopt(p, &polledReader{}); err != nil { // never polled: NextPolled is called here
		t.Fatal(err)
	}
	defer c.shutdown()
	const n = 60 << 10
	hdr := binary.BigEndian.AppendUint16([]byte{0x80 | OpBinary, 0x80 | 126}, n)
	hdr = append(hdr, 1, 2, 3, 4)
	if _, err := client.Write(append(hdr, 'x')); err != nil {
		t.Fatal(err)
	}
	// Readable would be called once the bytes are there: wait for them
	// with NextPolled itself, as the loop would call it.
	deadline := time.Now().Add(pollWait)
	for c.Buffered() < len(hdr)+1 {
		reads := 1
		if _, st := c.NextPolled(&reads); st != PollWait {
			t.Fatalf("NextPolled on a partial frame: %v, want PollWait", st)
		}
		if time.Now().After(deadline) {
			t.Fatal("the header did not arrive")
		}
		time.Sleep(time.Millisecond)
	}
	// The next readiness report: room is made for the whole frame.
	reads := 1
	if _, st := c.NextPolled(&reads); st != PollWait {
		t.Fatalf("NextPolled on a partial frame: %v, want PollWait", st)
	}
	if got, most := cap(c.rd.buf), 8+n; got > most || got < 8+n {
		t.Fatalf("a header claiming %d bytes made a buffer of %d bytes; want %d", n, got, most)
	}
}

// TestHostilePolledOverLimit: a frame over the read limit (but small
// enough for the loop) is not taken by NextPolled; Read refuses it with
// close code 1009.
func TestHostilePolledOverLimit(t *testing.T) {
	p, err := netpoll.New(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := &streamGen{r: rand.New(rand.NewPCG(1, 2)), limit: 1000}
	g.add(0x80|OpBinary, g.payload(999))
	g.add(0x80|OpBinary, g.payload(1001))
	res := readPolled(t, p, [][]byte{g.out}, 1000)
	if len(res.msgs) != 1 || !errors.Is(res.err, ErrTooBig) {
		t.Fatalf("got %d messages and %v; want 1 and ErrTooBig", len(res.msgs), res.err)
	}
	if res.wrote != nil && readCloseCode(res.wrote) != CloseTooBig {
		t.Fatalf("the server wrote %x; want a close frame with 1009", res.wrote)
	}
}

// readCloseCode is the code of the first close frame in b (server frames,
// unmasked), or 0.
func readCloseCode(b []byte) int {
	for len(b) >= 2 {
		n, h := int(b[1]&0x7f), 2
		switch n {
		case 126:
			if len(b) < 4 {
				return 0
			}
			n, h = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			return 0
		}
		if len(b) < h+n {
			return 0
		}
		if b[0]&0x0f == OpClose && n >= 2 {
			return int(binary.BigEndian.Uint16(b[h:]))
		}
		b = b[h+n:]
	}
	return 0
}
