package convert

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type Out struct {
	Name    string            `json:"name"`
	Count   int               `json:"count,omitempty"`
	Ratio   float32           `json:"ratio"`
	Big     uint              `json:"big"`
	Tags    []string          `json:"tags,omitempty"`
	Opt     *int              `json:"opt,omitempty"`
	When    time.Time         `json:"when,omitzero"`
	Wait    time.Duration     `json:"wait"`
	Mode    myString          `json:"mode"`
	Labels  map[keyStr]string `json:"labels"`
	MP      int               `msgpack:"mp_name"`
	GoName  bool
	Skip    string `json:"-"`
	private int
	Inner   Inner `json:"inner"`
}

type zeroer struct{ v int }

func (z zeroer) IsZero() bool { return z.v < 0 }

type withZeroer struct {
	Z zeroer `json:"z,omitzero"`
}

// wv replaces itself with a plain map carrying an int (converted further).
type wv struct{ n int }

func (w wv) WireValue() any { return map[string]any{"_rtype": "wv", "n": w.n} }

// self passes through FromStruct untouched (like rpc.RemoteFunc would).
type self struct{ id string }

func (s *self) WireValue() any { return s }

// addrWV implements WireValuer on its pointer only.
type addrWV struct{ n int }

func (a *addrWV) WireValue() any { return a.n * 10 }

type holder struct {
	W    wv       `json:"w"`
	S    *self    `json:"s"`
	A    addrWV   `json:"a"`
	Fn   func()   `json:"fn"`
	Err  error    `json:"err"`
	Any  any      `json:"any"`
	List []wv     `json:"list"`
	Arr  [2]int16 `json:"arr"`
	Raw  [2]byte  `json:"raw"`
	Blob myBytes  `json:"blob"`
}

type badText struct{}

func (badText) MarshalText() ([]byte, error) { return nil, errors.New("nope") }

type cyc struct {
	Next *cyc `json:"next"`
}

func TestFromStructScalars(t *testing.T) {
	for _, tc := range []struct {
		in, want any
	}{
		{nil, nil},
		{true, true},
		{"s", "s"},
		{int64(1), int64(1)},
		{uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{1.5, 1.5},
		{[]byte("b"), []byte("b")},
		{7, int64(7)},
		{int8(-1), int64(-1)},
		{int16(2), int64(2)},
		{int32(3), int64(3)},
		{uint(4), uint64(4)},
		{uint8(5), uint64(5)},
		{uint16(6), uint64(6)},
		{uint32(7), uint64(7)},
		{uintptr(8), uint64(8)},
		{float32(0.5), 0.5},
		{myInt(3), int64(3)},
		{myBool(true), true},
		{myString("m"), "m"},
		{myBytes("x"), []byte("x")},
		{1500 * time.Millisecond, 1.5},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05Z"},
		{ptr(3), int64(3)},
		{ptr(ptr("p")), "p"},
		{(*int)(nil), nil},
		{[]string(nil), nil},
		{map[string]int(nil), nil},
		{[]string{"a"}, []any{"a"}},
		{[]int{1, 2}, []any{int64(1), int64(2)}},
		{[3]byte{1, 2, 3}, []byte{1, 2, 3}},
		{[2]bool{true, false}, []any{true, false}},
		{map[keyStr]int{"k": 1}, map[string]any{"k": int64(1)}},
		{map[int]string{-1: "a"}, map[string]any{"-1": "a"}},
		{map[uint16]bool{2: true}, map[string]any{"2": true}},
		{map[textKey]int{{s: "x"}: 1}, map[string]any{"k:x": int64(1)}},
		{map[string][]int{"a": {1}}, map[string]any{"a": []any{int64(1)}}},
		{wv{n: 2}, map[string]any{"_rtype": "wv", "n": int64(2)}},
		{[]any{int8(1), map[string]any{"x": uint8(2)}}, []any{int64(1), map[string]any{"x": uint64(2)}}},
	} {
		got, err := FromStruct(tc.in)
		if err != nil {
			t.Errorf("FromStruct(%#v): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("FromStruct(%#v) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestFromStructStruct(t *testing.T) {
	in := Out{
		Name:   "n",
		Ratio:  0.25,
		Big:    9,
		Wait:   2 * time.Second,
		Mode:   "fast",
		Labels: map[keyStr]string{"a": "b"},
		MP:     3,
		GoName: true,
		Skip:   "hidden",
		Inner:  Inner{Timeout: 1, Retries: ptr(2)},
	}
	want := map[string]any{
		"name":    "n",
		"ratio":   0.25,
		"big":     uint64(9),
		"wait":    2.0,
		"mode":    "fast",
		"labels":  map[string]any{"a": "b"},
		"mp_name": int64(3),
		"GoName":  true,
		"inner":   map[string]any{"timeout": 1.0, "retries": int64(2)},
	}
	for _, v := range []any{in, &in} {
		got, err := FromStruct(v)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	}

	in.Count, in.Tags, in.Opt, in.When = 1, []string{"t"}, ptr(0), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	got, err := FromStruct(in)
	if err != nil {
		t.Fatal(err)
	}
	m := got.(map[string]any)
	for k, v := range map[string]any{"count": int64(1), "tags": []any{"t"}, "opt": int64(0), "when": "2020-01-01T00:00:00Z"} {
		if !cmp.Equal(m[k], v) {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}

	// omitzero with an IsZero method.
	for _, tc := range []struct {
		in   withZeroer
		want map[string]any
	}{
		{withZeroer{Z: zeroer{v: -1}}, map[string]any{}},
		{withZeroer{Z: zeroer{v: 0}}, map[string]any{"z": map[string]any{}}},
	} {
		got, err := FromStruct(tc.in)
		if err != nil || !cmp.Equal(got, any(tc.want)) {
			t.Errorf("FromStruct(%+v) = %#v, %v", tc.in, got, err)
		}
	}
}

func TestFromStructEmbedded(t *testing.T) {
	e := Embedding{Base: Base{ID: "i", Kind: "base"}, Meta: Meta{Kind: "m", Label: "l"}, Kind: "outer"}
	got, err := FromStruct(e)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "i", "kind": "outer", "meta": map[string]any{"kind": "m", "label": "l"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nil embedded pointer: mismatch (-want +got):\n%s", diff)
	}
	e.Extra = &Extra{Note: "n"}
	got, _ = FromStruct(e)
	want["note"] = "n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	got, _ = FromStruct(Conflict{conflictA{Dup: "x", OnlyA: "a"}, conflictB{Dup: "y", OnlyB: "b"}})
	if diff := cmp.Diff(map[string]any{"OnlyA": "a", "OnlyB": "b"}, got); diff != "" {
		t.Errorf("conflict: mismatch (-want +got):\n%s", diff)
	}
}

func TestFromStructPassThrough(t *testing.T) {
	fn := func() {}
	s := &self{id: "s"}
	e := errors.New("e")
	h := &holder{
		W:    wv{n: 1},
		S:    s,
		A:    addrWV{n: 4},
		Fn:   fn,
		Err:  e,
		Any:  map[string]any{"x": int32(1)},
		List: []wv{{n: 5}},
		Arr:  [2]int16{1, 2},
		Raw:  [2]byte{7, 8},
		Blob: myBytes("b"),
	}
	got, err := FromStruct(h) // through a pointer: fields are addressable
	if err != nil {
		t.Fatal(err)
	}
	m := got.(map[string]any)
	if m["s"] != any(s) {
		t.Errorf("self-returning WireValuer not untouched: %#v", m["s"])
	}
	if reflect.ValueOf(m["fn"]).Pointer() != reflect.ValueOf(fn).Pointer() {
		t.Errorf("func not untouched: %#v", m["fn"])
	}
	if m["err"] != any(e) {
		t.Errorf("error not untouched: %#v", m["err"])
	}
	delete(m, "s")
	delete(m, "fn")
	delete(m, "err")
	want := map[string]any{
		"w":    map[string]any{"_rtype": "wv", "n": int64(1)},
		"a":    int64(40),
		"any":  map[string]any{"x": int64(1)},
		"list": []any{map[string]any{"_rtype": "wv", "n": int64(5)}},
		"arr":  []any{int64(1), int64(2)},
		"raw":  []byte{7, 8},
		"blob": []byte("b"),
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}

	// By value the field is not addressable: addrWV encodes as a struct.
	got, err = FromStruct(holder{A: addrWV{n: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if a := got.(map[string]any)["a"]; !cmp.Equal(a, any(map[string]any{})) {
		t.Errorf("unaddressable addrWV = %#v", a)
	}
	if m := got.(map[string]any); m["s"] != nil || m["fn"] != nil || m["err"] != nil || m["any"] != nil || m["list"] != nil {
		t.Errorf("nil fields: %#v", m)
	}

	// Top-level pass-through.
	if got, err := FromStruct(fn); err != nil || reflect.ValueOf(got).Pointer() != reflect.ValueOf(fn).Pointer() {
		t.Errorf("func: %v %v", got, err)
	}
	if got, err := FromStruct(s); err != nil || got != any(s) {
		t.Errorf("self: %v %v", got, err)
	}
	if got, err := FromStruct(e); err != nil || got != any(e) {
		t.Errorf("error: %v %v", got, err)
	}
	if got, err := FromStruct((*self)(nil)); err != nil || got != nil {
		t.Errorf("nil WireValuer: %v %v", got, err)
	}
	if got, err := FromStruct((func())(nil)); err != nil || got != nil {
		t.Errorf("nil func: %v %v", got, err)
	}
}

func TestFromStructPlainNoCopy(t *testing.T) {
	fn := func() {}
	inner := []any{"a", int64(1), 2.5, nil, []byte("x")}
	m := map[string]any{"a": "x", "b": int64(1), "l": inner, "m": map[string]any{"k": true}, "f": fn}
	got, err := FromStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(got).UnsafePointer() != reflect.ValueOf(m).UnsafePointer() {
		t.Fatal("plain map was copied")
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = FromStruct(m) })
	if allocs != 0 {
		t.Errorf("FromStruct(plain) allocates %v times", allocs)
	}

	// A non-plain leaf copies its ancestors only; the input is not modified.
	m2 := map[string]any{"keep": inner, "n": []any{"a", int32(5)}}
	got, err = FromStruct(m2)
	if err != nil {
		t.Fatal(err)
	}
	gm := got.(map[string]any)
	if reflect.ValueOf(gm).UnsafePointer() == reflect.ValueOf(m2).UnsafePointer() {
		t.Fatal("map with an int32 was not copied")
	}
	if &gm["keep"].([]any)[0] != &inner[0] {
		t.Error("unchanged sibling was copied")
	}
	if diff := cmp.Diff([]any{"a", int64(5)}, gm["n"]); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if _, ok := m2["n"].([]any)[1].(int32); !ok {
		t.Error("input modified")
	}
}

func TestFromStructErrors(t *testing.T) {
	type withChan struct {
		Ch chan int `json:"ch"`
	}
	c := &cyc{}
	c.Next = c
	for _, tc := range []struct {
		in   any
		want string
	}{
		{make(chan int), `convert: cannot encode value of type chan int`},
		{complex(1, 2), `convert: cannot encode value of type complex128`},
		{withChan{}, `convert: field "ch": cannot encode value of type chan int`},
		{map[string]any{"a": []any{1, withChan{}}}, `convert: field "a[1].ch": cannot encode value of type chan int`},
		{map[string]any{"b": make(chan int), "a": complex64(1)}, `convert: field "a": cannot encode value of type complex64`},
		{map[string]withChan{"k": {}}, `convert: field "k.ch": cannot encode value of type chan int`},
		{[]withChan{{}}, `convert: field "[0].ch": cannot encode value of type chan int`},
		{map[float64]int{1: 1}, `convert: cannot encode map[float64]int: unsupported key type`},
		{badText{}, `convert: cannot encode convert.badText: nope`},
		{map[badText]int{{}: 1}, `convert: cannot encode map key of type convert.badText: nope`},
	} {
		_, err := FromStruct(tc.in)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrConvert) {
			t.Errorf("FromStruct(%T): err = %v, want %s", tc.in, err, tc.want)
		}
	}
	_, err := FromStruct(c)
	if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
		t.Errorf("cyclic: err = %.200v", err)
	}
	m := map[string]any{}
	m["m"] = m
	_, err = FromStruct(m)
	if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
		t.Errorf("cyclic map: err = %.200v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	in := Config{
		Name:    "svc",
		Config:  Inner{Timeout: 2.5, Retries: ptr(3)},
		Items:   []Item{{Name: "a"}},
		Tags:    map[string]int{"x": 1},
		Wait:    1500 * time.Millisecond,
		MaxTok:  7,
		Verbose: true,
		Any:     []any{"x", int64(1)},
		Fn:      nil,
		When:    time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC),
		Ptr:     &Inner{Timeout: 1},
	}
	plain, err := FromStruct(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Config
	if err := Into(&out, plain, &Options{DisallowUnknown: true}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out, cmp.AllowUnexported(Config{})); diff != "" {
		t.Errorf("round trip mismatch (-in +out):\n%s", diff)
	}
}

func TestConcurrentTypeCache(t *testing.T) {
	type R struct {
		Self  *R            `json:"self"`
		Kids  []R           `json:"kids"`
		ByKey map[string]*R `json:"by_key"`
	}
	v := R{Kids: []R{{Self: &R{}}}, ByKey: map[string]*R{"a": {}}}
	done := make(chan error, 8)
	for range 8 {
		go func() {
			p, err := FromStruct(v)
			if err == nil {
				var back R
				err = Into(&back, p, nil)
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

type benchArgs struct {
	Name    string            `json:"name"`
	Count   int               `json:"count"`
	Ratio   float64           `json:"ratio"`
	Enabled bool              `json:"enabled"`
	Tags    []string          `json:"tags"`
	Timeout time.Duration     `json:"timeout"`
	Meta    map[string]string `json:"meta"`
}

var benchSrc = map[string]any{
	"name":    "model-a",
	"count":   int64(12),
	"ratio":   0.5,
	"enabled": true,
	"tags":    []any{"x", "y"},
	"timeout": 2.5,
	"meta":    map[string]any{"k": "v"},
}

func BenchmarkIntoSmallStruct(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var a benchArgs
		if err := Into(&a, benchSrc, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIntoSmallStructHook(b *testing.B) {
	opts := &Options{Hook: func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		if dst.Kind() != reflect.Func {
			return reflect.Value{}, false, nil
		}
		return reflect.Value{}, false, nil
	}}
	b.ReportAllocs()
	for b.Loop() {
		var a benchArgs
		if err := Into(&a, benchSrc, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToInt(b *testing.B) {
	b.ReportAllocs()
	var src any = int64(5)
	for b.Loop() {
		if _, err := To[int](src, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFromStructSmall(b *testing.B) {
	v := benchArgs{Name: "model-a", Count: 12, Ratio: 0.5, Enabled: true, Tags: []string{"x", "y"},
		Timeout: 2500 * time.Millisecond, Meta: map[string]string{"k": "v"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromStruct(&v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFromStructPlain(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromStruct(benchSrc); err != nil {
			b.Fatal(err)
		}
	}
}

type ptrText struct{ s string }

func (p *ptrText) MarshalText() ([]byte, error) { return []byte("pt:" + p.s), nil }

type ptrZero struct{ n int }

func (p *ptrZero) IsZero() bool { return p.n == 1 }

type misc struct {
	M  map[string]any `json:"m"`
	L  []any          `json:"l"`
	PT ptrText        `json:"pt"`
	PZ ptrZero        `json:"pz,omitzero"`
	TP *time.Time     `json:"tp"`
	E  []int          `json:"e,omitempty"`
	MP map[string]int `json:"mp,omitempty"`
	B  bool           `json:",omitempty"`
	F  float64        `json:"f,omitempty"`
	I  any            `json:"i,omitempty"`
	A  [0]int         `json:"a,omitempty"`
	S  struct{}       `json:"s,omitempty"` // structs are never empty
}

func TestFromStructMisc(t *testing.T) {
	v := &misc{
		M:  map[string]any{"n": int16(1)},
		L:  []any{uint16(2)},
		PT: ptrText{s: "x"},
		PZ: ptrZero{n: 1},
	}
	got, err := FromStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"m":  map[string]any{"n": int64(1)},
		"l":  []any{uint64(2)},
		"pt": "pt:x",
		"tp": nil,
		"s":  map[string]any{},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}

	tm := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	v2 := misc{PZ: ptrZero{n: 2}, TP: &tm, E: []int{1}, MP: map[string]int{"a": 1}, B: true, F: 1, I: 0}
	got, err = FromStruct(v2) // not addressable: PT encodes as a struct, PZ uses reflect's zero test
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]any{
		"m": nil, "l": nil, "pt": map[string]any{}, "pz": map[string]any{}, "tp": "2021-01-01T00:00:00Z",
		"e": []any{int64(1)}, "mp": map[string]any{"a": int64(1)}, "B": true, "f": 1.0, "i": int64(0),
		"s": map[string]any{},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}
