package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/server"
)

// TestHostileSlowReaderDoesNotStallRouting: a client that stops reading
// must not hold up the frames one read loop routes to other clients. The
// sender's frames alternate between a peer that never reads (megabytes of
// them, far beyond what the sockets buffer) and one that reads; the read
// loop queues both kinds and flushes them itself after each batch
// (conn.deliverFrom), so its write to the stuck peer must give up at once
// and leave the rest to a flusher goroutine. Every frame for the reading
// peer arrives well before the server's write timeout (30 s) would close
// the stuck one, and the sender keeps being served.
func TestHostileSlowReaderDoesNotStallRouting(t *testing.T) {
	for _, rp := range readPaths {
		t.Run(rp.name, func(t *testing.T) {
			s := testserver.Start(t, server.Config{PollLoops: rp.loops, MsgRateLimit: 1e6, MsgBurstLimit: 1e6})
			ctx := testserver.Ctx(t)
			stuck := rootRaw(t, s, "stuck") // never reads after its handshake
			reader := rootRaw(t, s, "reader")
			sender := rootRaw(t, s, "sender")
			_ = stuck

			const rounds = 400 // 400 × 16 KiB = 6.4 MiB for the stuck peer
			big := bytes.Repeat([]byte{'x'}, 16<<10)
			sent := make(chan error, 1)
			go func() {
				for i := range rounds {
					if err := sender.Send(map[string]any{"type": "method", "to": "stuck", "method": "x.y"},
						map[string]any{"blob": big}); err != nil {
						sent <- err
						return
					}
					if err := sender.Send(map[string]any{"type": "method", "to": "reader", "method": "x.y"},
						map[string]any{"seq": i}); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for i := range rounds {
				f, err := reader.Read(rctx)
				if err != nil {
					t.Fatalf("frame %d of %d for the reading peer did not arrive while another peer was stuck: %v", i, rounds, err)
				}
				if got := fmt.Sprint(f.Extra["seq"]); got != fmt.Sprint(i) {
					t.Fatalf("frame %d for the reading peer carries seq %s", i, got)
				}
			}
			if err := <-sent; err != nil {
				t.Fatalf("sending: %v", err)
			}
			if v, err := sender.CallManager(ctx, "echo", "still served"); err != nil || v != "still served" {
				t.Fatalf("the sender after routing to a stuck peer: %v, %v", v, err)
			}
		})
	}
}

// TestHostileHalfSentMessageDoesNotHoldRoutedFrames: the read loop writes
// the frames it routed before every read that may wait, also in the middle
// of a message. A client that sends a frame and, in the same segment, the
// start of a long message it never finishes does not hold that frame back.
func TestHostileHalfSentMessageDoesNotHoldRoutedFrames(t *testing.T) {
	for _, rp := range readPaths {
		t.Run(rp.name, func(t *testing.T) {
			s := testserver.Start(t, server.Config{PollLoops: rp.loops})
			ctx := testserver.Ctx(t)
			reader := rootRaw(t, s, "reader")
			sender := rootRaw(t, s, "sender")
			msg, err := wire.Encode(map[string]any{"type": "method", "to": "reader", "method": "x.y"}, map[string]any{"seq": "first"})
			if err != nil {
				t.Fatal(err)
			}
			// Client frames are masked; a zero masking key leaves the payload as is.
			var raw []byte
			if len(msg) < 126 {
				raw = append(raw, 0x82, 0x80|byte(len(msg)))
			} else {
				raw = binary.BigEndian.AppendUint16(append(raw, 0x82, 0x80|126), uint16(len(msg)))
			}
			raw = append(append(raw, 0, 0, 0, 0), msg...)
			// Then a 1 MiB message of which only 16 bytes ever come.
			raw = binary.BigEndian.AppendUint64(append(raw, 0x82, 0x80|127), 1<<20)
			raw = append(append(raw, 0, 0, 0, 0), make([]byte, 16)...)
			if _, err := sender.Net.Write(raw); err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			f, err := reader.Read(rctx)
			if err != nil {
				t.Fatalf("the frame sent before a half-sent message did not arrive: %v", err)
			}
			if f.Extra["seq"] != "first" {
				t.Fatalf("got %v", f.Extra)
			}
		})
	}
}
