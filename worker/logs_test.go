package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func contents(es []LogEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Content)
	}
	return out
}

func TestLogPage(t *testing.T) {
	s := NewLogStore(LogLimits{})
	for i, typ := range []LogType{LogStdout, LogStderr, LogStdout, LogInfo, LogStdout, ""} {
		s.Append(typ, fmt.Sprint(i))
	}
	tests := []struct {
		name  string
		q     LogQuery
		want  []string
		total int
	}{
		{"all", LogQuery{}, []string{"0", "1", "2", "3", "4", "5"}, 6},
		{"type", LogQuery{Type: LogStdout}, []string{"0", "2", "4"}, 3},
		{"empty type is the seed's log", LogQuery{Type: LogLog}, []string{"5"}, 1},
		{"unknown type", LogQuery{Type: "console"}, []string{}, 0},
		{"offset", LogQuery{Offset: 4}, []string{"4", "5"}, 6},
		{"offset+limit", LogQuery{Offset: 1, Limit: 2}, []string{"1", "2"}, 6},
		{"type+offset+limit", LogQuery{Type: LogStdout, Offset: 1, Limit: 1}, []string{"2"}, 3},
		{"offset past end", LogQuery{Offset: 10}, []string{}, 6},
		{"limit past end", LogQuery{Offset: 5, Limit: 10}, []string{"5"}, 6},
		{"negative offset is a tail", LogQuery{Offset: -2}, []string{"4", "5"}, 6},
		{"negative offset+limit", LogQuery{Offset: -3, Limit: 2}, []string{"3", "4"}, 6},
		{"python: items[-3:2] is empty", LogQuery{Offset: -3, Limit: 5}, []string{}, 6},
		{"negative offset beyond start", LogQuery{Offset: -100}, []string{"0", "1", "2", "3", "4", "5"}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := s.Page(tt.q)
			if d := cmp.Diff(tt.want, contents(p.Items)); d != "" {
				t.Errorf("items (-want +got):\n%s", d)
			}
			if p.Total != tt.total {
				t.Errorf("total = %d, want %d", p.Total, tt.total)
			}
		})
	}
}

func TestLogPageToMap(t *testing.T) {
	s := NewLogStore(LogLimits{})
	s.Append(LogStdout, "out1")
	s.Append(LogError, "bad")
	s.Append(LogStdout, "out2")
	s.Append("items", "sneaky") // a type that collides with a result key

	got := s.Page(LogQuery{}).ToMap()
	want := map[string]any{
		"items": []any{
			map[string]any{"type": "stdout", "content": "out1"},
			map[string]any{"type": "error", "content": "bad"},
			map[string]any{"type": "stdout", "content": "out2"},
			map[string]any{"type": "items", "content": "sneaky"},
		},
		"total":  int64(4),
		"offset": int64(0),
		"limit":  nil,
		// what the retention dropped and where to read on
		"dropped": int64(0), "first_offset": int64(0), "next_offset": int64(4), "missed": int64(0),
		// seed per-type lists; log and error are always present
		"log":    []any{},
		"error":  []any{"bad"},
		"stdout": []any{"out1", "out2"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("ToMap without type (-want +got):\n%s", d)
	}

	got = s.Page(LogQuery{Type: LogStdout, Offset: 1, Limit: 5}).ToMap()
	want = map[string]any{
		"items":   []any{map[string]any{"type": "stdout", "content": "out2"}},
		"total":   int64(2),
		"offset":  int64(1),
		"limit":   int64(5),
		"dropped": int64(0), "first_offset": int64(0), "next_offset": int64(2), "missed": int64(0),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("ToMap with type (-want +got):\n%s", d)
	}
}

func TestLogCaps(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxEntries: 3})
		for i := range 5 {
			s.Append(LogInfo, fmt.Sprint(i))
		}
		p := s.Page(LogQuery{})
		if d := cmp.Diff([]string{"2", "3", "4"}, contents(p.Items)); d != "" {
			t.Error(d)
		}
		st := s.Stats()
		if st.Dropped != 2 || st.Entries != 3 || st.Appended != 5 || p.Dropped != 2 {
			t.Errorf("stats = %+v, page dropped %d", st, p.Dropped)
		}
		if m := p.ToMap(); m["dropped"] != int64(2) {
			t.Errorf("dropped in map = %#v", m["dropped"])
		}
	})
	t.Run("bytes", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxBytes: 10})
		s.Append(LogStdout, "aaaa")
		s.Append(LogStdout, "bbbb")
		s.Append(LogStdout, "cccc") // 12 bytes > 10: drop "aaaa"
		st := s.Stats()
		if d := cmp.Diff([]string{"bbbb", "cccc"}, contents(s.Page(LogQuery{}).Items)); d != "" {
			t.Error(d)
		}
		if st.Bytes != 8 || st.Dropped != 1 || st.DroppedBytes != 4 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("one entry over the byte cap keeps its tail on a rune boundary", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxBytes: 5})
		s.Append(LogStdout, "old")
		s.Append(LogStderr, "xyzé€!") // 1+1+1+2+3+1 = 9 bytes
		p := s.Page(LogQuery{})
		if len(p.Items) != 1 {
			t.Fatalf("items = %v", contents(p.Items))
		}
		got := p.Items[0].Content
		if got != "€!" || !utf8.ValidString(got) {
			t.Errorf("tail = %q", got)
		}
		st := s.Stats()
		if st.Truncated != 1 || st.Dropped != 1 || st.DroppedBytes != int64(len("old")+len("xyzé")) {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("many appends stay correct across compaction", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxEntries: 10})
		for i := range 1000 {
			s.Append(LogInfo, fmt.Sprint(i))
		}
		p := s.Page(LogQuery{})
		// Total is the end in absolute offsets: every entry ever written.
		if p.Total != 1000 || p.FirstOffset != 990 || p.Items[0].Content != "990" || p.Items[0].Seq != 990 || p.Items[9].Content != "999" {
			t.Errorf("after 1000 appends: %v", contents(p.Items))
		}
		if cap(s.entries) > 200 {
			t.Errorf("backing array grew to %d for 10 retained entries", cap(s.entries))
		}
	})
	t.Run("defaults", func(t *testing.T) {
		l := LogLimits{}.withDefaults()
		if l.MaxEntries != DefaultMaxLogEntries || l.MaxBytes != DefaultMaxLogBytes {
			t.Errorf("defaults = %+v", l)
		}
	})
}

func TestLogSince(t *testing.T) {
	s := NewLogStore(LogLimits{MaxEntries: 3})
	got, next, wait := s.Since(0, 0)
	if len(got) != 0 || next != 0 {
		t.Fatalf("empty: %v next %d", got, next)
	}
	s.Append(LogInfo, "a")
	select {
	case <-wait:
	default:
		t.Fatal("wait not closed by Append")
	}
	for _, c := range []string{"b", "c", "d", "e"} {
		s.Append(LogInfo, c)
	}
	// from=0 but a, b were dropped: we resume at the oldest retained (Seq 2)
	got, next, _ = s.Since(0, 2)
	if d := cmp.Diff([]string{"c", "d"}, contents(got)); d != "" || got[0].Seq != 2 || next != 4 {
		t.Errorf("Since(0,2) = %v next %d, diff %s", contents(got), next, d)
	}
	got, next, wait = s.Since(next, 0)
	if d := cmp.Diff([]string{"e"}, contents(got)); d != "" || next != 5 {
		t.Errorf("Since(4) = %v next %d", contents(got), next)
	}
	got, _, _ = s.Since(99, 0)
	if len(got) != 0 {
		t.Errorf("Since(future) = %v", contents(got))
	}
	s.Close()
	select {
	case <-wait:
	default:
		t.Fatal("wait not closed by Close")
	}
	if seq := s.Append(LogInfo, "late"); seq != -1 {
		t.Errorf("Append after Close = %d", seq)
	}
	_, _, wait = s.Since(5, 0)
	select {
	case <-wait:
	default:
		t.Error("a closed store must return a closed channel")
	}
}

func TestLogFollow(t *testing.T) {
	s := NewLogStore(LogLimits{})
	s.Append(LogStdout, "1")
	var seen []string
	done := make(chan error, 1)
	var next int64
	go func() {
		var err error
		next, err = s.Follow(context.Background(), 0, func(e LogEntry) error {
			seen = append(seen, e.Content)
			return nil
		})
		done <- err
	}()
	s.Append(LogStdout, "2")
	time.Sleep(5 * time.Millisecond)
	s.Append(LogStdout, "3")
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"1", "2", "3"}, seen); d != "" || next != 3 {
		t.Errorf("followed %v next %d", seen, next)
	}

	t.Run("ctx", func(t *testing.T) {
		s := NewLogStore(LogLimits{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := s.Follow(ctx, 0, func(LogEntry) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("fn error", func(t *testing.T) {
		s := NewLogStore(LogLimits{})
		s.Append(LogInfo, "a")
		s.Append(LogInfo, "b")
		stop := errors.New("client gone")
		seq, err := s.Follow(context.Background(), 0, func(e LogEntry) error {
			if e.Content == "b" {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || seq != 1 {
			t.Errorf("seq %d err %v", seq, err)
		}
	})
}

func TestParseLogQuery(t *testing.T) {
	tests := []struct {
		name               string
		typ, offset, limit any
		want               LogQuery
		wantErr            string
	}{
		{"all nil", nil, nil, nil, LogQuery{}, ""},
		{"wire ints", "stdout", int64(5), int64(10), LogQuery{Type: LogStdout, Offset: 5, Limit: 10}, ""},
		{"js integral floats", nil, 2.0, 3.0, LogQuery{Offset: 2, Limit: 3}, ""},
		{"negative offset", nil, int64(-10), nil, LogQuery{Offset: -10}, ""},
		{"go ints", "info", 1, 2, LogQuery{Type: LogInfo, Offset: 1, Limit: 2}, ""},
		{"bad type", int64(1), nil, nil, LogQuery{}, "type: want string"},
		{"fractional offset", nil, 1.5, nil, LogQuery{}, "offset: want integer"},
		{"string limit", nil, nil, "10", LogQuery{}, "limit: want non-negative integer"},
		{"negative limit", nil, nil, int64(-1), LogQuery{}, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLogQuery(tt.typ, tt.offset, tt.limit)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Error(d)
			}
		})
	}
}

// Trimming is reported: how many entries are gone, from which offset, and
// how many a reader that asked for them missed; offsets stay absolute.
func TestLogTrimReported(t *testing.T) {
	s := NewLogStore(LogLimits{MaxEntries: 100})
	for i := range 1000 {
		typ := LogStdout
		if i%10 == 9 {
			typ = LogStderr // 100 stderr entries: TypeSeq 0..99
		}
		s.Append(typ, fmt.Sprint(i))
	}
	p := s.Page(LogQuery{Limit: 10})
	if p.Total != 1000 || p.Dropped != 900 || p.FirstOffset != 900 || p.Missed != 900 || p.NextOffset != 910 {
		t.Fatalf("page from 0: total %d dropped %d first %d missed %d next %d", p.Total, p.Dropped, p.FirstOffset, p.Missed, p.NextOffset)
	}
	if p.Items[0].Content != "900" || p.Items[9].Content != "909" {
		t.Fatalf("items %v", contents(p.Items))
	}
	m := p.ToMap()
	for k, want := range map[string]int64{"dropped": 900, "first_offset": 900, "missed": 900, "next_offset": 910, "total": 1000} {
		if m[k] != want {
			t.Errorf("%s = %v, want %d", k, m[k], want)
		}
	}
	// A reader that read up to 950 misses nothing and pages on by offset.
	var got []string
	for off := 950; ; {
		p := s.Page(LogQuery{Offset: off, Limit: 7})
		if p.Missed != 0 {
			t.Fatalf("missed %d at %d", p.Missed, off)
		}
		got = append(got, contents(p.Items)...)
		if len(p.Items) == 0 {
			break
		}
		off = int(p.NextOffset)
	}
	if len(got) != 50 || got[0] != "950" || got[49] != "999" {
		t.Fatalf("paged %d entries: %v", len(got), got)
	}
	// With a type filter the offsets count that type only.
	p = s.Page(LogQuery{Type: LogStderr, Offset: 85, Limit: 2})
	if p.Total != 100 || p.FirstOffset != 90 || p.Missed != 5 || contents(p.Items)[0] != "909" || p.NextOffset != 92 {
		t.Fatalf("stderr page: total %d first %d missed %d next %d items %v", p.Total, p.FirstOffset, p.Missed, p.NextOffset, contents(p.Items))
	}
	// The tail still works as a Python slice of the retained entries.
	if p := s.Page(LogQuery{Offset: -2}); fmt.Sprint(contents(p.Items)) != "[998 999]" || p.NextOffset != 1000 {
		t.Fatalf("tail %v next %d", contents(p.Items), p.NextOffset)
	}
	// Past the end: nothing, next is the end.
	if p := s.Page(LogQuery{Offset: 5000}); len(p.Items) != 0 || p.NextOffset != 1000 {
		t.Fatalf("past the end: %v next %d", contents(p.Items), p.NextOffset)
	}
}

func TestLogPageBytes(t *testing.T) {
	s := NewLogStore(LogLimits{})
	big := strings.Repeat("x", MaxPageBytes/3+1)
	for range 4 {
		s.Append(LogStdout, big)
	}
	p := s.Page(LogQuery{})
	if len(p.Items) != 2 || p.NextOffset != 2 {
		t.Fatalf("page of %d items, next %d; want 2 within %d bytes", len(p.Items), p.NextOffset, MaxPageBytes)
	}
}

// A follower that holds the store is never dropped from under: the
// producer waits until it reads on.
func TestLogBackPressure(t *testing.T) {
	ctx := context.Background()
	s := NewLogStore(LogLimits{MaxEntries: 10})
	s.Hold("f", 0, time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			s.AppendWait(ctx, LogStdout, fmt.Sprint(i), false)
		}
	}()
	var got []string
	for off := int64(0); len(got) < 1000; {
		p := s.PageWait(ctx, LogQuery{Offset: int(off), Follower: "f", Wait: 5 * time.Second}, nil)
		if p.Missed != 0 {
			t.Fatalf("follower missed %d at %d", p.Missed, off)
		}
		got = append(got, contents(p.Items)...)
		off = p.NextOffset
	}
	<-done
	for i, c := range got {
		if c != fmt.Sprint(i) {
			t.Fatalf("entry %d is %q", i, c)
		}
	}
	if st := s.Stats(); st.Entries > 10 {
		t.Fatalf("store grew to %d entries while held", st.Entries)
	}
}

// A lapsed or released hold, a closed store or a cancelled context let the
// producer go on, dropping as usual; DropWhenBehind never waits.
func TestLogBackPressureEnds(t *testing.T) {
	fill := func(s *LogStore) {
		for i := range 3 {
			s.Append(LogStdout, fmt.Sprint(i))
		}
	}
	for _, tt := range []struct {
		name    string
		limits  LogLimits
		prepare func(s *LogStore) context.Context
		unblock func(s *LogStore, cancel context.CancelFunc)
	}{
		{"release", LogLimits{MaxEntries: 3}, nil, func(s *LogStore, _ context.CancelFunc) { s.Release("f") }},
		{"close", LogLimits{MaxEntries: 3}, nil, func(s *LogStore, _ context.CancelFunc) { s.Close() }},
		{"cancel", LogLimits{MaxEntries: 3}, nil, func(_ *LogStore, cancel context.CancelFunc) { cancel() }},
		{"follower reads on", LogLimits{MaxEntries: 3}, nil, func(s *LogStore, _ context.CancelFunc) { s.Page(LogQuery{Offset: 3, Follower: "f"}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewLogStore(tt.limits)
			fill(s)
			s.Hold("f", 0, time.Hour)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			appended := make(chan int64)
			go func() { appended <- s.AppendWait(ctx, LogStdout, "new", false) }()
			for s.Waiting() == 0 {
				time.Sleep(time.Millisecond)
			}
			select {
			case <-appended:
				t.Fatal("AppendWait did not wait for the follower")
			default:
			}
			tt.unblock(s, cancel)
			<-appended
		})
	}
	t.Run("lapse", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxEntries: 3})
		fill(s)
		s.Hold("f", 0, 50*time.Millisecond)
		if seq := s.AppendWait(context.Background(), LogStdout, "new", false); seq != 3 {
			t.Fatalf("seq %d", seq)
		}
		if p := s.Page(LogQuery{}); p.Dropped != 1 {
			t.Fatalf("dropped %d after the hold lapsed", p.Dropped)
		}
	})
	t.Run("drop when behind", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxEntries: 3, DropWhenBehind: true})
		fill(s)
		s.Hold("f", 0, time.Hour)
		s.AppendWait(context.Background(), LogStdout, "new", false)
		if p := s.Page(LogQuery{}); p.Dropped != 1 {
			t.Fatalf("dropped %d", p.Dropped)
		}
	})
	t.Run("first follower", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxEntries: 3})
		s.HoldForFirstFollower(time.Hour)
		fill(s)
		appended := make(chan int64)
		go func() { appended <- s.AppendWait(context.Background(), LogStdout, "new", false) }()
		for s.Waiting() == 0 {
			time.Sleep(time.Millisecond)
		}
		// The follower arrives: it reads from 0 and the first hold is its own.
		if p := s.Page(LogQuery{Offset: 0, Follower: "f"}); len(p.Items) != 3 || p.Missed != 0 {
			t.Fatalf("first page %v missed %d", contents(p.Items), p.Missed)
		}
		s.Page(LogQuery{Offset: 3, Follower: "f"})
		<-appended
	})
	t.Run("non-blocking appends keep a small slack for the follower", func(t *testing.T) {
		s := NewLogStore(LogLimits{MaxEntries: 3})
		fill(s)
		s.Hold("f", 0, time.Hour)
		s.Append(LogInfo, "process exited")
		if p := s.Page(LogQuery{Offset: 0, Follower: "f"}); p.Missed != 0 || len(p.Items) != 4 {
			t.Fatalf("missed %d, %v", p.Missed, contents(p.Items))
		}
	})
}

// PageWait answers at once when there is something, waits for the next
// entry otherwise, and returns when the session ends.
func TestLogPageWait(t *testing.T) {
	ctx := context.Background()
	s := NewLogStore(LogLimits{})
	res := make(chan LogPage)
	go func() { res <- s.PageWait(ctx, LogQuery{Offset: 0, Wait: MaxLogWait}, nil) }()
	s.Append(LogStdout, "late")
	if p := <-res; fmt.Sprint(contents(p.Items)) != "[late]" {
		t.Fatalf("items %v", contents(p.Items))
	}
	ended := make(chan struct{})
	go func() { res <- s.PageWait(ctx, LogQuery{Offset: 1, Wait: MaxLogWait}, ended) }()
	close(ended)
	if p := <-res; len(p.Items) != 0 || p.NextOffset != 1 {
		t.Fatalf("after the end: %v next %d", contents(p.Items), p.NextOffset)
	}
}

func TestParseLogFollow(t *testing.T) {
	q, err := ParseLogFollow(LogQuery{}, int64(3), "abc")
	if err != nil || q.Wait != 3*time.Second || q.Follower != "abc" {
		t.Fatalf("%+v %v", q, err)
	}
	if q, _ := ParseLogFollow(LogQuery{}, 1e9, nil); q.Wait != MaxLogWait {
		t.Fatalf("wait not capped: %v", q.Wait)
	}
	for _, bad := range []struct{ wait, follower any }{
		{-1.0, nil}, {"1", nil}, {nil, 5}, {nil, strings.Repeat("a", MaxFollowerLen+1)}, {nil, "a b"}, {nil, "\x00first"},
	} {
		if _, err := ParseLogFollow(LogQuery{}, bad.wait, bad.follower); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseLogFollow(%#v, %#v) = %v, want ErrInvalidConfig", bad.wait, bad.follower, err)
		}
	}
}
