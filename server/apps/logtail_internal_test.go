package apps

import (
	"fmt"
	"strings"
	"testing"
)

func items(n, size int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"type": "stdout", "content": fmt.Sprintf("%d:%s", i, strings.Repeat("x", size))}
	}
	return out
}

// TestLogTailBounds: the cached tail keeps the newest entries within the
// count and byte bounds, and its pages say how many earlier ones are gone.
func TestLogTailBounds(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		tl := tailFromPage(map[string]any{"items": items(tailMaxEntries+100, 1), "total": int64(tailMaxEntries + 100), "dropped": int64(7)})
		if len(tl.items) != tailMaxEntries || tl.missing != 107 {
			t.Fatalf("kept %d, missing %d", len(tl.items), tl.missing)
		}
		p := tl.page(nil, 0, nil)
		last := p["items"].([]any)[tailMaxEntries-1].(map[string]any)["content"].(string)
		if p["truncated"] != true || p["dropped"] != int64(107) || !strings.HasPrefix(last, fmt.Sprint(tailMaxEntries+99)+":") {
			t.Fatalf("page = truncated %v dropped %v last %q", p["truncated"], p["dropped"], last)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		tl := tailFromPage(map[string]any{"items": items(100, 10<<10), "total": int64(100)})
		size := 0
		for _, it := range tl.items {
			size += len(entryContent(it))
		}
		if size > tailMaxBytes || int64(len(tl.items))+tl.missing != 100 || tl.missing == 0 {
			t.Fatalf("kept %d entries (%d bytes), missing %d", len(tl.items), size, tl.missing)
		}
	})
	t.Run("one huge entry keeps its end", func(t *testing.T) {
		tl := tailFromPage(map[string]any{"items": []any{map[string]any{"type": "stderr", "content": strings.Repeat("a", 2*tailMaxBytes) + "END"}}, "total": int64(1)})
		c := entryContent(tl.items[0])
		if len(tl.items) != 1 || !strings.HasSuffix(c, "END") || !strings.HasPrefix(c, "[entry truncated]") || len(c) > tailMaxBytes+64 {
			t.Fatalf("entry of %d bytes, prefix %q", len(c), c[:20])
		}
	})
	t.Run("complete tail and paging", func(t *testing.T) {
		tl := tailFromPage(map[string]any{"items": items(3, 1), "total": int64(3)})
		p := tl.page("stdout", 1, int64(1))
		if p["truncated"] != false || p["total"] != int64(3) || len(p["items"].([]any)) != 1 || p["cached"] != true {
			t.Fatalf("page = %v", p)
		}
		if (*logTail)(nil).page(nil, 0, nil)["total"] != int64(0) {
			t.Fatal("nil tail page")
		}
	})
}
