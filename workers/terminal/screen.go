package terminal

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/vt"
)

// screen is the session's screen model, fed by the pty's reader but run on
// a goroutine of its own. The emulator costs in proportion to the screen's
// size on every scrolled line (about a third of a megabyte a second for
// 200 columns), far less than a pty delivers; fed inline it would hold
// back the reader, and with it the program, every viewer and execute.
// Instead the reader only queues the bytes. When the model falls more than
// maxBacklog bytes behind, the oldest queued bytes are dropped and the
// model is reset and fed the rest from a line start: after that much
// output the screen is what the latest output drew (a full-screen program
// redraws it far more often), so only what scrolled away unseen is
// skipped. Readers of the screen wait (briefly) until the model has
// caught up with what was read before their call.
type screen struct {
	maxBacklog int

	mu       sync.Mutex // guards the fields below
	pending  []byte
	resync   bool  // pending starts after dropped output: reset first
	fed      int64 // bytes handed to feed so far
	done     int64 // bytes the emulator has taken
	skipped  int64 // bytes never emulated (dropped backlog)
	closed   bool
	wake     chan struct{}
	progress *sync.Cond

	emuMu sync.Mutex // guards emu
	emu   *vt.Emulator

	stopped chan struct{}
}

func newScreen(rows, cols, maxBacklog int) *screen {
	s := &screen{maxBacklog: maxBacklog, emu: vt.NewEmulator(cols, rows), wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	// Our scrollback is the raw one (tty.scroll); the emulator's own would
	// cost a copy of its whole history per scrolled line once full.
	s.emu.SetScrollbackSize(1)
	s.progress = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// feed queues a chunk (the reader's side: never blocks on the emulator).
func (s *screen) feed(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.fed += int64(len(b))
	s.pending = append(s.pending, b...)
	if over := len(s.pending) - s.maxBacklog; over > 0 {
		cut := over
		if i := bytes.IndexByte(s.pending[over:], '\n'); i >= 0 && i < s.maxBacklog/2 {
			cut = over + i + 1
		}
		s.skipped += int64(cut)
		s.done += int64(cut) // never to be emulated: readers need not wait for it
		n := copy(s.pending, s.pending[cut:])
		s.pending = s.pending[:n]
		s.resync = true
		s.progress.Broadcast()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run feeds the emulator.
func (s *screen) run() {
	defer close(s.stopped)
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closed {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if s.closed && len(s.pending) == 0 {
			s.mu.Unlock()
			return
		}
		chunk := s.pending
		if len(chunk) > 64<<10 {
			chunk = chunk[:64<<10]
		}
		chunk = append([]byte(nil), chunk...)
		n := copy(s.pending, s.pending[len(chunk):])
		s.pending = s.pending[:n]
		reset := s.resync
		s.resync = false
		s.mu.Unlock()

		s.emuMu.Lock()
		if reset {
			_, _ = s.emu.Write([]byte("\x1bc")) // full reset (RIS)
		}
		_, _ = s.emu.Write(chunk)
		s.emuMu.Unlock()

		s.mu.Lock()
		s.done += int64(len(chunk))
		s.progress.Broadcast()
		s.mu.Unlock()
	}
}

// sync waits until the model has taken everything fed before the call (at
// most d).
func (s *screen) sync(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.fed
	deadline := time.Now().Add(d)
	t := time.AfterFunc(d, func() { s.mu.Lock(); s.progress.Broadcast(); s.mu.Unlock() })
	defer t.Stop()
	for s.done < target && !s.closed && time.Now().Before(deadline) {
		s.progress.Wait()
	}
}

// text is the screen as plain text.
func (s *screen) text() string {
	s.sync(5 * time.Second)
	s.emuMu.Lock()
	defer s.emuMu.Unlock()
	return s.emu.String()
}

// repaint is the screen as escape sequences that redraw it whole.
func (s *screen) repaint() string {
	s.sync(5 * time.Second)
	s.emuMu.Lock()
	defer s.emuMu.Unlock()
	pos := s.emu.CursorPosition()
	return "\x1b[H\x1b[2J" + strings.ReplaceAll(s.emu.Render(), "\n", "\r\n") +
		fmt.Sprintf("\x1b[%d;%dH", pos.Y+1, pos.X+1)
}

func (s *screen) resize(rows, cols int) {
	s.emuMu.Lock()
	s.emu.Resize(cols, rows)
	s.emuMu.Unlock()
}

// skippedBytes is how much output the model never saw.
func (s *screen) skippedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// read returns what the emulator answers to the program's queries.
func (s *screen) read(p []byte) (int, error) { return s.emu.Read(p) }

// closeTail is how much queued output close still emulates: the program
// has ended, and its last screen is drawn by its last output.
const closeTail = 64 << 10

// close stops the model once it has taken what is queued (at most the last
// closeTail bytes of it, so that a stop never waits long for a model far
// behind).
func (s *screen) close() {
	s.mu.Lock()
	if over := len(s.pending) - closeTail; over > 0 {
		cut := over
		if i := bytes.IndexByte(s.pending[over:], '\n'); i >= 0 {
			cut = over + i + 1
		}
		s.skipped += int64(cut)
		s.done += int64(cut)
		n := copy(s.pending, s.pending[cut:])
		s.pending = s.pending[:n]
		s.resync = true
	}
	s.closed = true
	s.progress.Broadcast()
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.stopped
	s.emuMu.Lock()
	defer s.emuMu.Unlock()
	// End the answers pump by closing the emulator's reply pipe (its input
	// pipe is that pipe's write end). Emulator.Close would do the same but
	// also set a flag the blocked Read checks without a lock.
	if pw, ok := s.emu.InputPipe().(*io.PipeWriter); ok {
		_ = pw.CloseWithError(io.EOF)
		return
	}
	_ = s.emu.Close()
}
