package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/server"
)

// readPaths are the server's two ways of reading websocket connections:
// poller loops (the default on Linux, one loop here so that every
// connection shares it) and a goroutine per connection.
var readPaths = []struct {
	name  string
	loops int
}{{"loop", 1}, {"goroutines", -1}}

// TestHostileStuckPeerDoesNotStallOthers: a sender floods a peer that never
// reads until the peer's queue is full. On a poller loop the sender's
// frame must not be waited for there (the loop serves every connection):
// the sender is handed to a goroutine, which waits for the stuck peer,
// while the other clients on the same loop keep being served. Once the
// stuck peer goes, the sender is served again, its frames in order.
func TestHostileStuckPeerDoesNotStallOthers(t *testing.T) {
	for _, rp := range readPaths {
		t.Run(rp.name, func(t *testing.T) {
			s := testserver.Start(t, server.Config{PollLoops: rp.loops, MsgRateLimit: 1e6, MsgBurstLimit: 1e6})
			ctx := testserver.Ctx(t)
			stuck := rootRaw(t, s, "stuck") // never reads after its handshake
			sender := rootRaw(t, s, "sender")
			reader := rootRaw(t, s, "reader")
			other := rootRaw(t, s, "other")

			// 64 MiB: more than the stuck peer's queue (8 MiB) and every
			// socket buffer between the sender, the server and the stuck
			// peer can hold, so the sender's routing must stall.
			// Frames of 32 KiB: read on the loop itself (up to 64 KiB).
			big := bytes.Repeat([]byte{'x'}, 32<<10)
			flooded := make(chan struct{})
			go func() {
				defer close(flooded)
				for range 2048 {
					if sender.Send(map[string]any{"type": "method", "to": "stuck", "method": "x.y"},
						map[string]any{"blob": big}) != nil {
						return
					}
				}
				_ = sender.Send(map[string]any{"type": "method", "to": "reader", "method": "x.y"},
					map[string]any{"seq": "after the flood"})
			}()
			if rp.loops > 0 {
				deadline := time.Now().Add(30 * time.Second)
				for s.StalledFrames() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the flood never filled the stuck peer's queue")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			// The other clients, on the same loop, are served meanwhile.
			for i := range 20 {
				if v, err := other.CallManager(ctx, "echo", i); err != nil || fmt.Sprint(v) != fmt.Sprint(i) {
					t.Fatalf("call %d of another client while one peer is stuck: %v, %v", i, v, err)
				}
				if err := other.Send(map[string]any{"type": "method", "to": "reader", "method": "x.y"},
					map[string]any{"seq": i}); err != nil {
					t.Fatal(err)
				}
				f, err := reader.Read(ctx)
				if err != nil || fmt.Sprint(f.Extra["seq"]) != fmt.Sprint(i) {
					t.Fatalf("frame %d from another client while one peer is stuck: %v, %v", i, f.Extra["seq"], err)
				}
			}
			// The stuck peer goes: the sender's delivery fails, and it is
			// served again.
			_ = stuck.C.CloseNow()
			select {
			case <-flooded:
			case <-time.After(60 * time.Second):
				t.Fatal("the sender's flood never finished after the stuck peer left")
			}
			f, err := reader.Read(ctx)
			if err != nil || f.Extra["seq"] != "after the flood" {
				t.Fatalf("the sender's frame after the flood: %v, %v", f.Extra["seq"], err)
			}
			if v, err := sender.CallManager(ctx, "echo", "still served"); err != nil || v != "still served" {
				t.Fatalf("the sender after the stuck peer left: %v, %v", v, err)
			}
		})
	}
}

// TestPolledHandOffsKeepOrder: what a loop does not read itself (a message
// over 64 KiB, a text ping, a ping control frame) is read by a goroutine,
// and the connection goes back to the loop; the frames around them arrive
// in order, each time, and the ping is answered.
func TestPolledHandOffsKeepOrder(t *testing.T) {
	for _, rp := range readPaths {
		t.Run(rp.name, func(t *testing.T) {
			s := testserver.Start(t, server.Config{PollLoops: rp.loops, MsgRateLimit: 1e6, MsgBurstLimit: 1e6})
			ctx := testserver.Ctx(t)
			sender := rootRaw(t, s, "sender")
			reader := rootRaw(t, s, "reader")
			big := bytes.Repeat([]byte{'y'}, 200<<10)
			send := func(seq string, blob []byte) {
				t.Helper()
				extra := map[string]any{"seq": seq}
				if blob != nil {
					extra["blob"] = blob
				}
				if err := sender.Send(map[string]any{"type": "method", "to": "reader", "method": "x.y"}, extra); err != nil {
					t.Fatal(err)
				}
			}
			// The sender's side is read throughout: its text pongs are
			// counted, and its websocket pings need a reader to see the
			// pong control frames.
			pongs := make(chan struct{}, 100)
			go func() {
				for {
					typ, data, err := sender.C.Read(context.Background())
					if err != nil {
						return
					}
					var m map[string]any
					if typ == websocket.MessageText && json.Unmarshal(data, &m) == nil && m["type"] == "pong" {
						pongs <- struct{}{}
					}
				}
			}()
			for round := range 20 {
				send(fmt.Sprint(round, "a"), nil)
				send(fmt.Sprint(round, "big"), big)
				if err := sender.SendText([]byte(`{"type":"ping"}`)); err != nil {
					t.Fatal(err)
				}
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := sender.C.Ping(pctx) // a control frame
				cancel()
				if err != nil {
					t.Fatalf("round %d: websocket ping: %v", round, err)
				}
				send(fmt.Sprint(round, "b"), nil)
				for _, want := range []string{"a", "big", "b"} {
					f, err := reader.Read(ctx)
					if err != nil {
						t.Fatalf("round %d: reading %s: %v", round, want, err)
					}
					if got := fmt.Sprint(f.Extra["seq"]); got != fmt.Sprint(round, want) {
						t.Fatalf("round %d: got frame %s, want %s", round, got, fmt.Sprint(round, want))
					}
					if want == "big" && !bytes.Equal(f.Extra["blob"].([]byte), big) {
						t.Fatalf("round %d: the large message arrived altered", round)
					}
				}
				select {
				case <-pongs:
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: no pong for the text ping", round)
				}
			}
		})
	}
}

// TestHostileMalformedFloodClosedOffTheLoop: a client sending nothing but
// malformed frames is closed after MaxMalformedFrames (by a goroutine: a
// close may wait up to seconds for a client that does not read, which a
// loop must never do) while another client on the same loop keeps being
// served.
func TestHostileMalformedFloodClosedOffTheLoop(t *testing.T) {
	s := testserver.Start(t, server.Config{PollLoops: 1, MaxMalformedFrames: 50, MsgRateLimit: 1e6, MsgBurstLimit: 1e6})
	ctx := testserver.Ctx(t)
	bad := rootRaw(t, s, "bad")
	other := rootRaw(t, s, "other")
	junk, err := wire.Encode(map[string]any{"type": "method"}) // no "to"
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := bad.SendBinary(junk); err != nil {
			break
		}
	}
	cl, err := bad.WaitClose(20 * time.Second)
	if err != nil {
		t.Fatalf("the flooding client was not closed: %v", err)
	}
	if cl.Code != 1008 {
		t.Fatalf("close code %d (%q), want 1008", cl.Code, cl.Reason)
	}
	if v, err := other.CallManager(ctx, "echo", "ok"); err != nil || v != "ok" {
		t.Fatalf("another client after the flood: %v, %v", v, err)
	}
}

// TestPolledPingsLeaveNoGoroutine: a websocket ping is answered by a
// goroutine (a loop does not write control frames), which gives the
// connection back to the loop at once: clients that ping to keep their
// connection alive do not keep a goroutine each on the server while idle.
func TestPolledPingsLeaveNoGoroutine(t *testing.T) {
	s := testserver.Start(t, server.Config{PollLoops: 1})
	const clients = 50
	raws := make([]*testserver.Raw, clients)
	for i := range raws {
		raws[i] = anonRaw(t, s, fmt.Sprint("pinger-", i))
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		raws[i].C.CloseRead(ctx) // a reader for the pongs
	}
	settle := func() int {
		time.Sleep(200 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	base := settle()
	for round := range 3 {
		for i, r := range raws {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := r.C.Ping(ctx)
			cancel()
			if err != nil {
				t.Fatalf("round %d: ping of client %d: %v", round, i, err)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for n := settle(); n > base+clients/5; n = settle() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after every client pinged, %d before: the pinging clients keep a goroutine each", n, base)
		}
	}
}
