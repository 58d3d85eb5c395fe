package server

import (
	"context"
	"errors"
	"testing"
	"time"

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
