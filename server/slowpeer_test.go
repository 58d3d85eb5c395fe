package server_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
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
	s := testserver.Start(t, server.Config{MsgRateLimit: 1e6, MsgBurstLimit: 1e6})
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
}
