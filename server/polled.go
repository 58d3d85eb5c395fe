package server

import (
	"errors"
	"net"
	"runtime"

	"github.com/hypha-go/hypha/internal/netpoll"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/internal/wsconn"
)

// Websocket connections over plain TCP are read by a few poller loops
// (internal/netpoll) rather than a goroutine each, once admitted: a loop
// reads every ready socket, routes what it read, and then writes each peer
// it routed frames to once for the whole batch (docs/benchmarks.md §11).
// What may wait never runs on a loop: a text message, a control or
// fragmented frame, a frame over 64 KiB, a peer whose queue is full (or an
// HTTP stream peer, whose every write may wait for its client), a close.
// For those the connection is handed to a goroutine (runHandedOff), which
// reads it with the goroutine-per-connection code (readOne) until its
// buffer is empty, and gives it back to the loop.

// defaultPollLoops is the number of loops when Config.PollLoops is 0: one
// per four processors, at least one, at most eight. On two cores one loop
// cost 12 µs of CPU per routed call where two cost 16-18 µs (the loops
// then wake each other's threads); one loop routes on one core at most,
// which on larger machines the other loops add to.
func defaultPollLoops() int { return min(max(1, runtime.GOMAXPROCS(0)/4), 8) }

// maxPollLoops bounds Config.PollLoops: each loop is a goroutine, an epoll
// instance and a pipe, and more loops than processors only cost wake-ups.
const maxPollLoops = 256

// startPoller starts the loops (Config.PollLoops); where they cannot run
// (not Linux), connections keep a goroutine each.
func (s *Server) startPoller() {
	n := s.cfg.PollLoops
	if n < 0 {
		return
	}
	if n == 0 {
		n = defaultPollLoops()
	}
	s.loopBatches = make([]peerBatch, n)
	p, err := netpoll.New(n, func(loop int) { s.loopBatches[loop].flush() })
	if err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			s.log.Warn("poller loops unavailable; one goroutine per connection", "err", err)
		}
		s.loopBatches = nil
		return
	}
	s.poller = p
}

// readPolled hands c to a poller loop; false when it cannot be (c keeps
// its goroutine). From a true return on, the loop and the goroutines it
// starts read c, and its end is theirs (endPolled).
func (s *Server) readPolled(c *conn) bool {
	w, ok := c.t.(*wsTransport)
	if s.poller == nil || !ok {
		return false
	}
	c.srv = s
	fd, err := w.c.Adopt(s.poller, c)
	if err != nil {
		return false
	}
	c.fd = fd
	w.c.ReturnAfterControl()
	// Counted until endPolled, as the connection's goroutine was.
	s.wg.Add(1)
	// The handshake may have read past the first message: those bytes are
	// handled here, then the loop takes over.
	s.runHandedOff(c, false)
	return true
}

// maxReadsPerTurn bounds the reads of one connection per readiness report
// (see wsconn.Conn.NextPolled): 8 reads of a 2 KiB buffer, dozens of
// typical messages, before the loop turns to the other ready connections.
const maxReadsPerTurn = 8

// Readable is called by c's poller loop when c's socket is readable: it
// routes every message that has fully arrived, and hands c to a goroutine
// for anything that may wait. It never waits.
func (c *conn) Readable() {
	s, w := c.srv, c.t.(*wsTransport)
	c.onLoop, c.batch = true, &s.loopBatches[c.fd.Loop()]
	reads := maxReadsPerTurn
	for {
		data, st := w.c.NextPolled(&reads)
		switch st {
		case wsconn.PollWait:
			return
		case wsconn.PollBlocking:
			s.handOff(c, "", true)
			return
		}
		if reason := s.onBinary(c, data); reason != "" {
			s.handOff(c, reason, false)
			return
		}
		if len(c.stalled) > 0 {
			s.handOff(c, "", false)
			return
		}
	}
}

// handOff stops the loop's reading of c and starts a goroutine that goes
// on (on the loop, from Readable). closeReason, when set, closes c;
// mustRead makes the goroutine read at least one message.
func (s *Server) handOff(c *conn, closeReason string, mustRead bool) {
	c.fd.Unpoll()
	c.onLoop, c.batch = false, &c.own
	go func() {
		if closeReason != "" {
			s.deliverStalled(c)
			c.close(closePolicy, closeReason)
			s.endPolled(c)
			return
		}
		s.runHandedOff(c, mustRead)
	}()
}

// runHandedOff reads c on the calling goroutine while that may wait: it
// delivers the frames the loop could not, then handles messages (at least
// one when mustRead) until c's read buffer is empty, and gives c back to
// its loop. It ends c when c ends.
func (s *Server) runHandedOff(c *conn, mustRead bool) {
	w := c.t.(*wsTransport)
	c.onLoop, c.batch = false, &c.own
	w.c.BeforeRead(c.flushBatch)
	s.deliverStalled(c)
	for mustRead || w.c.Buffered() > 0 {
		mustRead = false
		if !s.readOne(c) {
			c.flushBatch()
			s.endPolled(c)
			return
		}
	}
	c.flushBatch()
	if err := c.fd.Poll(); err != nil {
		if errors.Is(err, net.ErrClosed) {
			s.endPolled(c) // closed meanwhile
			return
		}
		// The loop cannot watch the socket (the system's epoll watch
		// limit, say), and nothing else can wake a reader of it.
		s.log.Warn("closing a connection its poller loop cannot watch", "id", c.id, "err", err)
		c.close(closeTryAgainLater, "The server cannot watch more connections; try again later")
		s.endPolled(c)
	}
}

// deliverStalled writes the frames a loop could not queue without waiting,
// waiting for their peers as a goroutine reading c would have.
func (s *Server) deliverStalled(c *conn) {
	for i, f := range c.stalled {
		c.flushBatch()
		if err := f.dst.deliver(f.frame); err != nil {
			s.log.Debug("delivery failed", "to", f.dst.id, "err", err)
			// As route does for a delivery that fails at once: a call
			// is rejected now rather than left to its timeout.
			if m, serr := wire.ScanMain(f.frame); serr == nil {
				if m.Session != "" {
					s.router.rejectUnreachable(c, f.dst.id, m.Session)
				}
				m.Release()
			}
		}
		c.stalled[i] = stalledFrame{}
	}
	c.stalled = c.stalled[:0]
}

// endPolled is disconnected for a polled connection, once.
func (s *Server) endPolled(c *conn) {
	if c.ended.Swap(true) {
		return
	}
	s.disconnected(c)
	s.wg.Done()
}
