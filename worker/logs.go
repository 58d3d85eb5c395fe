package worker

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// LogType is the kind of a log entry. The named ones are what the SDK and the
// built-in workers use; any other non-empty string (e.g. "console",
// "progress", "debug") is allowed too.
type LogType string

const (
	LogStdout LogType = "stdout"
	LogStderr LogType = "stderr"
	LogInfo   LogType = "info"
	LogError  LogType = "error"
	// LogLog is the seed's generic type; an empty type is stored as this.
	LogLog LogType = "log"
)

// LogEntry is one stored log entry.
type LogEntry struct {
	// Seq numbers the entries of a store from 0 in append order. It keeps
	// counting when old entries are dropped, so followers can resume (Since)
	// and see gaps.
	Seq     int64
	Time    time.Time
	Type    LogType
	Content string
}

// ToMap is the current server's item shape, {"type", "content"}.
func (e LogEntry) ToMap() map[string]any {
	return map[string]any{"type": string(e.Type), "content": e.Content}
}

// Default caps for one session's logs. Upstream keeps logs unbounded (the
// browser worker) or caps by count only; a byte cap is what actually bounds
// memory when one entry holds a whole process output.
const (
	DefaultMaxLogEntries = 4096
	DefaultMaxLogBytes   = 1 << 20
)

// LogLimits caps a LogStore. Zero or negative values mean the defaults;
// there is deliberately no "unbounded" setting.
type LogLimits struct {
	MaxEntries int
	// MaxBytes caps the sum of len(Content). A single entry longer than this
	// keeps only its last MaxBytes bytes (the end of an output is where the
	// error usually is).
	MaxBytes int
}

func (l LogLimits) withDefaults() LogLimits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxLogEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxLogBytes
	}
	return l
}

// LogStats counts what a LogStore holds and what it lost.
type LogStats struct {
	// Entries and Bytes are what is retained now.
	Entries int
	Bytes   int
	// Appended is the number of entries ever appended (the next Seq).
	Appended int64
	// Dropped counts whole entries evicted to respect the caps.
	Dropped int64
	// DroppedBytes counts content bytes lost: evicted entries plus the cut
	// part of truncated ones.
	DroppedBytes int64
	// Truncated counts entries that were longer than MaxBytes on their own.
	Truncated int64
}

// LogStore is a bounded, append-only log of one session, safe for
// concurrent use. When a cap is exceeded the oldest entries are dropped and
// counted. Followers wait for new entries with Since or Follow.
type LogStore struct {
	limits LogLimits
	now    func() time.Time

	mu      sync.Mutex
	entries []LogEntry // entries[head:] are retained, oldest first
	head    int
	bytes   int
	nextSeq int64
	stats   LogStats
	notify  chan struct{} // created on demand by Since, closed by the next Append
	closed  bool
}

// NewLogStore returns an empty store with the given caps.
func NewLogStore(limits LogLimits) *LogStore {
	return &LogStore{limits: limits.withDefaults(), now: time.Now}
}

// closedChan is returned to followers of a closed store.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Append stores one entry and returns its Seq, or -1 if the store is closed
// (the session is gone; late output is discarded rather than an error,
// because producers such as pipe readers race with stop).
func (s *LogStore) Append(typ LogType, content string) int64 {
	if typ == "" {
		typ = LogLog
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return -1
	}
	if over := len(content) - s.limits.MaxBytes; over > 0 {
		cut := over
		for cut < len(content) && !utf8.RuneStart(content[cut]) {
			cut++
		}
		// Clone so the retained tail does not pin the whole original string.
		content = strings.Clone(content[cut:])
		s.stats.Truncated++
		s.stats.DroppedBytes += int64(cut)
	}
	e := LogEntry{Seq: s.nextSeq, Time: s.now(), Type: typ, Content: content}
	s.nextSeq++
	s.entries = append(s.entries, e)
	s.bytes += len(content)
	for len(s.entries)-s.head > s.limits.MaxEntries || s.bytes > s.limits.MaxBytes {
		old := s.entries[s.head]
		s.entries[s.head] = LogEntry{} // release the string
		s.head++
		s.bytes -= len(old.Content)
		s.stats.Dropped++
		s.stats.DroppedBytes += int64(len(old.Content))
	}
	// Compact once the dead prefix dominates, so memory stays O(retained).
	if s.head > 64 && s.head > len(s.entries)/2 {
		n := copy(s.entries, s.entries[s.head:])
		clear(s.entries[n:])
		s.entries = s.entries[:n]
		s.head = 0
	}
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	return e.Seq
}

// Close wakes all followers and makes further appends no-ops. Retained
// entries stay readable.
func (s *LogStore) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
}

// Closed reports whether Close was called.
func (s *LogStore) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Stats returns the current counters.
func (s *LogStore) Stats() LogStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Entries = len(s.entries) - s.head
	st.Bytes = s.bytes
	st.Appended = s.nextSeq
	return st
}

// Since returns the retained entries with Seq >= from (at most limit of
// them; limit <= 0 means all), the Seq to pass next time, and a channel that is
// closed by the next Append or by Close. If entries[0].Seq > from, the ones
// in between were dropped. Once the store is closed the channel is always
// closed; stop following when Since returns no entries and Closed is true.
//
// This is the primitive behind `logs --follow`:
//
//	for {
//		batch, next, wait := store.Since(from, 0)
//		emit(batch); from = next
//		if len(batch) == 0 && store.Closed() { break }
//		if len(batch) == 0 { select { case <-wait: case <-ctx.Done(): return } }
//	}
func (s *LogStore) Since(from int64, limit int) (entries []LogEntry, next int64, wait <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.entries[s.head:]
	first := s.nextSeq - int64(len(live))
	start := max(from, first)
	if start < s.nextSeq {
		batch := live[start-first:]
		if limit > 0 && len(batch) > limit {
			batch = batch[:limit]
		}
		entries = append([]LogEntry(nil), batch...)
	}
	next = start + int64(len(entries))
	if s.closed {
		return entries, next, closedChan
	}
	if s.notify == nil {
		s.notify = make(chan struct{})
	}
	return entries, next, s.notify
}

// Follow calls fn for every entry with Seq >= from, in order, waiting for
// new ones, until ctx is done (returns ctx.Err()), fn fails (returns its
// error) or the store is closed and drained (returns nil). It returns the
// Seq to resume from.
func (s *LogStore) Follow(ctx context.Context, from int64, fn func(LogEntry) error) (int64, error) {
	for {
		batch, next, wait := s.Since(from, 256)
		for _, e := range batch {
			if err := fn(e); err != nil {
				return e.Seq, err
			}
		}
		from = next
		if len(batch) > 0 {
			continue
		}
		if s.Closed() {
			// Entries may have been appended after our Since and before
			// Close; read once more before declaring the end.
			if rest, _, _ := s.Since(from, 1); len(rest) == 0 {
				return from, nil
			}
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return from, ctx.Err()
		}
	}
}

// LogQuery selects a page of logs, as get_logs(type, offset, limit).
type LogQuery struct {
	// Type filters by log type; empty means all types.
	Type LogType
	// Offset indexes the filtered, retained entries. Negative values count
	// from the end, like the Python slice items[offset:offset+limit] that
	// upstream workers use (offset=-10 gives the last ten).
	Offset int
	// Limit caps the number of items; zero or negative means no limit.
	// (Upstream returns nothing for limit=0; nobody asks for that, and a
	// zero-value LogQuery meaning "everything" is more useful in Go.)
	Limit int
}

// ParseLogQuery converts the decoded get_logs arguments: type is a string or
// nil, offset and limit are integers or nil.
func ParseLogQuery(typ, offset, limit any) (LogQuery, error) {
	t, ok := wireString(typ)
	if !ok {
		return LogQuery{}, badField("type", "string", typ)
	}
	off, ok := wireInt(offset)
	if !ok || int64(int(off)) != off {
		return LogQuery{}, badField("offset", "integer", offset)
	}
	lim, ok := wireInt(limit)
	if !ok || lim < 0 || int64(int(lim)) != lim {
		return LogQuery{}, badField("limit", "non-negative integer", limit)
	}
	return LogQuery{Type: LogType(t), Offset: int(off), Limit: int(lim)}, nil
}

// LogPage is one page of logs plus what the wire result needs.
type LogPage struct {
	Query LogQuery
	Items []LogEntry
	// Total is the number of retained entries matching Query.Type (the count
	// after filtering, as upstream's code does, before offset/limit).
	Total int
	// Dropped is how many entries the store has evicted so far (any type),
	// so that a reader knows the log is incomplete.
	Dropped int64
}

// Page returns the entries selected by q, oldest first.
func (s *LogStore) Page(q LogQuery) LogPage {
	s.mu.Lock()
	var matched []LogEntry
	for _, e := range s.entries[s.head:] {
		if q.Type == "" || e.Type == q.Type {
			matched = append(matched, e)
		}
	}
	dropped := s.stats.Dropped
	s.mu.Unlock()

	start, stop := pySlice(len(matched), q.Offset, q.Limit)
	return LogPage{
		Query:   q,
		Items:   matched[start:stop:stop],
		Total:   len(matched),
		Dropped: dropped,
	}
}

// pySlice returns the bounds Python gives items[offset:offset+limit] (or
// items[offset:] without a limit) for a list of length n.
func pySlice(n, offset, limit int) (start, stop int) {
	norm := func(i int) int {
		if i < 0 {
			i += n
		}
		return min(max(i, 0), n)
	}
	start = norm(offset)
	stop = n
	if limit > 0 {
		// Each bound is normalised on its own, as Python does: with n=10,
		// items[-3:-3+5] is items[7:2], which is empty.
		stop = norm(offset + limit)
	}
	if stop < start {
		stop = start
	}
	return start, stop
}

// reservedLogKeys are result keys a log type must not overwrite in ToMap.
var reservedLogKeys = map[string]bool{"items": true, "total": true, "offset": true, "limit": true, "dropped": true}

// ToMap renders the page as the get_logs result:
//
//	{"items": [{"type", "content"}, …], "total", "offset", "limit"}
//
// which is the current server's shape (limit is nil when there is none).
// When the query has no type filter it also carries the seed's per-type
// lists of the same page, e.g. "log": [...], "error": [...], "stdout": [...]
// ("log" and "error" are always present, as in the seed). The server's
// start-failure path still reads logs["error"] to build its message
// (worker-contract §1.8), so this makes failures readable there. "dropped" is
// added only when the store has evicted entries. Numbers are int64, lists
// []any, as decoded wire values are.
func (p LogPage) ToMap() map[string]any {
	items := make([]any, len(p.Items))
	for i, e := range p.Items {
		items[i] = e.ToMap()
	}
	m := map[string]any{
		"items":  items,
		"total":  int64(p.Total),
		"offset": int64(p.Query.Offset),
		"limit":  nil,
	}
	if p.Query.Limit > 0 {
		m["limit"] = int64(p.Query.Limit)
	}
	if p.Dropped > 0 {
		m["dropped"] = p.Dropped
	}
	if p.Query.Type == "" {
		m[string(LogLog)] = []any{}
		m[string(LogError)] = []any{}
		for _, e := range p.Items {
			k := string(e.Type)
			if reservedLogKeys[k] {
				continue
			}
			list, _ := m[k].([]any)
			m[k] = append(list, e.Content)
		}
	}
	return m
}
