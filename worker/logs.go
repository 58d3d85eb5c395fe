package worker

import (
	"context"
	"fmt"
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
	Seq int64
	// TypeSeq numbers the entries of one Type from 0 the same way: it is
	// the absolute offset get_logs uses with a type filter.
	TypeSeq int64
	Time    time.Time
	Type    LogType
	Content string
	// Partial marks a piece of a line that was longer than the producer's
	// line cap: the line goes on in the next entry of the same Type, with
	// no line break in between.
	Partial bool
}

// ToMap is the current server's item shape, {"type", "content"}, plus
// "partial": true on the pieces of a split line.
func (e LogEntry) ToMap() map[string]any {
	m := map[string]any{"type": string(e.Type), "content": e.Content}
	if e.Partial {
		m["partial"] = true
	}
	return m
}

// Default caps for one session's logs. Upstream keeps logs unbounded (the
// browser worker) or caps by count only; a byte cap is what actually bounds
// memory when one entry holds a whole process output.
const (
	DefaultMaxLogEntries = 100_000
	DefaultMaxLogBytes   = 64 << 20
)

// Following limits.
const (
	// MaxLogWait bounds the wait of one get_logs call (LogQuery.Wait).
	MaxLogWait = 20 * time.Second
	// HoldTTL is how long a follower's hold (LogQuery.Follower) lasts
	// without a new call: a follower that went away stops holding the
	// producer back after this long.
	HoldTTL = 10 * time.Second
	// MaxHolds bounds the followers one store holds back for at once;
	// more followers are served without back-pressure.
	MaxHolds = 8
	// MaxPageBytes bounds the content of one page (plus a small overhead
	// per entry): a page stops before the entry that would cross it (it always has at least one entry), so
	// that a result fits a websocket frame; next_offset says where to go on.
	MaxPageBytes = 4 << 20
	// pageEntryOverhead is what one entry adds to a page besides its
	// content (its map on the wire, roughly), so that a page of many tiny
	// entries is bounded too.
	pageEntryOverhead = 32
	// MaxFollowerLen bounds a follower id.
	MaxFollowerLen = 64
	// holdSlackEntries and holdSlackBytes are how far a non-blocking
	// Append may go beyond the caps rather than drop what a follower has
	// not read yet (the worker's own few lines while the app is held).
	holdSlackEntries = 256
	holdSlackBytes   = 256 << 10
)

// LogLimits caps a LogStore. Zero or negative values mean the defaults;
// there is deliberately no "unbounded" setting.
type LogLimits struct {
	MaxEntries int
	// MaxBytes caps the sum of len(Content). A single entry longer than this
	// keeps only its last MaxBytes bytes (the end of an output is where the
	// error usually is).
	MaxBytes int
	// DropWhenBehind turns back-pressure off: AppendWait then never waits
	// for a follower and the oldest entries are dropped as with Append.
	DropWhenBehind bool
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

// hold is a live follower's position: it has read every entry before from.
type hold struct {
	from    int64
	expires time.Time
}

// LogStore is a bounded, append-only log of one session, safe for
// concurrent use. When a cap is exceeded the oldest entries are dropped and
// counted. Followers wait for new entries with Since, Follow or PageWait.
//
// Back-pressure. A follower may hold the store (LogQuery.Follower): while
// it has not read the oldest retained entry and the store is full,
// AppendWait (the producers that can wait, such as the process worker's
// pipe readers) blocks instead of dropping, so the app itself blocks on
// its output. Memory stays within the caps. A hold lapses HoldTTL after the
// follower's last call.
type LogStore struct {
	limits LogLimits
	now    func() time.Time

	mu          sync.Mutex
	entries     []LogEntry // entries[head:] are retained, oldest first
	head        int
	bytes       int
	nextSeq     int64
	typeNext    map[LogType]int64 // entries ever appended, per type
	typeDropped map[LogType]int64 // entries evicted, per type
	stats       LogStats
	notify      chan struct{} // created on demand by Since, closed by the next Append
	room        chan struct{} // created on demand by AppendWait, closed when a hold moves
	holds       map[string]hold
	waiting     int // producers blocked in AppendWait
	closed      bool
}

// NewLogStore returns an empty store with the given caps.
func NewLogStore(limits LogLimits) *LogStore {
	return &LogStore{
		limits: limits.withDefaults(), now: time.Now,
		typeNext: map[LogType]int64{}, typeDropped: map[LogType]int64{},
	}
}

// closedChan is returned to followers of a closed store.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Append stores one entry and returns its Seq, or -1 if the store is closed
// (the session is gone; late output is discarded rather than an error,
// because producers such as pipe readers race with stop). It never blocks:
// when a follower holds the store it may exceed the caps by a small slack
// before it drops entries the follower has not read.
func (s *LogStore) Append(typ LogType, content string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendLocked(typ, content, false)
}

// AppendWait is Append for producers that can wait: while a live follower
// has not read the oldest entry and the store is full, it blocks until the
// follower reads on, its hold lapses, the store is closed or ctx is done
// (then it appends, dropping the oldest entries as Append does). partial
// marks a piece of a longer line (LogEntry.Partial).
func (s *LogStore) AppendWait(ctx context.Context, typ LogType, content string, partial bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && !s.limits.DropWhenBehind && ctx.Err() == nil {
		now := s.now()
		floor, until, ok := s.floorLocked(now)
		live := len(s.entries) - s.head
		full := live+1 > s.limits.MaxEntries || s.bytes+len(content) > s.limits.MaxBytes
		if !ok || !full || live == 0 || floor > s.entries[s.head].Seq {
			break
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.waiting++
		s.mu.Unlock()
		t := time.NewTimer(until.Sub(now))
		select {
		case <-room:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		s.mu.Lock()
		s.waiting--
	}
	return s.appendLocked(typ, content, partial)
}

// floorLocked drops lapsed holds and returns the lowest position a live
// follower still needs and when the earliest hold lapses.
func (s *LogStore) floorLocked(now time.Time) (floor int64, until time.Time, ok bool) {
	for id, h := range s.holds {
		if !now.Before(h.expires) {
			delete(s.holds, id)
			continue
		}
		if !ok || h.from < floor {
			floor = h.from
		}
		if !ok || h.expires.Before(until) {
			until = h.expires
		}
		ok = true
	}
	return floor, until, ok
}

func (s *LogStore) appendLocked(typ LogType, content string, partial bool) int64 {
	if typ == "" {
		typ = LogLog
	}
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
	e := LogEntry{Seq: s.nextSeq, TypeSeq: s.typeNext[typ], Time: s.now(), Type: typ, Content: content, Partial: partial}
	s.nextSeq++
	s.typeNext[typ]++
	s.entries = append(s.entries, e)
	s.bytes += len(content)
	var floor int64
	held, checked := false, false
	for {
		live := len(s.entries) - s.head
		if live <= s.limits.MaxEntries && s.bytes <= s.limits.MaxBytes {
			break
		}
		if !checked { // only when something must go: holds cost a map walk
			floor, _, held = s.floorLocked(e.Time)
			held = held && !s.limits.DropWhenBehind
			checked = true
		}
		old := s.entries[s.head]
		if held && old.Seq >= floor && live <= s.limits.MaxEntries+holdSlackEntries &&
			s.bytes <= s.limits.MaxBytes+holdSlackBytes && live > 1 {
			break // a follower still needs it; AppendWait producers are waiting
		}
		s.entries[s.head] = LogEntry{} // release the string
		s.head++
		s.bytes -= len(old.Content)
		s.stats.Dropped++
		s.stats.DroppedBytes += int64(len(old.Content))
		s.typeDropped[old.Type]++
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

// Hold records that follower id has read every entry before from (an
// absolute Seq) and is live for ttl (HoldTTL when ttl <= 0): until then
// AppendWait does not drop what it has not read. It returns false when
// MaxHolds other followers already hold the store.
func (s *LogStore) Hold(id string, from int64, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holdLocked(id, from, ttl)
}

// initialHold is the id of HoldForFirstFollower's hold; it is not a valid
// follower id (those are printable ASCII).
const initialHold = "\x00first"

// HoldForFirstFollower holds the store from its first entry for ttl
// (HoldTTL when ttl <= 0) or until a follower registers its own hold,
// whichever comes first, so that the output an app writes before its
// follower's first call (`hypha run` starts, then follows) is not lost
// either. Without a follower the app is held back at most ttl, and only if
// it fills the retention first.
func (s *LogStore) HoldForFirstFollower(ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdLocked(initialHold, 0, ttl)
}

// Release ends follower id's hold.
func (s *LogStore) Release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.holds, id)
	s.wakeProducersLocked()
}

func (s *LogStore) wakeProducersLocked() {
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}

// Waiting reports how many producers are blocked in AppendWait.
func (s *LogStore) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// Close wakes all followers and producers and makes further appends no-ops.
// Retained entries stay readable.
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
	s.wakeProducersLocked()
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
	return entries, next, s.waitChanLocked()
}

func (s *LogStore) waitChanLocked() <-chan struct{} {
	if s.closed {
		return closedChan
	}
	if s.notify == nil {
		s.notify = make(chan struct{})
	}
	return s.notify
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

// LogQuery selects a page of logs, as get_logs(type, offset, limit, wait,
// follower).
type LogQuery struct {
	// Type filters by log type; empty means all types.
	Type LogType
	// Offset is an absolute position in the session's log: the number of
	// entries (of Type, when set) written before the first one wanted,
	// counted from the first entry ever written, retained or not. While
	// nothing was dropped this is the index into the retained entries,
	// upstream's meaning. Negative values count from the end of the
	// retained entries, like the Python slice items[offset:offset+limit]
	// that upstream workers use (offset=-10 gives the last ten).
	Offset int
	// Limit caps the number of items; zero or negative means no limit.
	// (Upstream returns nothing for limit=0; nobody asks for that, and a
	// zero-value LogQuery meaning "everything" is more useful in Go.)
	// A page also stops at MaxPageBytes of content.
	Limit int
	// Wait, when positive, makes a query at or past the end wait up to
	// this long (at most MaxLogWait) for a new entry, or for the session
	// to end, before it answers with no items: a long poll.
	Wait time.Duration
	// Follower, when set (with no Type and Offset >= 0), is an opaque id of
	// a live follower that has read everything before Offset: the store
	// holds back the producer instead of dropping what it has not read
	// (see LogStore), for HoldTTL after this call.
	Follower string
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

// ParseLogFollow adds the decoded wait (seconds, a number or nil; more than
// MaxLogWait is cut to it) and follower (a string of at most MaxFollowerLen
// printable ASCII characters, or nil) arguments of get_logs to q.
func ParseLogFollow(q LogQuery, wait, follower any) (LogQuery, error) {
	var secs float64
	switch v := wait.(type) {
	case nil:
	case float64:
		secs = v
	case float32:
		secs = float64(v)
	default:
		n, ok := wireInt(wait)
		if !ok {
			return q, badField("wait", "number of seconds", wait)
		}
		secs = float64(n)
	}
	if secs < 0 || secs != secs {
		return q, badField("wait", "non-negative number of seconds", wait)
	}
	q.Wait = min(time.Duration(secs*float64(time.Second)), MaxLogWait)
	f, ok := wireString(follower)
	if !ok || len(f) > MaxFollowerLen {
		return q, badField("follower", fmt.Sprintf("string of at most %d characters", MaxFollowerLen), follower)
	}
	for _, r := range f {
		if r < 0x21 || r > 0x7e {
			return q, badField("follower", "printable ASCII string", follower)
		}
	}
	q.Follower = f
	return q, nil
}

// LogPage is one page of logs plus what the wire result needs.
type LogPage struct {
	Query LogQuery
	Items []LogEntry
	// Total is the number of entries matching Query.Type ever written: the
	// end of the log in absolute offsets. While nothing was dropped it is
	// the number of retained entries, upstream's meaning.
	Total int
	// Dropped is how many entries matching Query.Type the store has
	// evicted: the entries at offsets [0, FirstOffset). FirstOffset is
	// the absolute offset of the oldest retained one (== Dropped).
	Dropped     int64
	FirstOffset int64
	// NextOffset is the offset to ask for next to read on without gaps.
	NextOffset int64
	// Missed counts the entries between Query.Offset and the first item
	// that were dropped before this read: a follower that fell behind the
	// retention lost exactly these.
	Missed int64
	// Status is the session's status when the page was read ("" when not
	// known), so that a follower knows when it has seen the end.
	Status string
	// Wire is the page exactly as a remote worker sent it (set by
	// LogPageFromMap); ToMap returns it unchanged, so that a page passes
	// through the apps controller in its worker's own shape.
	Wire map[string]any
}

// Page returns the entries selected by q, oldest first. With q.Follower it
// also records the follower's hold (Hold). It does not wait (see PageWait).
func (s *LogStore) Page(q LogQuery) LogPage {
	p, _ := s.page(q)
	return p
}

// PageWait is Page with q.Wait: when the page has no items and the query
// is at or past the end, it waits (at most q.Wait) for a new entry, the
// store's Close, ended being closed (the session ended) or ctx, then
// reads again.
func (s *LogStore) PageWait(ctx context.Context, q LogQuery, ended <-chan struct{}) LogPage {
	p, wait := s.page(q)
	if q.Wait <= 0 || len(p.Items) > 0 || q.Offset < 0 {
		return p
	}
	t := time.NewTimer(min(q.Wait, MaxLogWait))
	defer t.Stop()
	for len(p.Items) == 0 {
		select {
		case <-wait:
		case <-ended:
			p, _ = s.page(q)
			return p
		case <-t.C:
			return p
		case <-ctx.Done():
			return p
		}
		p, wait = s.page(q)
	}
	return p
}

func (s *LogStore) page(q LogQuery) (LogPage, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.entries[s.head:]
	p := LogPage{Query: q}
	var items []LogEntry
	if q.Type == "" {
		first := s.nextSeq - int64(len(live))
		p.Total, p.Dropped, p.FirstOffset = int(s.nextSeq), first, first
		if q.Offset < 0 {
			start, stop := pySlice(len(live), q.Offset, q.Limit)
			items = live[start:stop]
		} else {
			from := max(int64(q.Offset), first)
			if q.Follower != "" {
				// A refused hold (MaxHolds) serves the follower without back-pressure.
				s.holdLocked(q.Follower, int64(q.Offset), 0)
			}
			if from < s.nextSeq {
				items = live[from-first:]
				if q.Limit > 0 && len(items) > q.Limit {
					items = items[:q.Limit]
				}
			}
		}
	} else {
		total, first := s.typeNext[q.Type], s.typeDropped[q.Type]
		p.Total, p.Dropped, p.FirstOffset = int(total), first, first
		if q.Offset < 0 {
			var matched []LogEntry
			for _, e := range live {
				if e.Type == q.Type {
					matched = append(matched, e)
				}
			}
			start, stop := pySlice(len(matched), q.Offset, q.Limit)
			items = matched[start:stop]
		} else {
			for _, e := range live {
				if e.Type == q.Type && e.TypeSeq >= int64(q.Offset) {
					items = append(items, e)
					if q.Limit > 0 && len(items) >= q.Limit {
						break
					}
				}
			}
		}
	}
	size := 0
	for i, e := range items {
		size += len(e.Content) + pageEntryOverhead
		if i > 0 && size > MaxPageBytes {
			items = items[:i]
			break
		}
	}
	p.Items = append([]LogEntry(nil), items...)
	pos := func(e LogEntry) int64 {
		if q.Type == "" {
			return e.Seq
		}
		return e.TypeSeq
	}
	switch {
	case len(p.Items) > 0:
		p.NextOffset = pos(p.Items[len(p.Items)-1]) + 1
		if q.Offset >= 0 {
			p.Missed = max(0, pos(p.Items[0])-int64(q.Offset))
		}
	case q.Offset >= 0:
		p.NextOffset = min(max(int64(q.Offset), p.FirstOffset), int64(p.Total))
		p.Missed = max(0, p.FirstOffset-int64(q.Offset))
	default:
		p.NextOffset = int64(p.Total)
	}
	return p, s.waitChanLocked()
}

// holdLocked is Hold with s.mu held.
func (s *LogStore) holdLocked(id string, from int64, ttl time.Duration) bool {
	if ttl <= 0 {
		ttl = HoldTTL
	}
	now := s.now()
	s.floorLocked(now) // forget lapsed holds
	if id != initialHold {
		delete(s.holds, initialHold) // a follower came: it holds for itself
	}
	if _, ok := s.holds[id]; !ok && len(s.holds) >= MaxHolds {
		return false
	}
	if s.holds == nil {
		s.holds = map[string]hold{}
	}
	s.holds[id] = hold{from: from, expires: now.Add(ttl)}
	s.wakeProducersLocked()
	return true
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
var reservedLogKeys = map[string]bool{
	"items": true, "total": true, "offset": true, "limit": true, "dropped": true,
	"first_offset": true, "next_offset": true, "missed": true, "status": true,
}

// ToMap renders the page as the get_logs result:
//
//	{"items": [{"type", "content"}, …], "total", "offset", "limit",
//	 "dropped", "first_offset", "next_offset", "missed"[, "status"]}
//
// The first four are the current server's shape (limit is nil when there is
// none), with offsets absolute (LogQuery.Offset); the others say what the
// retention dropped and where to read on (LogPage). When the query has no
// type filter and is not a follow (no Wait, no Follower) it also carries the
// seed's per-type lists of the same page, e.g. "log": [...], "error":
// [...], "stdout": [...] ("log" and "error" are always present, as in the
// seed). The server's start-failure path still reads logs["error"] to build
// its message (worker-contract §1.8), so this makes failures readable there.
// Numbers are int64, lists []any, as decoded wire values are.
func (p LogPage) ToMap() map[string]any {
	if p.Wire != nil {
		return p.Wire
	}
	items := make([]any, len(p.Items))
	for i, e := range p.Items {
		items[i] = e.ToMap()
	}
	m := map[string]any{
		"items":        items,
		"total":        int64(p.Total),
		"offset":       int64(p.Query.Offset),
		"limit":        nil,
		"dropped":      p.Dropped,
		"first_offset": p.FirstOffset,
		"next_offset":  p.NextOffset,
		"missed":       p.Missed,
	}
	if p.Query.Limit > 0 {
		m["limit"] = int64(p.Query.Limit)
	}
	if p.Status != "" {
		m["status"] = p.Status
	}
	if p.Query.Type == "" && p.Query.Wait <= 0 && p.Query.Follower == "" {
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
