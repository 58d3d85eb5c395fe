package wire

import (
	"math"
	"strings"
	"testing"
	"time"
)

// skipRaw must end exactly where the encoder's value ends, for every kind of
// value, and refuse every truncation of it.
func TestSkipRawMatchesEncoding(t *testing.T) {
	values := []any{
		nil, true, false, 0, 1, 127, 128, -1, -32, -33, 255, 256, 65535, 65536, math.MaxInt32 + 1,
		int64(math.MinInt64), uint64(math.MaxUint64), float32(1.5), 2.25,
		"", "x", strings.Repeat("s", 31), strings.Repeat("s", 32), strings.Repeat("s", 300), strings.Repeat("s", 70000),
		[]byte{}, []byte{1, 2, 3}, make([]byte, 300), make([]byte, 70000),
		[]any{}, []any{1, "a", nil}, make([]any, 20), make([]any, 70000),
		map[string]any{}, map[string]any{"a": 1, "b": []any{map[string]any{"c": nil}}},
		time.Unix(1700000000, 5),
	}
	big := map[string]any{}
	for i := range 40 {
		big[strings.Repeat("k", i+1)] = i
	}
	values = append(values, big)
	for _, v := range values {
		enc, err := Encode(v)
		if err != nil {
			t.Fatalf("encode %T: %v", v, err)
		}
		end, err := skipRaw(enc, 0, 0)
		if err != nil || end != len(enc) {
			t.Errorf("%T (%d bytes): skipRaw = %d, %v", v, len(enc), end, err)
		}
		for cut := 0; cut < len(enc); cut += 1 + len(enc)/50 {
			if end, err := skipRaw(enc[:cut], 0, 0); err == nil {
				t.Errorf("%T cut at %d: skipRaw accepted a truncated value (end %d)", v, cut, end)
			}
		}
	}
}

func TestSkipRawRefusesHostileInput(t *testing.T) {
	deep := strings.Repeat("\x91", MaxDepth+5) + "\xc0"
	for name, b := range map[string][]byte{
		"too deep":          []byte(deep),
		"never-used code":   {0xc1},
		"huge array claim":  {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0},
		"huge string claim": {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'},
		"empty":             {},
	} {
		if _, err := skipRaw(b, 0, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
