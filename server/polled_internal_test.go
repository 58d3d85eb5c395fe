package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
)

// TestLoopNeverWaitsForAFullPipe: a frame a poller loop routes to an
// in-process client whose pipe is full is left to a goroutine (stalled)
// instead of waiting on the loop; off the loop it is delivered once the
// client reads; to a closed pipe it fails at once.
func TestLoopNeverWaitsForAFullPipe(t *testing.T) {
	clientEnd, serverEnd := newPipe()
	dst := &conn{id: "ws/dst", t: serverEnd, closed: make(chan struct{})}
	src := &conn{id: "ws/src", onLoop: true, batch: &peerBatch{}}
	for range cap(clientEnd.in) {
		if sent, err := serverEnd.tryWrite(rpc.Binary, []byte("filler")); !sent || err != nil {
			t.Fatalf("filling the pipe: %v, %v", sent, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- dst.deliverFrom(src, []byte("frame")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("deliverFrom on a loop waited for a full pipe")
	}
	if len(src.stalled) != 1 || string(src.stalled[0].frame) != "frame" || src.stalled[0].dst != dst {
		t.Fatalf("stalled %v; want the frame for dst", src.stalled)
	}
	// The goroutine's delivery waits until the client reads one.
	delivered := make(chan error, 1)
	go func() { delivered <- src.stalled[0].dst.deliver(src.stalled[0].frame) }()
	if _, _, err := clientEnd.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-delivered; err != nil {
		t.Fatalf("delivering the stalled frame: %v", err)
	}
	// With room, the loop sends at once; to a closed pipe it fails.
	src.stalled = src.stalled[:0]
	if _, _, err := clientEnd.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := dst.deliverFrom(src, []byte("now")); err != nil || len(src.stalled) != 0 {
		t.Fatalf("deliverFrom with room: %v, %d stalled", err, len(src.stalled))
	}
	serverEnd.CloseWith(1000, "bye")
	if err := dst.deliverFrom(src, []byte("late")); !errors.Is(err, errPipeClosed) || len(src.stalled) != 0 {
		t.Fatalf("deliverFrom to a closed pipe: %v, %d stalled", err, len(src.stalled))
	}
}

// TestStalledCallToDeadPeerIsRejected: a call a loop left to a goroutine
// (stalled) whose peer is gone by the time the goroutine delivers it is
// rejected at once, as route rejects a call whose delivery fails, so the
// caller does not wait for its timeout.
func TestStalledCallToDeadPeerIsRejected(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	s.router = newRouter(s)
	srcClient, srcServer := newPipe()
	src := &conn{id: "ws/src", t: srcServer, closed: make(chan struct{})}
	_, dstServer := newPipe()
	dst := &conn{id: "ws/dst", t: dstServer, closed: make(chan struct{})}
	dstServer.CloseWith(1000, "gone")
	frame, err := wire.Encode(map[string]any{"type": "method", "to": "ws/dst", "method": "svc.fn", "session": "sess-1"})
	if err != nil {
		t.Fatal(err)
	}
	src.stalled = []stalledFrame{{dst: dst, frame: frame}}
	s.deliverStalled(src)
	if len(src.stalled) != 0 {
		t.Fatalf("%d frames still stalled", len(src.stalled))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, b, err := srcClient.Read(ctx)
	if err != nil {
		t.Fatalf("no reject for the stalled call: %v", err)
	}
	main, extra, err := wire.DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if main["method"] != "sess-1.reject" || !strings.Contains(fmt.Sprint(extra["args"]), "ws/dst is not connected") {
		t.Fatalf("got %v %v, want the reject of sess-1 naming ws/dst", main, extra)
	}
}
