package batchconn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return client, <-accepted
}

// Messages written by one goroutine arrive whole and in order, and Close
// delivers what was still queued.
func TestOrderAndFlushOnClose(t *testing.T) {
	c, s := tcpPair(t)
	defer s.Close()
	b := New(c)
	var want bytes.Buffer
	for i := range 5000 {
		msg := []byte(fmt.Sprintf("message %05d;", i))
		want.Write(msg)
		if _, err := b.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan []byte)
	go func() {
		data, _ := io.ReadAll(s)
		got <- data
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if data := <-got; !bytes.Equal(data, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d in order", len(data), want.Len())
	}
	if _, err := b.Write([]byte("late")); err == nil {
		t.Fatal("write after close succeeded")
	}
}

// Concurrent writers never interleave inside one Write.
func TestConcurrentWritesStayWhole(t *testing.T) {
	c, s := tcpPair(t)
	defer s.Close()
	b := New(c)
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := b.Write([]byte(fmt.Sprintf("<%d:%04d>", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := make(chan []byte)
	go func() {
		data, _ := io.ReadAll(s)
		got <- data
	}()
	wg.Wait()
	b.Close()
	data := <-got
	seen := map[string]bool{}
	for _, part := range bytes.Split(bytes.Trim(data, "<>"), []byte("><")) {
		seen[string(part)] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("got %d distinct whole messages, want %d", len(seen), writers*each)
	}
}

// A write error (the peer went away) is reported by a later Write.
func TestWriteErrorSurfaces(t *testing.T) {
	c, s := tcpPair(t)
	b := New(c)
	s.Close()
	c.(*net.TCPConn).CloseWrite()
	var err error
	for range 1000 {
		if _, err = b.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("no error after the peer closed")
	}
	b.Close()
}

// Nothing queued after WriteLast goes out: a websocket close frame is the
// last frame even when another goroutine writes at the same time.
func TestWriteLastSeals(t *testing.T) {
	c, s := tcpPair(t)
	defer s.Close()
	b := New(c)
	if err := b.WriteParts(context.Background(), []byte("a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteLast(context.Background(), []byte("last"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteParts(context.Background(), []byte("late"), nil); err == nil {
		t.Fatal("a write after WriteLast was accepted")
	}
	got := make(chan []byte)
	go func() {
		data, _ := io.ReadAll(s)
		got <- data
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if data := <-got; string(data) != "ablast" {
		t.Fatalf("received %q, want %q", data, "ablast")
	}
}

// Defer and Flush never wait for the peer: against a peer that stops
// reading, Flush writes what the socket takes and leaves the rest to a
// flusher goroutine, Defer refuses (ErrWouldWait) once the queue is full
// instead of waiting, and everything arrives in order once the peer reads.
func TestHostileDeferFlushPeerStopsReading(t *testing.T) {
	c, s := tcpPair(t)
	defer s.Close()
	b := New(c)
	var want bytes.Buffer
	chunk := make([]byte, 32<<10)
	full := false
	for i := 0; !full; i++ {
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		mustFlush, err := b.Defer([]byte(fmt.Sprintf("chunk %06d;", i)), chunk)
		switch {
		case err == ErrWouldWait:
			full = true
			continue
		case err != nil:
			t.Fatal(err)
		}
		want.WriteString(fmt.Sprintf("chunk %06d;", i))
		want.Write(chunk)
		if mustFlush {
			b.Flush() // returns at once even though nobody reads
		}
		if i > 100_000 {
			t.Fatal("the queue never filled: Defer must refuse beyond maxQueued")
		}
	}
	got := make(chan []byte)
	go func() {
		data, _ := io.ReadAll(s)
		got <- data
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if data := <-got; !bytes.Equal(data, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d in order", len(data), want.Len())
	}
}

// Frames deferred by several goroutines, each flushing its own, arrive
// whole and in per-writer order, mixed with ordinary writes.
func TestDeferConcurrentWriters(t *testing.T) {
	c, s := tcpPair(t)
	defer s.Close()
	b := New(c)
	const writers, msgs = 4, 3000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range msgs {
				msg := []byte(fmt.Sprintf("<%d:%05d>", w, i))
				if w == 0 {
					if err := b.WriteParts(context.Background(), msg[:3], msg[3:]); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				mustFlush, err := b.Defer(msg[:3], msg[3:])
				if err != nil {
					t.Error(err)
					return
				}
				if mustFlush && i%7 == 6 {
					b.Flush()
				}
			}
			b.Flush()
		}()
	}
	got := make(chan []byte)
	go func() {
		data, _ := io.ReadAll(s)
		got <- data
	}()
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data := <-got
	next := make([]int, writers)
	for _, m := range bytes.SplitAfter(data, []byte(">")) {
		if len(m) == 0 {
			continue
		}
		var w, i int
		if _, err := fmt.Sscanf(string(m), "<%d:%05d>", &w, &i); err != nil || w >= writers || i != next[w] {
			t.Fatalf("frame %q out of order or torn (want writer %d at %d)", m, w, next[w])
		}
		next[w]++
	}
	for w, n := range next {
		if n != msgs {
			t.Fatalf("writer %d: %d of %d frames arrived", w, n, msgs)
		}
	}
}
