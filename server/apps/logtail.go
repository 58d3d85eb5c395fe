package apps

import (
	"fmt"

	"github.com/hypha-go/hypha/internal/convert"
)

// The controller keeps the last log entries of each session it runs, so
// that they stay readable when the worker can no longer be asked (it
// disconnected or forgot the session). Bounded per session by count and by
// bytes; ended sessions are themselves bounded (Limits.EndedSessionTTL and
// maxEndedPerWorkspace), so the whole cache is bounded.
const (
	tailMaxEntries = 500
	tailMaxBytes   = 256 << 10
)

// logTail is the cached end of a session's logs: {type, content} items,
// oldest first.
type logTail struct {
	items []any
	// missing counts the entries before items that the cache does not hold:
	// those the worker had beyond what was fetched, plus those the worker
	// itself had already dropped.
	missing int64
}

// fromPage builds a tail from a worker's get_logs result (the {items, total,
// dropped} shape), keeping at most tailMaxEntries entries and tailMaxBytes
// bytes of content. It returns nil when the result has no items list.
func tailFromPage(v any) *logTail {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	items, ok := m["items"].([]any)
	if !ok {
		return nil
	}
	t := &logTail{}
	if total, ok := convert.Number(m["total"]); ok && int64(total) > int64(len(items)) {
		t.missing = int64(total) - int64(len(items))
	}
	if d, ok := convert.Number(m["dropped"]); ok && d > 0 {
		t.missing += int64(d)
	}
	if len(items) > tailMaxEntries {
		t.missing += int64(len(items) - tailMaxEntries)
		items = items[len(items)-tailMaxEntries:]
	}
	// Keep the newest entries that fit in tailMaxBytes; a single larger
	// entry keeps its end (where an error usually is).
	size := 0
	start := len(items)
	for start > 0 {
		e := entryContent(items[start-1])
		if size+len(e) > tailMaxBytes {
			if start == len(items) {
				im, _ := items[start-1].(map[string]any)
				cut := map[string]any{"type": im["type"], "content": "[entry truncated] " + e[len(e)-tailMaxBytes:]}
				t.items = []any{cut}
				t.missing += int64(start - 1)
				return t
			}
			break
		}
		size += len(e)
		start--
	}
	t.missing += int64(start)
	t.items = make([]any, 0, len(items)-start)
	for _, it := range items[start:] {
		im, _ := it.(map[string]any)
		t.items = append(t.items, map[string]any{"type": im["type"], "content": entryContent(it)})
	}
	return t
}

func entryContent(it any) string {
	im, _ := it.(map[string]any)
	switch c := im["content"].(type) {
	case string:
		return c
	case nil:
		return ""
	default:
		return fmt.Sprint(c)
	}
}

// page filters and pages the cached tail like a worker's get_logs, and
// says that the answer comes from the controller's cache and what it lacks.
func (t *logTail) page(typ any, offset int64, limit any) map[string]any {
	var sel []any
	if t != nil {
		for _, it := range t.items {
			im, _ := it.(map[string]any)
			if typ != nil && (im == nil || im["type"] != typ) {
				continue
			}
			sel = append(sel, it)
		}
	}
	total := int64(len(sel))
	start := offset
	if start < 0 {
		start += total
	}
	start = min(max(start, 0), total)
	end := total
	if l, ok := limit.(int64); ok && l > 0 {
		end = min(start+l, total)
	}
	page := append([]any{}, sel[start:end]...)
	out := map[string]any{
		"items": page, "total": total, "offset": offset, "limit": limit,
		"cached": true,
	}
	var missing int64
	if t != nil {
		missing = t.missing
	}
	out["truncated"] = missing > 0
	out["note"] = "the worker cannot be asked: these are the session's last log entries as the controller kept them"
	if missing > 0 {
		out["dropped"] = missing
		out["note"] = fmt.Sprintf("the worker cannot be asked: these are the session's last %d log entries as the controller kept them; %d earlier entries are not available",
			len(t.items), missing)
	}
	return out
}

// same reports whether u holds the same entries as t (nothing new to
// persist).
func (t *logTail) same(u *logTail) bool {
	if t == nil || u == nil {
		return t == u
	}
	if t.missing != u.missing || len(t.items) != len(u.items) {
		return false
	}
	for i := range t.items {
		if entryContent(t.items[i]) != entryContent(u.items[i]) {
			return false
		}
	}
	return true
}
