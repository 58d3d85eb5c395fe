// Package netpoll reads many TCP connections from a few goroutines, each
// waiting on an epoll instance of its own (Linux), instead of one goroutine
// per connection parked in the Go runtime's poller.
//
// Why: the server's cost per routed frame is mostly system calls and thread
// wake-ups (docs/benchmarks.md §10). With a goroutine per connection every
// incoming frame costs a wake-up of that goroutine, a read, and a second
// read that finds the socket empty before the goroutine parks again (the
// runtime's poller resets a socket's readiness before the first read, so
// that read cannot be skipped). A loop that waits in epoll_wait for all its
// connections reads each ready socket once, handles what arrived on its own
// goroutine, and writes the frames of every connection it handled in one
// batch, so frames from different connections to one peer share a write.
//
// A connection is adopted from a *net.TCPConn: its descriptor is duplicated
// and the original closed, which takes the socket out of the runtime's
// poller (otherwise both pollers would wake for every segment). From then
// on an FD is one of:
//
//   - polling: the loop calls the Handler's Readable, on the loop's
//     goroutine, whenever the socket is readable (level-triggered: bytes
//     left unread are reported again);
//   - not polling: a goroutine of the caller's reads with Read, which waits
//     for the socket through the same loop, for whatever must not run on
//     the loop (a message too large to buffer, anything that may block).
//
// Writes may come from any goroutine: WriteNonblock never waits, Write
// waits for the socket to take everything. The descriptor is closed only
// when no system call on it is in progress, so a number reused by a new
// connection never receives another connection's bytes.
package netpoll

import "errors"

// Handler is told when a polling FD is readable.
type Handler interface {
	// Readable runs on the loop's goroutine, so it must never block: it
	// reads with ReadNow and hands anything that may wait to a goroutine
	// of its own (after Unpoll). It is also called once after the FD was
	// closed while polling, so that the handler learns of the close from
	// the loop (ReadNow then fails with net.ErrClosed).
	Readable()
}

// ErrWouldBlock is returned by ReadNow when the socket has no bytes.
var ErrWouldBlock = errors.New("netpoll: no bytes to read")
