//go:build linux

package batchconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/netpoll"
)

type noReadable struct{}

func (noReadable) Readable() {}

// readAll collects what the peer s receives until it is closed.
func readAll(s net.Conn) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(s)
		got <- data
	}()
	return got
}

func recvBytes(t *testing.T, got <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-got:
		return b
	case <-time.After(60 * time.Second):
		t.Fatal("the peer did not see the end of the connection")
		return nil
	}
}

// TestReplace: Replace waits until no write is in progress (the flusher
// has written everything queued before), and later writes go to the new
// connection only. When fn fails, nothing changes; once closed, fn is not
// called.
func TestReplace(t *testing.T) {
	oldC, oldPeer := tcpPair(t)
	newC, newPeer := tcpPair(t)
	defer oldPeer.Close()
	defer newPeer.Close()
	b := New(oldC)
	// Megabytes queued for the old peer: the flusher is still writing
	// them when Replace is called, which waits for it.
	var before bytes.Buffer
	for i := range 400 {
		msg := bytes.Repeat([]byte{byte(i)}, 16<<10)
		before.Write(msg)
		if err := b.WriteParts(context.Background(), msg, nil); err != nil {
			t.Fatal(err)
		}
	}
	oldGot := readAll(oldPeer)
	errFn := errors.New("no")
	if err := b.Replace(func(net.Conn) (net.Conn, error) { return nil, errFn }); !errors.Is(err, errFn) {
		t.Fatalf("Replace with a failing fn: %v", err)
	}
	if err := b.WriteParts(context.Background(), []byte("still old"), nil); err != nil {
		t.Fatal(err)
	}
	before.WriteString("still old")
	replaced := make(chan error, 1)
	go func() {
		replaced <- b.Replace(func(old net.Conn) (net.Conn, error) {
			// Called under b.mu: nothing is being written, and every
			// byte queued before went to the old connection.
			if b.flushing || len(b.queue) > 0 {
				return nil, fmt.Errorf("fn called while writing (flushing %v, %d bytes queued)", b.flushing, len(b.queue))
			}
			if old != oldC {
				return nil, fmt.Errorf("fn got %v, not the current connection", old)
			}
			old.Close()
			return newC, nil
		})
	}()
	select {
	case err := <-replaced:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Replace did not return")
	}
	if got := recvBytes(t, oldGot); !bytes.Equal(got, before.Bytes()) {
		t.Fatalf("the old peer received %d bytes, want the %d written before Replace", len(got), before.Len())
	}
	newGot := readAll(newPeer)
	if _, err := b.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := recvBytes(t, newGot); string(got) != "after" {
		t.Fatalf("the new peer received %q, want \"after\"", got)
	}
	called := false
	if err := b.Replace(func(net.Conn) (net.Conn, error) { called = true; return nil, nil }); err == nil || called {
		t.Fatalf("Replace after Close: %v (fn called: %v); want an error and no call", err, called)
	}
}

// TestFlushThroughNonblockWriter: once the connection is replaced by a
// poller's FD (internal/netpoll, a NonblockWriter), Flush writes through
// WriteNonblock and never waits for a peer that does not read; the
// flusher then writes the rest through the FD's Write, and everything
// arrives in order once the peer reads.
func TestFlushThroughNonblockWriter(t *testing.T) {
	p, err := netpoll.New(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, peer := tcpPair(t)
	defer peer.Close()
	b := New(c)
	if err := b.Replace(func(old net.Conn) (net.Conn, error) {
		return p.Adopt(old.(*net.TCPConn), noReadable{})
	}); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	chunk := make([]byte, 32<<10)
	for i := 0; ; i++ {
		for j := range chunk {
			chunk[j] = byte(i * j)
		}
		hdr := []byte(fmt.Sprintf("chunk %06d;", i))
		mustFlush, err := b.Defer(hdr, chunk)
		if errors.Is(err, ErrWouldWait) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want.Write(hdr)
		want.Write(chunk)
		if mustFlush {
			b.Flush() // returns although nobody reads
		}
		if i > 100_000 {
			t.Fatal("the queue never filled")
		}
	}
	b.mu.Lock()
	nbw := b.nbw
	b.mu.Unlock()
	if nbw == nil {
		t.Fatal("Flush did not use the FD as a NonblockWriter")
	}
	got := readAll(peer)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if data := recvBytes(t, got); !bytes.Equal(data, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d in order", len(data), want.Len())
	}
}
