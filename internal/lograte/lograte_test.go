package lograte

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(time.Hour)
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	for range 1000 {
		if ok, _ := l.Allow(); ok {
			t.Fatal("a line within the interval was let through")
		}
	}
	if n := l.Flush(); n != 1000 {
		t.Fatalf("Flush = %d, want 1000", n)
	}
	if n := l.Flush(); n != 0 {
		t.Fatalf("second Flush = %d", n)
	}
	l = New(time.Nanosecond)
	l.Allow()
	time.Sleep(time.Millisecond)
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("after the interval: %v %d", ok, n)
	}
}
