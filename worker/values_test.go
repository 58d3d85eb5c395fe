package worker

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWireValues(t *testing.T) {
	ints := []struct {
		in   any
		want int64
		ok   bool
	}{
		{nil, 0, true}, {int64(-3), -3, true}, {7, 7, true}, {int32(2), 2, true},
		{uint64(5), 5, true}, {uint64(math.MaxUint64), 0, false},
		{4.0, 4, true}, {4.5, 0, false}, {math.Inf(1), 0, false}, {1e300, 0, false}, {"4", 0, false},
	}
	for _, tt := range ints {
		if got, ok := wireInt(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("wireInt(%#v) = %d, %v", tt.in, got, ok)
		}
	}
	floats := []struct {
		in   any
		want float64
		ok   bool
	}{
		{nil, 0, true}, {1.5, 1.5, true}, {float32(0.5), 0.5, true}, {int64(2), 2, true}, {3, 3, true},
		{int32(4), 4, true}, {uint64(6), 6, true}, {math.NaN(), 0, false}, {math.Inf(-1), 0, false}, {true, 0, false},
	}
	for _, tt := range floats {
		if got, ok := wireFloat(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("wireFloat(%#v) = %v, %v", tt.in, got, ok)
		}
	}
	lists := []struct {
		in   any
		want []any
		ok   bool
	}{
		{nil, nil, true},
		{[]any{"a", int64(1)}, []any{"a", int64(1)}, true},
		{[]string{"a"}, []any{"a"}, true},
		{[]map[string]any{{"k": "v"}}, []any{map[string]any{"k": "v"}}, true},
		{map[string]any{}, nil, false},
	}
	for _, tt := range lists {
		got, ok := wireList(tt.in)
		if d := cmp.Diff(tt.want, got); d != "" || ok != tt.ok {
			t.Errorf("wireList(%#v) = %v, %v %s", tt.in, got, ok, d)
		}
	}
}
