package terminal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hypha-go/hypha/worker"
)

// tty is one session's pseudo-terminal as the worker holds it: the master
// side, the one goroutine that reads it, and everything that reader feeds.
//
// There is exactly one reader per pty (readLoop). Upstream's worker reads
// the same descriptor from its capture task and from execute, so each
// chunk of output reaches only one of them; here every chunk goes, in
// order and under one lock, to the screen model, the scrollback, the
// session log, each attached viewer and each execute waiting for its
// marker. None of them can block the reader: the scrollback and the log
// are bounded stores, a viewer that falls behind its bound is reset with a
// counted notice (viewer.push), and an execute's capture is bounded.
type tty struct {
	master *os.File
	logs   *worker.LogStore

	mu         sync.Mutex
	screen     *screen
	rows, cols int
	scroll     ring  // the raw output, most recent ScrollbackBytes
	total      int64 // bytes read so far (absolute offset of the end of scroll)
	readPos    int64 // read_terminal's cursor (absolute)
	viewers    map[*viewer]struct{}
	captures   map[*capture]struct{}
	line       []byte // the log's current partial line (ANSI-stripped later)
	maxLine    int
	viewerMax  int
	ended      bool
	dropped    atomic.Int64 // viewer resets, for the session's info
	writeMu    sync.Mutex   // one writer at a time, so that inputs do not interleave
	readerDone chan struct{}
	changed    chan struct{} // closed and replaced on every chunk (read_terminal waits)
}

func newTTY(master *os.File, logs *worker.LogStore, rows, cols, scrollback, viewerMax, maxLine int) *tty {
	t := &tty{
		master: master, logs: logs,
		screen: newScreen(rows, cols, screenBacklog), rows: rows, cols: cols,
		scroll:     ring{max: scrollback},
		viewers:    map[*viewer]struct{}{},
		captures:   map[*capture]struct{}{},
		maxLine:    maxLine,
		viewerMax:  viewerMax,
		readerDone: make(chan struct{}),
		changed:    make(chan struct{}),
	}
	return t
}

// start runs the reader and the emulator's answer pump.
func (t *tty) start() {
	go t.answers()
	go t.readLoop()
}

// answers forwards what the screen model answers to the program's queries
// (cursor position, device attributes) to the program: the model is the
// session's terminal of record, so a program that asks gets an answer even
// with no viewer attached. Without this reader the model would block on
// its reply pipe.
func (t *tty) answers() {
	buf := make([]byte, 256)
	for {
		n, err := t.screen.read(buf)
		if n > 0 {
			t.writeMu.Lock()
			_, _ = t.master.Write(buf[:n])
			t.writeMu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// readLoop is the one reader of the pty. It ends when the program's side
// is closed everywhere (EIO on Linux) or the master is closed.
func (t *tty) readLoop() {
	defer close(t.readerDone)
	buf := make([]byte, 32<<10)
	for {
		n, err := t.master.Read(buf)
		if n > 0 {
			t.feed(buf[:n])
		}
		if err != nil {
			break
		}
	}
	t.mu.Lock()
	t.ended = true
	if len(t.line) > 0 {
		t.logLineLocked(t.line)
		t.line = nil
	}
	for v := range t.viewers {
		v.end()
	}
	for c := range t.captures {
		c.finish(errTerminalEnded)
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
	t.screen.close() // ends answers
}

var errTerminalEnded = errors.New("the terminal's program ended")

// feed hands one chunk to everything that follows the output.
func (t *tty) feed(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.screen.feed(b)
	t.scroll.write(b)
	t.total += int64(len(b))
	for c := range t.captures {
		if c.feed(b) {
			delete(t.captures, c)
		}
	}
	for v := range t.viewers {
		if v.push(b) {
			t.dropped.Add(1)
		}
	}
	t.logLocked(b)
	close(t.changed)
	t.changed = make(chan struct{})
}

// logLocked appends complete lines, ANSI-stripped, to the session log as
// stdout; a line longer than maxLine is cut into several entries.
func (t *tty) logLocked(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.line = append(t.line, b...)
			if len(t.line) > t.maxLine {
				t.logLineLocked(t.line)
				t.line = t.line[:0]
			}
			return
		}
		t.line = append(t.line, b[:i]...)
		t.logLineLocked(t.line)
		t.line = t.line[:0]
		b = b[i+1:]
	}
}

func (t *tty) logLineLocked(line []byte) {
	text := renderLine(stripANSI(string(line)))
	if strings.TrimSpace(text) == "" {
		return
	}
	t.logs.Append(worker.LogStdout, strings.ToValidUTF8(text, "\uFFFD"))
}

// write sends input to the program.
func (t *tty) write(p []byte) (int, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	n, err := t.master.Write(p)
	if err != nil {
		return n, fmt.Errorf("write to the terminal: %w", err)
	}
	return n, nil
}

// resize changes the terminal's size: the program gets SIGWINCH.
func (t *tty) resize(rows, cols int) error {
	if err := setWinsize(t.master, rows, cols); err != nil {
		return fmt.Errorf("resize the terminal: %w", err)
	}
	t.mu.Lock()
	t.rows, t.cols = rows, cols
	t.screen.resize(rows, cols)
	t.mu.Unlock()
	return nil
}

// size is the terminal's size.
func (t *tty) size() (rows, cols int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rows, t.cols
}

// screenText is the rendered screen as plain text (trailing blanks
// trimmed).
func (t *tty) screenText() string { return t.screen.text() }

// readNew returns the output since the previous readNew (read_terminal's
// shared cursor) and how many bytes of it the scrollback had already lost.
func (t *tty) readNew(max int) (out []byte, lost int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	first := t.total - int64(t.scroll.len())
	if t.readPos < first {
		lost = first - t.readPos
		t.readPos = first
	}
	n := int(t.total - t.readPos)
	if n > max {
		n = max
	}
	out = t.scroll.from(int(t.readPos-first), n)
	t.readPos += int64(n)
	return out, lost
}

// errTooManyViewers: a session has as many viewers as it may.
var errTooManyViewers = errors.New("too many viewers attached")

// roomForViewer reports whether another viewer may attach.
func (t *tty) roomForViewer(max int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended && len(t.viewers) >= max {
		return fmt.Errorf("%w: %d (the limit); detach one first", errTooManyViewers, len(t.viewers))
	}
	return nil
}

// attach registers a viewer and returns the scrollback it starts from; at
// most max viewers at once (each may hold viewerMax bytes).
func (t *tty) attach(max int) (*viewer, []byte, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := newViewer(t.viewerMax)
	if t.ended {
		v.end()
		return v, t.scroll.from(0, t.scroll.len()), true, nil
	}
	if len(t.viewers) >= max {
		return nil, nil, false, fmt.Errorf("%w: %d (the limit); detach one first", errTooManyViewers, len(t.viewers))
	}
	t.viewers[v] = struct{}{}
	return v, t.scroll.from(0, t.scroll.len()), false, nil
}

func (t *tty) detach(v *viewer) {
	t.mu.Lock()
	delete(t.viewers, v)
	t.mu.Unlock()
}

// repaint is the current screen as escape sequences that redraw it whole:
// what a viewer that fell behind gets instead of what it missed.
func (t *tty) repaint() string { return t.screen.repaint() }

// addCapture registers an execute's capture before its input is written.
func (t *tty) addCapture(c *capture) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return errTerminalEnded
	}
	t.captures[c] = struct{}{}
	return nil
}

func (t *tty) removeCapture(c *capture) {
	t.mu.Lock()
	delete(t.captures, c)
	t.mu.Unlock()
}

// close closes the master (after the program ended, or to end it: the
// program's side then hangs up).
func (t *tty) close() {
	_ = t.master.Close()
	<-t.readerDone
}

// ring keeps the last max bytes written.
type ring struct {
	max int
	buf []byte
}

func (r *ring) write(b []byte) {
	if len(b) >= r.max {
		r.buf = append(r.buf[:0], b[len(b)-r.max:]...)
		return
	}
	if over := len(r.buf) + len(b) - r.max; over > 0 {
		// Drop the oldest bytes; copy keeps the backing array bounded.
		n := copy(r.buf, r.buf[over:])
		r.buf = r.buf[:n]
	}
	r.buf = append(r.buf, b...)
}

func (r *ring) len() int { return len(r.buf) }

// from copies n bytes from offset off of what is kept.
func (r *ring) from(off, n int) []byte {
	if off < 0 {
		off = 0
	}
	if off+n > len(r.buf) {
		n = len(r.buf) - off
	}
	if n <= 0 {
		return nil
	}
	return append([]byte(nil), r.buf[off:off+n]...)
}

// viewer is one attached reader of the output. Its queue is bounded by
// max bytes: when the reader falls that far behind, the queue is dropped
// and the next read gets a repaint of the screen with the count of bytes
// it missed, so a slow viewer never holds the pty back.
type viewer struct {
	mu     sync.Mutex
	max    int
	queue  [][]byte
	size   int
	missed int64 // bytes dropped since the last read
	resets int64 // how many times the queue was dropped
	ended  bool
	wake   chan struct{}
}

func newViewer(max int) *viewer {
	return &viewer{max: max, wake: make(chan struct{}, 1)}
}

// push queues b; it reports whether the queue had to be dropped.
func (v *viewer) push(b []byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	reset := false
	if v.size+len(b) > v.max {
		v.missed += int64(v.size + len(b))
		v.resets++
		v.queue, v.size = nil, 0
		reset = true
	} else {
		v.queue = append(v.queue, append([]byte(nil), b...))
		v.size += len(b)
	}
	v.signal()
	return reset
}

func (v *viewer) end() {
	v.mu.Lock()
	v.ended = true
	v.signal()
	v.mu.Unlock()
}

func (v *viewer) signal() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// take returns what is queued (up to max bytes), the bytes missed since
// the last take, and whether the output has ended.
func (v *viewer) take(max int) (data []byte, missed int64, ended bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.queue) > 0 && (len(data) == 0 || len(data)+len(v.queue[0]) <= max) {
		data = append(data, v.queue[0]...)
		v.size -= len(v.queue[0])
		v.queue[0] = nil
		v.queue = v.queue[1:]
	}
	missed, v.missed = v.missed, 0
	return data, missed, v.ended && len(v.queue) == 0
}

// capture collects an execute's output between its start and end
// markers (see execute.go).
type capture struct {
	start, endPrefix []byte
	max              int

	mu        sync.Mutex
	raw       []byte // everything since registration, up to max (raw_output)
	rawLost   int64
	started   bool
	out       []byte // the bytes between the markers, up to max
	outLost   int64
	pending   []byte // a tail that may hold the start of a marker
	code      int
	err       error
	done      chan struct{}
	closeOnce sync.Once
}

func newCapture(marker string, max int) *capture {
	return &capture{
		start:     []byte("__hypha_start_" + marker + "__"),
		endPrefix: []byte("__hypha_end_" + marker + "_"),
		max:       max, code: -1,
		done: make(chan struct{}),
	}
}

// feed takes one chunk; it reports whether the capture is complete.
func (c *capture) feed(b []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return true
	default:
	}
	if room := c.max - len(c.raw); room > 0 {
		c.raw = append(c.raw, b[:min(room, len(b))]...)
		c.rawLost += int64(len(b) - min(room, len(b)))
	} else {
		c.rawLost += int64(len(b))
	}
	data := append(c.pending, b...)
	c.pending = nil
	if !c.started {
		i := bytes.Index(data, c.start)
		if i < 0 {
			c.pending = tail(data, len(c.start))
			return false
		}
		c.started = true
		data = data[i+len(c.start):]
		// The marker's own line end.
		data = bytes.TrimPrefix(data, []byte("\r\n"))
		data = bytes.TrimPrefix(data, []byte("\n"))
	}
	if i := bytes.Index(data, c.endPrefix); i >= 0 {
		rest := data[i+len(c.endPrefix):]
		j := bytes.Index(rest, []byte("__"))
		if j < 0 {
			if len(rest) > 16 {
				// Not our marker's shape after all: keep it as output.
				c.addOut(data)
				return false
			}
			c.pending = data[i:]
			c.addOut(data[:i])
			return false
		}
		code := 0
		if _, err := fmt.Sscanf(string(rest[:j]), "%d", &code); err != nil {
			code = -1
		}
		c.addOut(data[:i])
		c.code = code
		c.closeOnce.Do(func() { close(c.done) })
		return true
	}
	keep := tail(data, len(c.endPrefix)+24)
	c.addOut(data[:len(data)-len(keep)])
	c.pending = append([]byte(nil), keep...)
	return false
}

func (c *capture) addOut(b []byte) {
	if room := c.max - len(c.out); room > 0 {
		n := min(room, len(b))
		c.out = append(c.out, b[:n]...)
		c.outLost += int64(len(b) - n)
	} else {
		c.outLost += int64(len(b))
	}
}

// tail returns the last n bytes of b (a copy), or all of it.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return append([]byte(nil), b...)
}

func (c *capture) finish(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.done) })
}

// result returns what was captured.
func (c *capture) result() (out, raw []byte, outLost, rawLost int64, code int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out = append(c.out, c.pending...)
	if c.code >= 0 || c.err == nil && c.started {
		out = c.out
	}
	return out, c.raw, c.outLost, c.rawLost, c.code, c.err
}

// screenBacklog is how far the screen model may fall behind the output
// before it skips ahead (see screen).
const screenBacklog = 1 << 20
