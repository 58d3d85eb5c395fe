package conda

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hypha-go/hypha/internal/condaenv"
	"github.com/hypha-go/hypha/internal/jupyter"
	"github.com/hypha-go/hypha/worker"
)

// outputLog writes a kernel's outputs into the session's logs: stream
// text line by line as stdout and stderr (a line the kernel sent in
// pieces is joined; a line over the cap is split into entries marked
// partial), an exception's traceback as error lines without terminal
// colours, results and displays as one info line each. The log store
// bounds the whole.
type outputLog struct {
	ctx     context.Context // bounds a wait for a follower that is behind
	logs    *worker.LogStore
	maxLine int

	mu      sync.Mutex
	pending map[string]*strings.Builder // unfinished line by stream name
}

func newOutputLog(ctx context.Context, logs *worker.LogStore, maxLine int) *outputLog {
	return &outputLog{ctx: ctx, logs: logs, maxLine: maxLine, pending: map[string]*strings.Builder{}}
}

func (l *outputLog) write(o jupyter.Output) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch o.Type {
	case "stream":
		typ := worker.LogStdout
		if o.Name == "stderr" {
			typ = worker.LogStderr
		}
		l.stream(o.Name, typ, o.Text)
	case "error":
		if o.Error == nil {
			return
		}
		l.flushLocked()
		l.logs.Append(worker.LogError, clipLine(fmt.Sprintf("%s: %s", o.Error.Ename, o.Error.Evalue), l.maxLine))
		for _, tb := range o.Error.Traceback {
			for _, line := range strings.Split(stripANSI(tb), "\n") {
				if line != "" {
					l.logs.Append(worker.LogError, clipLine(line, l.maxLine))
				}
			}
		}
	case "execute_result", "display_data", "update_display_data":
		l.flushLocked()
		l.logs.Append(worker.LogInfo, clipLine(describeData(o.Type, o.Data), l.maxLine))
	}
}

// stream appends text to the stream's unfinished line and logs every
// complete line.
func (l *outputLog) stream(name string, typ worker.LogType, text string) {
	b := l.pending[name]
	if b == nil {
		b = &strings.Builder{}
		l.pending[name] = b
	}
	for text != "" {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			b.WriteString(text)
			l.splitLong(b, typ)
			return
		}
		b.WriteString(text[:i])
		text = text[i+1:]
		l.splitLong(b, typ)
		l.logs.Append(typ, strings.TrimSuffix(b.String(), "\r"))
		b.Reset()
	}
}

// splitLong logs the front of a line longer than the cap as partial
// entries, keeping the rest pending.
func (l *outputLog) splitLong(b *strings.Builder, typ worker.LogType) {
	if b.Len() <= l.maxLine {
		return
	}
	s := b.String()
	for len(s) > l.maxLine {
		cut := l.maxLine
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = l.maxLine
		}
		l.logs.AppendWait(l.ctx, typ, strings.ToValidUTF8(s[:cut], "\uFFFD"), true)
		s = s[cut:]
	}
	b.Reset()
	b.WriteString(s)
}

// flush logs the unfinished lines (the end of an execution).
func (l *outputLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *outputLog) flushLocked() {
	names := make([]string, 0, len(l.pending))
	for n := range l.pending {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := l.pending[n]
		if b.Len() == 0 {
			continue
		}
		typ := worker.LogStdout
		if n == "stderr" {
			typ = worker.LogStderr
		}
		l.logs.Append(typ, b.String())
		b.Reset()
	}
}

// describeData is the log line of a result or display: its text/plain form
// and the kinds of data it holds.
func describeData(typ string, data map[string]any) string {
	kinds := make([]string, 0, len(data))
	for k := range data {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	label := "Result"
	if typ != "execute_result" {
		label = "Display"
	}
	text, _ := data["text/plain"].(string)
	if len(kinds) == 1 && kinds[0] == "text/plain" {
		return label + ": " + text
	}
	return fmt.Sprintf("%s [%s]: %s", label, strings.Join(kinds, ", "), text)
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// stripANSI removes terminal colour codes (IPython colours tracebacks).
func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

// clipLine bounds a log line or message, at a character boundary.
func clipLine(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes cut)", len(s)-cut)
}

// specOf reads the environment spec of a manifest (dependencies,
// channels) and checks it, with a clear error naming what is wrong.
func specOf(man worker.Manifest) (condaenv.Spec, error) {
	spec, err := condaenv.SpecFromManifest(man["dependencies"], man["channels"])
	if err == nil {
		spec = spec.Normalize()
		err = spec.Validate()
	}
	if err != nil {
		return condaenv.Spec{}, fmt.Errorf("%w: manifest: %w", worker.ErrInvalidConfig, err)
	}
	return spec, nil
}

// describeSpec is a short description of a spec for progress messages.
func describeSpec(s condaenv.Spec) string {
	parts := append([]string(nil), s.Dependencies...)
	for _, p := range s.Pip {
		parts = append(parts, "pip:"+p)
	}
	more := ""
	if len(parts) > 6 {
		more = fmt.Sprintf(" and %d more", len(parts)-6)
		parts = parts[:6]
	}
	return strings.Join(parts, ", ") + more
}
