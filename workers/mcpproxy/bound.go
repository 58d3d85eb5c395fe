package mcpproxy

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/hypha-go/hypha/worker"
)

// DefaultMaxMessageBytes bounds one message from an MCP server when
// Options.MaxMessageBytes is not set: the embedded server's own bound on
// one websocket message (so a result that arrives can also be sent on).
const DefaultMaxMessageBytes = 16 << 20

// ErrMessageTooLarge: an MCP server sent a message over the proxy's
// per-message bound. The session it came on is closed (what follows it
// cannot be read in step), and the call fails without a retry.
var ErrMessageTooLarge = errors.New("MCP server message too large")

// oversize makes the error of a message over max bytes, records it for
// the call that waits for the message (see link.do) and logs it.
func (l *link) oversize(max int) error {
	err := fmt.Errorf("%w: MCP server %s sent a message over %d bytes (the proxy's bound on one message: mcpproxy.Options.MaxMessageBytes, hypha worker mcp-proxy --max-message-bytes)",
		ErrMessageTooLarge, l.spec.Name, max)
	l.tooBig.Store(&err)
	l.logf(worker.LogError, "%v", err)
	return err
}

// lineBound reads a stdio server's stdout and fails once one line (one
// JSON-RPC message of the newline-delimited stdio transport) passes max
// bytes.
type lineBound struct {
	r    io.Reader
	rc   io.Closer
	max  int
	line int // bytes of the current line so far
	err  error
	fail func(max int) error
}

func (b *lineBound) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	for i := 0; i < n; i++ {
		if p[i] == '\n' {
			b.line = 0
			continue
		}
		if b.line++; b.line > b.max {
			b.err = b.fail(b.max)
			return i, b.err
		}
	}
	return n, err
}

func (b *lineBound) Close() error { return b.rc.Close() }

// boundBody bounds the messages of an HTTP response: each event of an
// event stream (bytes up to a blank line), or the whole body otherwise
// (one JSON-RPC message, or a batch).
func boundBody(resp *http.Response, max int, fail func(int) error) io.ReadCloser {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return &bodyBound{rc: resp.Body, max: max, events: mt == "text/event-stream", fail: fail}
}

type bodyBound struct {
	rc     io.ReadCloser
	max    int
	events bool
	n      int  // bytes of the current message
	nl     bool // the last byte (CR aside) was a newline
	err    error
	fail   func(max int) error
}

func (b *bodyBound) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if !b.events {
		if b.n += n; b.n > b.max {
			return b.stop(n - (b.n - b.max))
		}
		return n, err
	}
	for i, c := range p[:n] {
		switch {
		case c == '\r':
			continue
		case c == '\n' && b.nl:
			b.n = 0 // a blank line ends an event
		case c == '\n':
			b.nl = true
			b.n++
			continue
		}
		if c != '\n' {
			b.nl = false
			if b.n++; b.n > b.max {
				return b.stop(i)
			}
		}
	}
	return n, err
}

func (b *bodyBound) stop(keep int) (int, error) {
	b.err = b.fail(b.max)
	return max(keep, 0), b.err
}

func (b *bodyBound) Close() error { return b.rc.Close() }
