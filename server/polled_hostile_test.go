package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/server"
)

// Websocket connections over TCP are read by the server's poller loops
// (server/polled.go), which hand a connection to a goroutine for anything
// that may wait. These tests drive that hand-off the way a hostile client
// can: by mixing what the loop reads with what it cannot.

// rawFrame is a masked client frame (zero key: the payload is sent as is).
func rawFrame(b0 byte, payload []byte) []byte {
	var h []byte
	switch n := len(payload); {
	case n < 126:
		h = []byte{b0, 0x80 | byte(n)}
	case n < 1<<16:
		h = binary.BigEndian.AppendUint16([]byte{b0, 0x80 | 126}, uint16(n))
	default:
		h = binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, uint64(n))
	}
	return append(append(h, 0, 0, 0, 0), payload...)
}

func routed(t *testing.T, to string, extra map[string]any) []byte {
	t.Helper()
	msg, err := wire.Encode(map[string]any{"type": "method", "to": to, "method": "x.y"}, extra)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestHostilePolledHandOffOrder: a client interleaves messages the loop
// routes with everything it hands to a goroutine (websocket pings, text
// messages, fragmented messages, messages over 64 KiB), in one write or
// frame by frame. Every routed message reaches its peer once and in order,
// and every text ping is answered.
func TestHostilePolledHandOffOrder(t *testing.T) {
	for _, oneWrite := range []bool{true, false} {
		t.Run(fmt.Sprintf("oneWrite=%v", oneWrite), func(t *testing.T) {
			s := testserver.Start(t, server.Config{})
			reader := rootRaw(t, s, "reader")
			sender := rootRaw(t, s, "sender")
			const n = 300
			var stream []byte
			textPings := 0
			blob := bytes.Repeat([]byte{'b'}, 70<<10)
			for i := range n {
				extra := map[string]any{"seq": i}
				if i%11 == 0 {
					extra["blob"] = blob // a frame over 64 KiB
				}
				msg := routed(t, "reader", extra)
				switch {
				case i%7 == 0: // fragmented
					half := len(msg) / 2
					stream = append(stream, rawFrame(0x02, msg[:half])...)
					stream = append(stream, rawFrame(0x89, []byte("between"))...)
					stream = append(stream, rawFrame(0x80, msg[half:])...)
				default:
					stream = append(stream, rawFrame(0x82, msg)...)
				}
				if i%3 == 0 {
					stream = append(stream, rawFrame(0x89, []byte("p"))...)
				}
				if i%5 == 0 {
					stream = append(stream, rawFrame(0x81, []byte(`{"type":"ping"}`))...)
					textPings++
				}
			}
			go func() {
				if oneWrite {
					_, _ = sender.Net.Write(stream)
					return
				}
				for len(stream) > 0 { // frame by frame, roughly
					k := min(len(stream), 97)
					if _, err := sender.Net.Write(stream[:k]); err != nil {
						return
					}
					stream = stream[k:]
				}
			}()
			rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for i := range n {
				f, err := reader.Read(rctx)
				if err != nil {
					t.Fatalf("routed message %d of %d did not arrive: %v", i, n, err)
				}
				if got := fmt.Sprint(f.Extra["seq"]); got != fmt.Sprint(i) {
					t.Fatalf("routed message %d arrived as seq %s", i, got)
				}
			}
			pongs := 0
			for pongs < textPings {
				typ, data, err := sender.C.Read(rctx)
				if err != nil {
					t.Fatalf("%d of %d text pings answered: %v", pongs, textPings, err)
				}
				if typ == websocket.MessageText && strings.Contains(string(data), `"pong"`) {
					pongs++
				}
			}
		})
	}
}

// disconnectObserver reports the client ids that disconnect.
func disconnectObserver(t *testing.T, s *server.Server) <-chan string {
	ch := make(chan string, 64)
	off := s.Observe(func(ws, typ string, data map[string]any) {
		if typ == "client_disconnected" {
			select {
			case ch <- fmt.Sprint(data["id"]):
			default:
			}
		}
	})
	t.Cleanup(off)
	return ch
}

func waitDisconnect(t *testing.T, ch <-chan string, id string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case got := <-ch:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("the server did not notice that %s went away", id)
		}
	}
}

// TestHostilePolledDisconnectMidMessage: a client that goes away in the
// middle of a frame, of a fragmented message, of a large frame, or right
// after a control frame is noticed (its services and id go), and what it
// sent whole before is routed.
func TestHostilePolledDisconnectMidMessage(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	gone := disconnectObserver(t, s)
	reader := rootRaw(t, s, "reader")
	for i, tc := range []struct {
		name string
		tail func(msg []byte) []byte
	}{
		{"mid-header", func([]byte) []byte { return []byte{0x82} }},
		{"mid-frame", func(msg []byte) []byte { return rawFrame(0x82, msg)[:len(msg)/2] }},
		{"mid-fragmented", func(msg []byte) []byte { return rawFrame(0x02, msg) }},
		{"mid-large-frame", func([]byte) []byte { return rawFrame(0x82, make([]byte, 100<<10))[:50<<10] }},
		{"after-ping", func([]byte) []byte { return rawFrame(0x89, nil) }},
		{"after-text", func([]byte) []byte { return rawFrame(0x81, []byte(`{"type":"nothing"}`)) }},
		{"mid-close", func([]byte) []byte { return rawFrame(0x88, []byte{3, 232})[:3] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("leaver%d", i)
			c := rootRaw(t, s, id)
			msg := routed(t, "reader", map[string]any{"seq": tc.name})
			if _, err := c.Net.Write(append(rawFrame(0x82, msg), tc.tail(msg)...)); err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			f, err := reader.Read(rctx)
			if err != nil || f.Extra["seq"] != tc.name {
				t.Fatalf("the whole message before the cut: %v, %v", f.Extra, err)
			}
			_ = c.Net.Close()
			waitDisconnect(t, gone, id)
		})
	}
}

// TestHostilePolledRateLimitClose: a client over the message rate is
// closed by a goroutine the loop hands it to (the loop never waits for the
// close), with the policy code and the reason.
func TestHostilePolledRateLimitClose(t *testing.T) {
	s := testserver.Start(t, server.Config{MsgRateLimit: 1, MsgBurstLimit: 20})
	gone := disconnectObserver(t, s)
	c := rootRaw(t, s, "flooder")
	var stream []byte
	for i := range 200 {
		stream = append(stream, rawFrame(0x82, routed(t, "nobody", map[string]any{"seq": i}))...)
	}
	go func() { _, _ = c.Net.Write(stream) }()
	cl, err := c.WaitClose(60 * time.Second)
	if err != nil {
		t.Fatalf("the flooder was not closed: %v", err)
	}
	if cl.Code != 1008 || !strings.Contains(cl.Reason, "Rate limit") {
		t.Fatalf("closed with %d %q; want 1008 and the rate limit", cl.Code, cl.Reason)
	}
	waitDisconnect(t, gone, "flooder")
}

// TestHostilePolledCloseWhileReading: clients that keep sending (binary,
// text and pings, so that they move between the loop and goroutines)
// while the server shuts down: Close returns, and every connection ends
// (goleak in TestMain checks that no goroutine is left).
func TestHostilePolledCloseWhileReading(t *testing.T) {
	s := testserver.Start(t, server.Config{MsgRateLimit: 1e6, MsgBurstLimit: 1e6})
	const clients = 6
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range clients {
		c := rootRaw(t, s, fmt.Sprintf("busy%d", i))
		go func() { // drain what the server sends, so that it never waits on us
			for {
				if _, _, err := c.C.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		var chunk []byte
		for k := range 50 {
			chunk = append(chunk, rawFrame(0x82, routed(t, fmt.Sprintf("busy%d", (i+1)%clients), map[string]any{"k": k}))...)
			switch k % 10 {
			case 3:
				chunk = append(chunk, rawFrame(0x89, nil)...)
			case 7:
				chunk = append(chunk, rawFrame(0x81, []byte(`{"type":"ping"}`))...)
			}
		}
		wg.Add(1)
		go func(nc net.Conn) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := nc.Write(chunk); err != nil {
					return
				}
			}
		}(c.Net)
	}
	time.Sleep(200 * time.Millisecond) // let traffic flow; nothing is asserted on time
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(60 * time.Second):
		t.Fatal("Server.Close did not return while clients were sending")
	}
	close(stop)
	wg.Wait()
}

// TestHostileStuckHTTPStreamDoesNotStallLoop: a loop never waits for a
// peer. An HTTP stream client (GET /rpc) that stops reading makes every
// write to it block until the idle sweep cuts it (30 s); a websocket
// client sending it frames the loop reads must not hold the loop for that
// long, or every websocket connection the loop reads waits with it. Here
// one loop reads all connections: probes between two other clients must
// keep arriving while the pusher is stuck, before the stream is closed.
func TestHostileStuckHTTPStreamDoesNotStallLoop(t *testing.T) {
	s := testserver.Start(t, server.Config{PollLoops: 1, MsgRateLimit: 1e6, MsgBurstLimit: 1e6})
	gone := disconnectObserver(t, s)
	rs, code, body := openStream(t, s, url.Values{"client_id": {"sleeper"}}, testserver.RootToken)
	if rs == nil {
		t.Fatalf("stream: %d %s", code, body)
	}
	pusher := rootRaw(t, s, "pusher")
	reader := rootRaw(t, s, "reader")
	sender := rootRaw(t, s, "sender")
	// Frames under 64 KiB, which the loop reads and routes itself.
	frame := rawFrame(0x82, routed(t, "sleeper", map[string]any{"p": bytes.Repeat([]byte{7}, 60<<10)}))
	var pushed atomic.Int64
	go func() {
		for {
			if _, err := pusher.Net.Write(frame); err != nil {
				return // closed when the test ends
			}
			pushed.Add(1)
		}
	}()
	// Probe until the pusher has been stuck (the server no longer reads
	// it: its writes to the sleeper wait) for many probes in a row.
	still, last := 0, int64(-1)
	for i := 0; still < 50; i++ {
		if _, err := sender.Net.Write(rawFrame(0x82, routed(t, "reader", map[string]any{"seq": i}))); err != nil {
			t.Fatal(err)
		}
		arrived := make(chan error, 1)
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			f, err := reader.Read(rctx)
			if err == nil && fmt.Sprint(f.Extra["seq"]) != fmt.Sprint(i) {
				err = fmt.Errorf("probe %d arrived as %v", i, f.Extra["seq"])
			}
			arrived <- err
		}()
	wait:
		for {
			select {
			case err := <-arrived:
				if err != nil {
					t.Fatal(err)
				}
				break wait
			case id := <-gone:
				if id == "sleeper" {
					t.Fatalf("probe %d (after %d frames pushed) waited until the stuck stream was closed: the loop waited for it", i, pushed.Load())
				}
			}
		}
		if n := pushed.Load(); n == last && n > 40 {
			still++
		} else {
			still, last = 0, n
		}
	}
}
