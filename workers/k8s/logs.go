package k8s

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hypha-go/hypha/worker"
)

// LogSource opens a pod container's log stream: every line prefixed with
// its RFC 3339 timestamp (the API's timestamps=true), followed until the
// container ends or ctx is done, starting at since (all of it when since is
// zero). ClientLogSource is the production one. The interface exists
// because client-go's fake clientset answers every log request with the
// fixed body "fake logs": tests give the worker a fake source that streams
// what they write.
type LogSource interface {
	Stream(ctx context.Context, namespace, pod, container string, since time.Time) (io.ReadCloser, error)
}

// ClientLogSource reads logs through the API server (pods/log, follow).
type ClientLogSource struct{ Client CoreClient }

// Stream opens the log stream. The API's sinceTime has whole-second
// precision, so a resumed stream repeats up to a second of lines; the
// worker drops them by their timestamps.
func (c ClientLogSource) Stream(ctx context.Context, ns, pod, container string, since time.Time) (io.ReadCloser, error) {
	opts := &corev1.PodLogOptions{Container: container, Follow: true, Timestamps: true}
	if !since.IsZero() {
		t := metav1.NewTime(since)
		opts.SinceTime = &t
	}
	return c.Client.PodLogs(ctx, ns, pod, opts)
}

// maxLogLine bounds one log entry; a longer line is cut and the rest of it
// skipped, with a note.
const maxLogLine = 64 << 10

// logCursor remembers where a session's log stream got to, so that a
// reconnect (sinceTime, whole seconds) adds no line twice: lines older than
// the last timestamp seen are skipped, and of the lines with exactly that
// timestamp as many as were already taken.
type logCursor struct {
	last   time.Time
	atLast int // lines taken with timestamp == last
	skip   int // lines with timestamp == last still to skip in this stream
}

// since is where a reconnect starts; zero before the first line.
func (c *logCursor) since() time.Time { return c.last }

// resume prepares the cursor for a new stream.
func (c *logCursor) resume() { c.skip = c.atLast }

// take reports whether a line with timestamp ts is new, and records it.
// A line without a timestamp (zero ts) is always taken.
func (c *logCursor) take(ts time.Time) bool {
	switch {
	case ts.IsZero():
		return true
	case ts.Before(c.last):
		return false
	case ts.Equal(c.last):
		if c.skip > 0 {
			c.skip--
			return false
		}
		c.atLast++
		return true
	default:
		c.last, c.atLast, c.skip = ts, 1, 0
		return true
	}
}

// splitTimestamp splits "2026-01-02T03:04:05.123456789Z text" into the
// time and the text; a line without a timestamp is returned whole.
func splitTimestamp(line string) (time.Time, string) {
	stamp, rest, ok := strings.Cut(line, " ")
	if !ok {
		stamp, rest = line, ""
	}
	ts, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return time.Time{}, line
	}
	return ts, rest
}

// readLines copies one log stream into the session's log store until it
// ends, taking only lines the cursor has not seen. It returns nil at the
// end of the stream.
func readLines(ctx context.Context, rc io.Reader, cur *logCursor, s *worker.Session) error {
	br := bufio.NewReaderSize(rc, 16<<10)
	var line []byte
	cut := false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if !cut {
				if room := maxLogLine - len(line); len(chunk) > room {
					line = append(line, chunk[:room]...)
					cut = true
				} else {
					line = append(line, chunk...)
				}
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(line) > 0 && (err == nil || errors.Is(err, io.EOF)) {
			text := string(bytes.TrimRight(line, "\r\n"))
			if cut {
				text += " … [line cut]"
			}
			if ts, msg := splitTimestamp(text); cur.take(ts) {
				s.Logs().AppendWait(ctx, worker.LogStdout, msg, false)
			}
			line, cut = line[:0], false
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
