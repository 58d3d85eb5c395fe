package convert

import "testing"

func TestNumber(t *testing.T) {
	for _, c := range []struct {
		in   any
		want float64
		ok   bool
	}{
		{int64(-3), -3, true}, {uint64(7), 7, true}, {5, 5, true},
		{1.5, 1.5, true}, {float32(0.5), 0.5, true},
		{"3", 0, false}, {nil, 0, false}, {true, 0, false},
	} {
		if got, ok := Number(c.in); got != c.want || ok != c.ok {
			t.Errorf("Number(%#v) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
