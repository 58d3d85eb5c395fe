package wsconn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers every data message with the same message until the
// connection ends; the error that ended it goes to errs.
func echoServer(t *testing.T, limit int64) (url string, errs chan error) {
	t.Helper()
	errs = make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, limit)
		if err != nil {
			return
		}
		for {
			op, data, err := c.Read()
			if err != nil {
				errs <- err
				return
			}
			if string(data) == "close-me" {
				c.Close(4001, "asked to")
				continue
			}
			if err := c.Write(context.Background(), op, data); err != nil {
				errs <- err
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), errs
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(64 << 20)
	return c
}

// A real websocket client: text and binary messages of every header size
// come back whole, pings are answered, and a normal close reaches the
// server as a CloseError with the client's code.
func TestEchoWithRealClient(t *testing.T) {
	url, errs := echoServer(t, 8<<20)
	c := dial(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 200_000, 4 << 20} {
		msg := bytes.Repeat([]byte{byte(n), 7, 9}, n/3+1)[:n]
		for _, typ := range []websocket.MessageType{websocket.MessageBinary, websocket.MessageText} {
			if err := c.Write(ctx, typ, msg); err != nil {
				t.Fatal(err)
			}
			gt, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if gt != typ || !bytes.Equal(got, msg) {
				t.Fatalf("%d bytes (%v): got %d bytes (%v)", n, typ, len(got), gt)
			}
		}
	}
	// Ping needs a concurrent reader on the client side.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_, _, _ = c.Read(ctx)
	}()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	<-readDone
	var ce *CloseError
	if err := <-errs; !errors.As(err, &ce) || ce.Code != 1000 || ce.Reason != "bye" {
		t.Fatalf("server saw %v; want a close 1000 bye", err)
	}
}

// A close from the server reaches the client with its code and reason.
func TestServerClose(t *testing.T) {
	url, errs := echoServer(t, 1<<20)
	c := dial(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("close-me")); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != 4001 {
		t.Fatalf("client read %v; want close 4001", err)
	}
	if err := <-errs; err == nil {
		t.Fatal("server read went on after its close")
	}
}

// TestHostileOversizedMessage: a message over the limit, whole or in
// fragments, is refused with 1009 before it is read.
func TestHostileOversizedMessage(t *testing.T) {
	url, errs := echoServer(t, 1000)
	for _, frags := range []int{1, 3} {
		c := dial(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		w, err := c.Writer(ctx, websocket.MessageBinary)
		if err != nil {
			t.Fatal(err)
		}
		for range frags {
			_, _ = w.Write(make([]byte, 1200/frags)) // each Write of a Writer is a frame
		}
		_ = w.Close()
		_, _, err = c.Read(ctx)
		if websocket.CloseStatus(err) != CloseTooBig {
			t.Fatalf("%d fragments: client read %v; want close 1009", frags, err)
		}
		if err := <-errs; !errors.Is(err, ErrTooBig) {
			t.Fatalf("server read %v", err)
		}
		cancel()
		c.CloseNow()
	}
}

// rawConn performs the upgrade by hand, for frames no library would send.
func rawConn(t *testing.T, url string) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455's example
		t.Fatalf("upgrade answered %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return nc, br
}

// readClose reads server frames until a close frame and returns its code.
func readClose(t *testing.T, br *bufio.Reader) int {
	t.Helper()
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			_, _ = io.ReadFull(br, b[:])
			n = int(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, _ = io.ReadFull(br, b[:])
			n = int(binary.BigEndian.Uint64(b[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		if h[0]&0x0f == OpClose && n >= 2 {
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// TestHostileFrames: frames that break the protocol close the connection
// with 1002, and a header claiming 4 GiB is refused (1009) without
// allocating it.
func TestHostileFrames(t *testing.T) {
	url, errs := echoServer(t, 1<<20)
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
		want  error
	}{
		{"unmasked", []byte{0x82, 0x01, 'x'}, CloseProtocol, ErrProtocol},
		{"reserved bits", []byte{0xC2, 0x80, 0, 0, 0, 0}, CloseProtocol, ErrProtocol},
		{"unknown opcode", []byte{0x83, 0x80, 0, 0, 0, 0}, CloseProtocol, ErrProtocol},
		{"lone continuation", []byte{0x80, 0x80, 0, 0, 0, 0}, CloseProtocol, ErrProtocol},
		{"fragmented ping", []byte{0x09, 0x80, 0, 0, 0, 0}, CloseProtocol, ErrProtocol},
		{"new message inside a fragmented one", []byte{0x02, 0x80, 0, 0, 0, 0, 0x82, 0x80, 0, 0, 0, 0}, CloseProtocol, ErrProtocol},
		{"4 GiB claim", []byte{0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, CloseTooBig, ErrTooBig},
		{"one-byte close", []byte{0x88, 0x81, 0, 0, 0, 0, 1}, CloseProtocol, ErrProtocol},
		{"long ping", []byte{0x89, 0xFE, 0x00, 0x7E, 0, 0, 0, 0}, CloseProtocol, ErrProtocol},
		{"length with the high bit set", []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, CloseProtocol, ErrProtocol},
		{"fragments adding up past the limit", fragmentsPast(600000), CloseTooBig, ErrTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := rawConn(t, url)
			if _, err := nc.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			if code := readClose(t, br); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			if err := <-errs; !errors.Is(err, tc.want) {
				t.Fatalf("server read %v, want %v", err, tc.want)
			}
		})
	}
}

// fragmentsPast is a first fragment of n zero bytes followed by the header
// of a continuation claiming n more: together over the 1 MiB limit of
// echoServer, although each is under it.
func fragmentsPast(n int) []byte {
	hdr := func(b0 byte) []byte {
		h := []byte{b0, 0xFF}
		h = binary.BigEndian.AppendUint64(h, uint64(n))
		return append(h, 0, 0, 0, 0)
	}
	b := append(hdr(0x02), make([]byte, n)...)
	return append(b, hdr(0x80)...)
}

// TestHostileHandshakes: requests that are not websocket upgrades get an
// HTTP error, not a connection.
func TestHostileHandshakes(t *testing.T) {
	url, _ := echoServer(t, 1<<20)
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"plain GET", nil},
		{"no key", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}},
		{"short key", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "c2hvcnQ="}},
		{"version 8", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}},
	} {
		req, _ := http.NewRequest(http.MethodGet, httpURL, nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("%s: status %s, want an error", tc.name, resp.Status)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestMask(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	b := bytes.Repeat([]byte("abcdefghijk"), 5)
	want := append([]byte(nil), b...)
	for i := range want {
		want[i] ^= key[i&3]
	}
	// In pieces of odd sizes, as fragments of one payload are unmasked.
	pos := 0
	for _, n := range []int{3, 9, 1, 20, len(b) - 33} {
		pos = mask(key, pos, b[pos:pos+n])
	}
	if !bytes.Equal(b, want) {
		t.Fatal("masking in pieces differs from masking at once")
	}
}

// A frame sent in the same packet as the upgrade request (read by the
// HTTP server along with it) is not lost.
func TestFrameBehindUpgradeRequest(t *testing.T) {
	url, _ := echoServer(t, 1<<20)
	addr := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	frame := []byte{0x82, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}
	if _, err := nc.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v", err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{0x82, 2, 'h', 'i'}) {
		t.Fatalf("echo %x, want 8202 'hi'", got)
	}
}

// TestReturnAfterControl: with ReturnAfterControl, Read answers a ping and
// returns op 0 when nothing else is buffered (a poller's goroutine then
// gives the connection back instead of waiting for the next message); a
// message that follows the ping in the buffer is still returned by the same
// Read, and without the setting Read waits for the message.
func TestReturnAfterControl(t *testing.T) {
	type result struct {
		op   byte
		data []byte
		err  error
	}
	for _, returns := range []bool{true, false} {
		results := make(chan result, 4)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := Accept(w, r, 1<<20)
			if err != nil {
				return
			}
			if returns {
				c.ReturnAfterControl()
			}
			for {
				op, data, err := c.Read()
				results <- result{op, data, err}
				if err != nil {
					return
				}
			}
		}))
		url := "ws" + strings.TrimPrefix(srv.URL, "http")
		c := dial(t, url)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		readerDone := c.CloseRead(ctx) // reads the pongs
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		if returns {
			r := <-results
			if r.op != 0 || r.data != nil || r.err != nil {
				t.Fatalf("after a ping: Read returned %d %q %v, want 0, nil, nil", r.op, r.data, r.err)
			}
		}
		if err := c.Write(ctx, websocket.MessageBinary, []byte("after")); err != nil {
			t.Fatal(err)
		}
		r := <-results
		if r.op != OpBinary || string(r.data) != "after" || r.err != nil {
			t.Fatalf("returns=%v: Read returned %d %q %v, want the message", returns, r.op, r.data, r.err)
		}
		c.Close(websocket.StatusNormalClosure, "")
		<-readerDone.Done()
		cancel()
		srv.Close()
	}
}
