package convert

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// remoteFunc stands in for rpc.RemoteFunc: an opaque pointer type that
// travels through conversions untouched.
type remoteFunc struct{ id string }

type (
	myInt    int
	myBool   bool
	myString string
	myBytes  []byte
	keyStr   string
)

// textKey implements encoding.TextUnmarshaler/TextMarshaler: "k:<s>".
type textKey struct{ s string }

func (k *textKey) UnmarshalText(b []byte) error {
	s, ok := strings.CutPrefix(string(b), "k:")
	if !ok {
		return errors.New("missing k: prefix")
	}
	k.s = s
	return nil
}

func (k textKey) MarshalText() ([]byte, error) { return []byte("k:" + k.s), nil }

type Inner struct {
	Timeout float64 `json:"timeout"`
	Retries *int    `json:"retries"`
}

type Item struct {
	Name string `json:"name"`
}

type Config struct {
	Name     string         `json:"name"`
	Config   Inner          `json:"config"`
	Items    []Item         `json:"items"`
	Tags     map[string]int `json:"tags"`
	Wait     time.Duration  `json:"wait"`
	MaxTok   int            `msgpack:"max_tokens"`
	Verbose  bool
	Secret   string `json:"-"`
	internal string
	Any      any         `json:"any"`
	Fn       *remoteFunc `json:"fn"`
	When     time.Time   `json:"when"`
	Ptr      *Inner      `json:"ptr"`
}

type Base struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

type Meta struct {
	Kind  string `json:"kind"`
	Label string `json:"label"`
}

type Extra struct {
	Note string `json:"note"`
}

type Embedding struct {
	Base                 // flattened
	*Extra               // flattened, allocated on demand
	Meta   `json:"meta"` // tagged: a field, not flattened
	Kind   string        `json:"kind"` // shallower than Base.Kind: wins
}

type conflictA struct{ Dup, OnlyA string }
type conflictB struct{ Dup, OnlyB string }

type Conflict struct {
	conflictA // unexported embedded structs still contribute fields
	conflictB
}

type Named struct {
	Exact  string `json:"value"`
	Folded string `json:"Other"`
}

type Node struct {
	Next *Node `json:"next"`
}

func ptr[T any](v T) *T { return &v }

type decodeCase struct {
	name string
	src  any
	dst  any // pointer to the destination (zero or pre-filled)
	want any // expected value of *dst
	err  string
	opts *Options
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Into(tc.dst, tc.src, tc.opts)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("no error, want %q; got value %#v", tc.err, reflect.ValueOf(tc.dst).Elem().Interface())
				}
				if err.Error() != tc.err {
					t.Fatalf("error\n got: %s\nwant: %s", err, tc.err)
				}
				if !errors.Is(err, ErrConvert) {
					t.Fatalf("error %v does not wrap ErrConvert", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got := reflect.ValueOf(tc.dst).Elem().Interface()
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(remoteFunc{}, textKey{}, Config{}, Conflict{}, conflictA{}, conflictB{})); diff != "" {
				t.Fatalf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNil(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "int", src: nil, dst: ptr(5), want: 0},
		{name: "pointer", src: nil, dst: ptr(ptr(5)), want: (*int)(nil)},
		{name: "map", src: nil, dst: ptr(map[string]int{"a": 1}), want: map[string]int(nil)},
		{name: "slice", src: nil, dst: ptr([]int{1}), want: []int(nil)},
		{name: "interface", src: nil, dst: ptr[any](1), want: nil},
		{name: "struct", src: nil, dst: &Item{Name: "x"}, want: Item{}},
		{name: "typed nil pointer", src: (*int)(nil), dst: ptr(ptr(3)), want: (*int)(nil)},
		{name: "typed nil pointer to int", src: (*int64)(nil), dst: ptr(3), want: 0},
		{name: "typed nil map", src: map[string]any(nil), dst: &Item{Name: "x"}, want: Item{}},
		{name: "typed nil slice", src: []any(nil), dst: ptr([]int{1}), want: []int(nil)},
	})
}

func TestAssignable(t *testing.T) {
	rf := &remoteFunc{id: "f"}
	m := map[string]any{"a": int64(1)}
	e := errors.New("e")
	runDecodeCases(t, []decodeCase{
		{name: "any keeps int64", src: int64(5), dst: new(any), want: any(int64(5))},
		{name: "any keeps remote func", src: rf, dst: new(any), want: any(rf)},
		{name: "remote func pointer", src: rf, dst: new(*remoteFunc), want: rf},
		{name: "struct value", src: Item{Name: "a"}, dst: new(Item), want: Item{Name: "a"}},
		{name: "duration value", src: 3 * time.Second, dst: new(time.Duration), want: 3 * time.Second},
		{name: "named bytes from bytes", src: []byte("hi"), dst: new(myBytes), want: myBytes("hi")},
		{name: "non-empty interface unsatisfied", src: int64(5), dst: new(fmt.Stringer),
			err: `convert: cannot use int64 5 as fmt.Stringer`},
		{name: "func without hook", src: rf, dst: new(func()),
			err: `convert: cannot use *convert.remoteFunc as func()`},
		{name: "chan", src: int64(1), dst: new(chan int),
			err: `convert: cannot use int64 1 as chan int`},
		{name: "complex", src: 1.5, dst: new(complex128),
			err: `convert: cannot use float64 1.5 as complex128`},
	})

	// Identity: the very same pointer, map and error value are stored.
	var c Config
	if err := Into(&c, map[string]any{"fn": rf, "any": m}, nil); err != nil {
		t.Fatal(err)
	}
	if c.Fn != rf {
		t.Errorf("Fn = %p, want %p", c.Fn, rf)
	}
	if am, ok := c.Any.(map[string]any); !ok || reflect.ValueOf(am).UnsafePointer() != reflect.ValueOf(m).UnsafePointer() {
		t.Errorf("Any is not the source map")
	}
	var got map[string]any
	if err := Into(&got, m, nil); err != nil || reflect.ValueOf(got).UnsafePointer() != reflect.ValueOf(m).UnsafePointer() {
		t.Errorf("map[string]any not assigned directly (err %v)", err)
	}
	var ge error
	if err := Into(&ge, e, nil); err != nil || ge != e {
		t.Errorf("error interface: got %v, %v", ge, err)
	}
}

func TestNumbers(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "int64 to int", src: int64(5), dst: new(int), want: 5},
		{name: "int64 to int8", src: int64(-128), dst: new(int8), want: int8(-128)},
		{name: "int64 to uint16", src: int64(65535), dst: new(uint16), want: uint16(65535)},
		{name: "int64 to float32", src: int64(3), dst: new(float32), want: float32(3)},
		{name: "int64 to float64", src: int64(-7), dst: new(float64), want: float64(-7)},
		{name: "uint64 to uint64", src: uint64(math.MaxUint64), dst: new(uint64), want: uint64(math.MaxUint64)},
		{name: "uint64 to float64", src: uint64(1 << 63), dst: new(float64), want: float64(1 << 63)},
		{name: "uint64 to int", src: uint64(42), dst: new(int), want: 42},
		{name: "float integral to int", src: 3.0, dst: new(int), want: 3},
		{name: "float negative to int64", src: -2.0, dst: new(int64), want: int64(-2)},
		{name: "float 1e19 to uint64", src: 1e19, dst: new(uint64), want: uint64(10000000000000000000)},
		{name: "float to float32", src: 1.5, dst: new(float32), want: float32(1.5)},
		{name: "float inf to float32", src: math.Inf(1), dst: new(float32), want: float32(math.Inf(1))},
		{name: "float64 max to float64", src: math.MaxFloat64, dst: new(float64), want: math.MaxFloat64},
		{name: "go int to int64", src: 7, dst: new(int64), want: int64(7)},
		{name: "named int to int", src: myInt(9), dst: new(int), want: 9},
		{name: "int64 to named int", src: int64(9), dst: new(myInt), want: myInt(9)},
		{name: "float32 to int", src: float32(2), dst: new(int), want: 2},
		{name: "uint8 to float64", src: uint8(200), dst: new(float64), want: 200.0},
		{name: "pointer source", src: ptr(int64(4)), dst: new(int), want: 4},
		{name: "pointer destination", src: int64(4), dst: new(*int), want: ptr(4)},

		{name: "fractional to int", src: 1.5, dst: new(int),
			err: `convert: cannot use float64 1.5 as int: not an integer`},
		{name: "NaN to int", src: math.NaN(), dst: new(int),
			err: `convert: cannot use float64 NaN as int: not an integer`},
		{name: "Inf to uint", src: math.Inf(-1), dst: new(uint),
			err: `convert: cannot use float64 -Inf as uint: not an integer`},
		{name: "fractional to uint8", src: 0.5, dst: new(uint8),
			err: `convert: cannot use float64 0.5 as uint8: not an integer`},
		{name: "float too big for int64", src: 1e19, dst: new(int64),
			err: `convert: cannot use float64 1e+19 as int64: out of range`},
		{name: "float 2^63 to int64", src: 9223372036854775808.0, dst: new(int64),
			err: `convert: cannot use float64 9.223372036854776e+18 as int64: out of range`},
		{name: "float 2^64 to uint64", src: 18446744073709551616.0, dst: new(uint64),
			err: `convert: cannot use float64 1.8446744073709552e+19 as uint64: out of range`},
		{name: "negative float to uint", src: -1.0, dst: new(uint),
			err: `convert: cannot use float64 -1 as uint: out of range`},
		{name: "uint64 too big for int64", src: uint64(math.MaxUint64), dst: new(int64),
			err: `convert: cannot use uint64 18446744073709551615 as int64: out of range`},
		{name: "int64 300 to uint8", src: int64(300), dst: new(uint8),
			err: `convert: cannot use int64 300 as uint8: out of range`},
		{name: "int64 128 to int8", src: int64(128), dst: new(int8),
			err: `convert: cannot use int64 128 as int8: out of range`},
		{name: "int64 -129 to int8", src: int64(-129), dst: new(int8),
			err: `convert: cannot use int64 -129 as int8: out of range`},
		{name: "negative to uint64", src: int64(-1), dst: new(uint64),
			err: `convert: cannot use int64 -1 as uint64: out of range`},
		{name: "1e39 to float32", src: 1e39, dst: new(float32),
			err: `convert: cannot use float64 1e+39 as float32: out of range`},
		{name: "string to int", src: "abc", dst: new(int),
			err: `convert: cannot use string "abc" as int`},
		{name: "string to uint", src: "1", dst: new(uint),
			err: `convert: cannot use string "1" as uint`},
		{name: "string to float", src: "abc", dst: new(float64),
			err: `convert: cannot use string "abc" as float64`},
		{name: "bool to int", src: true, dst: new(int),
			err: `convert: cannot use bool true as int`},
		{name: "named int to uint8 out of range", src: myInt(-1), dst: new(uint8),
			err: `convert: cannot use convert.myInt -1 as uint8: out of range`},
	})
}

func TestBoolAndString(t *testing.T) {
	long := strings.Repeat("é", 40)
	runDecodeCases(t, []decodeCase{
		{name: "bool", src: true, dst: new(bool), want: true},
		{name: "named bool dst", src: true, dst: new(myBool), want: myBool(true)},
		{name: "named bool src", src: myBool(true), dst: new(bool), want: true},
		{name: "int to bool", src: int64(1), dst: new(bool), err: `convert: cannot use int64 1 as bool`},
		{name: "string to bool", src: "true", dst: new(bool), err: `convert: cannot use string "true" as bool`},

		{name: "string", src: "x", dst: new(string), want: "x"},
		{name: "named string dst", src: "x", dst: new(myString), want: myString("x")},
		{name: "named string src", src: myString("x"), dst: new(string), want: "x"},
		{name: "bytes to string", src: []byte("hi"), dst: new(string), want: "hi"},
		{name: "int to string", src: int64(1), dst: new(string), err: `convert: cannot use int64 1 as string`},
		{name: "float to string", src: 2.5, dst: new(string), err: `convert: cannot use float64 2.5 as string`},
		{name: "list to string", src: []any{int64(1)}, dst: new(string), err: `convert: cannot use []any (len 1) as string`},
		{name: "long string truncated", src: long, dst: new(int),
			err: `convert: cannot use string "` + strings.Repeat("é", 32) + `"... as int`},

		{name: "string to bytes", src: "hi", dst: new([]byte), want: []byte("hi")},
		{name: "bytes to bytes", src: []byte{0, 1}, dst: new([]byte), want: []byte{0, 1}},
		{name: "string to named bytes", src: "hi", dst: new(myBytes), want: myBytes("hi")},
		{name: "named bytes to bytes", src: myBytes("hi"), dst: new([]byte), want: []byte("hi")},
		{name: "list to bytes", src: []any{int64(1), int64(2)}, dst: new([]byte), want: []byte{1, 2}},
		{name: "list to bytes out of range", src: []any{int64(1), int64(300)}, dst: new([]byte),
			err: `convert: field "[1]": cannot use int64 300 as uint8: out of range`},
		{name: "int to bytes", src: int64(1), dst: new([]byte), err: `convert: cannot use int64 1 as []uint8`},
	})
}

func TestSlicesAndArrays(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "any list to ints", src: []any{int64(1), 2.0}, dst: new([]int), want: []int{1, 2}},
		{name: "empty list is not nil", src: []any{}, dst: new([]int), want: []int{}},
		{name: "strings to any list", src: []string{"a", "b"}, dst: new([]any), want: []any{"a", "b"}},
		{name: "ints to floats", src: []int{1, 2}, dst: new([]float64), want: []float64{1, 2}},
		{name: "array to slice", src: [2]int{1, 2}, dst: new([]int64), want: []int64{1, 2}},
		{name: "bytes to ints", src: []byte{1, 2}, dst: new([]int), want: []int{1, 2}},
		{name: "nested", src: []any{[]any{"a"}, []any{}}, dst: new([][]string), want: [][]string{{"a"}, {}}},
		{name: "pointers", src: []any{int64(1), nil}, dst: new([]*int), want: []*int{ptr(1), nil}},
		{name: "structs", src: []any{map[string]any{"name": "a"}}, dst: new([]Item), want: []Item{{Name: "a"}}},
		{name: "bad element", src: []any{"a", int64(1)}, dst: new([]string),
			err: `convert: field "[1]": cannot use int64 1 as string`},
		{name: "bad nested element", src: []any{[]any{}, []any{"x", true}}, dst: new([][]string),
			err: `convert: field "[1][1]": cannot use bool true as string`},
		{name: "bad struct element", src: []any{map[string]any{"name": int64(1)}}, dst: new([]Item),
			err: `convert: field "[0].name": cannot use int64 1 as string`},
		{name: "scalar to slice", src: int64(1), dst: new([]int),
			err: `convert: cannot use int64 1 as []int`},
		{name: "map to slice", src: map[string]any{}, dst: new([]int),
			err: `convert: cannot use map[string]any (len 0) as []int`},

		{name: "array", src: []any{int64(1), int64(2)}, dst: new([2]int), want: [2]int{1, 2}},
		{name: "array from slice", src: []int{1, 2}, dst: new([2]float64), want: [2]float64{1, 2}},
		{name: "array from array", src: [2]int{1, 2}, dst: new([2]int8), want: [2]int8{1, 2}},
		{name: "byte array from string", src: "ab", dst: new([2]byte), want: [2]byte{'a', 'b'}},
		{name: "byte array from bytes", src: []byte{1, 2}, dst: new([2]uint8), want: [2]uint8{1, 2}},
		{name: "array length mismatch", src: []any{int64(1), int64(2), int64(3)}, dst: new([2]int),
			err: `convert: cannot use []any (len 3) as [2]int: length mismatch`},
		{name: "byte array length mismatch", src: "abc", dst: new([2]byte),
			err: `convert: cannot use string "abc" as [2]uint8: length mismatch`},
		{name: "string to int array", src: "ab", dst: new([2]int),
			err: `convert: cannot use string "ab" as [2]int`},
		{name: "array bad element", src: []any{int64(1), "x"}, dst: new([2]int),
			err: `convert: field "[1]": cannot use string "x" as int`},
		{name: "array from slice bad element", src: []string{"1", "x"}, dst: new([2]int),
			err: `convert: field "[0]": cannot use string "1" as int`},
		{name: "scalar to array", src: true, dst: new([1]bool),
			err: `convert: cannot use bool true as [1]bool`},
	})
}

func TestMaps(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "string keys", src: map[string]any{"a": int64(1), "b": 2.0}, dst: new(map[string]int),
			want: map[string]int{"a": 1, "b": 2}},
		{name: "named key", src: map[string]any{"a": int64(1)}, dst: new(map[keyStr]int),
			want: map[keyStr]int{"a": 1}},
		{name: "int keys", src: map[string]any{"1": "x", "-2": "y"}, dst: new(map[int]string),
			want: map[int]string{1: "x", -2: "y"}},
		{name: "uint keys", src: map[string]any{"7": true}, dst: new(map[uint8]bool),
			want: map[uint8]bool{7: true}},
		{name: "text keys", src: map[string]any{"k:a": int64(1)}, dst: new(map[textKey]int),
			want: map[textKey]int{{s: "a"}: 1}},
		{name: "from typed map", src: map[string]string{"a": "x"}, dst: new(map[string]any),
			want: map[string]any{"a": "x"}},
		{name: "from named-key map", src: map[keyStr]int{"a": 1}, dst: new(map[string]float64),
			want: map[string]float64{"a": 1}},
		{name: "replaces existing map", src: map[string]any{"b": int64(2)}, dst: ptr(map[string]int{"a": 1}),
			want: map[string]int{"b": 2}},
		{name: "struct values", src: map[string]any{"x": map[string]any{"name": "n"}}, dst: new(map[string]*Item),
			want: map[string]*Item{"x": {Name: "n"}}},
		{name: "nil values", src: map[string]any{"x": nil}, dst: new(map[string]*Item),
			want: map[string]*Item{"x": nil}},
		{name: "empty", src: map[string]any{}, dst: new(map[string]int), want: map[string]int{}},

		{name: "bad value", src: map[string]any{"a": int64(1), "b": "x"}, dst: new(map[string]int),
			err: `convert: field "b": cannot use string "x" as int`},
		{name: "smallest bad key reported", src: map[string]any{"d": "x", "b": "y", "c": "z", "a": int64(1)},
			dst: new(map[string]int), err: `convert: field "b": cannot use string "y" as int`},
		{name: "bad int key", src: map[string]any{"x": "v"}, dst: new(map[int]string),
			err: `convert: field "x": cannot use map key "x" as int`},
		{name: "int key out of range", src: map[string]any{"300": "v"}, dst: new(map[int8]string),
			err: `convert: field "300": cannot use map key "300" as int8`},
		{name: "bad uint key", src: map[string]any{"-1": "v"}, dst: new(map[uint]string),
			err: `convert: field "-1": cannot use map key "-1" as uint`},
		{name: "bad text key", src: map[string]any{"a": int64(1)}, dst: new(map[textKey]int),
			err: `convert: field "a": cannot use map key "a" as convert.textKey: missing k: prefix`},
		{name: "unsupported key", src: map[string]any{"a": int64(1)}, dst: new(map[float64]int),
			err: `convert: cannot use map[string]any (len 1) as map[float64]int: unsupported key type`},
		{name: "list to map", src: []any{}, dst: new(map[string]int),
			err: `convert: cannot use []any (len 0) as map[string]int`},
		{name: "int-keyed source map", src: map[int]any{1: "a"}, dst: new(map[string]string),
			err: `convert: cannot use map[int]any (len 1) as map[string]string`},
		{name: "nested path", src: map[string]any{"a": map[string]any{"b": []any{"x"}}}, dst: new(map[string]map[string][]int),
			err: `convert: field "a.b[0]": cannot use string "x" as int`},
	})
}

func TestStructs(t *testing.T) {
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	full := map[string]any{
		"name":       "svc",
		"config":     map[string]any{"timeout": int64(5), "retries": int64(3)},
		"items":      []any{map[string]any{"name": "a"}, map[string]any{"NAME": "b"}},
		"tags":       map[string]any{"x": int64(1)},
		"wait":       1.5,
		"max_tokens": 2.0,
		"verbose":    true,
		"Secret":     "no",
		"internal":   "no",
		"any":        []any{"kept"},
		"when":       "2024-01-02T03:04:05Z",
		"ptr":        map[string]any{"timeout": 0.25},
		"unknown":    "ignored",
	}
	runDecodeCases(t, []decodeCase{
		{name: "full", src: full, dst: new(Config), want: Config{
			Name:    "svc",
			Config:  Inner{Timeout: 5, Retries: ptr(3)},
			Items:   []Item{{Name: "a"}, {Name: "b"}},
			Tags:    map[string]int{"x": 1},
			Wait:    1500 * time.Millisecond,
			MaxTok:  2,
			Verbose: true,
			Any:     []any{"kept"},
			When:    when,
			Ptr:     &Inner{Timeout: 0.25},
		}},
		{name: "defaults kept", src: map[string]any{"timeout": 2.0}, dst: &Inner{Timeout: 1, Retries: ptr(9)},
			want: Inner{Timeout: 2, Retries: ptr(9)}},
		{name: "Go name exact", src: map[string]any{"Verbose": true, "MaxTok": int64(4)}, dst: new(Config),
			want: Config{Verbose: true, MaxTok: 4}},
		{name: "json name case-insensitive", src: map[string]any{"Timeout": 3.0}, dst: new(Inner),
			want: Inner{Timeout: 3}},
		{name: "msgpack name case-insensitive", src: map[string]any{"MAX_TOKENS": int64(1)}, dst: new(Config),
			want: Config{MaxTok: 1}},
		{name: "exact beats case-insensitive", src: map[string]any{"value": "exact", "VALUE": "fold", "Value": "fold2"},
			dst: new(Named), want: Named{Exact: "exact"}},
		{name: "tag name case matters for exact", src: map[string]any{"Other": "a", "other": "b"},
			dst: new(Named), want: Named{Folded: "a"}},
		{name: "from typed map", src: map[string]string{"name": "n"}, dst: new(Item), want: Item{Name: "n"}},
		{name: "pointer to struct", src: map[string]any{"name": "n"}, dst: new(*Item), want: &Item{Name: "n"}},
		{name: "dash field never set", src: map[string]any{"-": "x", "Secret": "y"}, dst: new(Config), want: Config{}},
		{name: "embedded", src: map[string]any{"id": "i", "kind": "outer", "note": "n", "meta": map[string]any{"kind": "m", "label": "l"}},
			dst: new(Embedding), want: Embedding{Base: Base{ID: "i"}, Extra: &Extra{Note: "n"}, Meta: Meta{Kind: "m", Label: "l"}, Kind: "outer"}},
		{name: "embedded pointer not allocated when unused", src: map[string]any{"id": "i"},
			dst: new(Embedding), want: Embedding{Base: Base{ID: "i"}}},
		{name: "embedded by type name", src: map[string]any{"Base": map[string]any{"id": "x"}, "label": "l"},
			dst: new(Embedding), want: Embedding{}},
		{name: "ambiguous embedded names dropped", src: map[string]any{"Dup": "d", "OnlyA": "a", "OnlyB": "b"},
			dst: new(Conflict), want: Conflict{conflictA: conflictA{OnlyA: "a"}, conflictB: conflictB{OnlyB: "b"}}},

		{name: "nested path error", src: map[string]any{"config": map[string]any{"timeout": "abc"}}, dst: new(Config),
			err: `convert: field "config.timeout": cannot use string "abc" as float64`},
		{name: "list path error", src: map[string]any{"items": []any{map[string]any{}, map[string]any{"name": false}}}, dst: new(Config),
			err: `convert: field "items[1].name": cannot use bool false as string`},
		{name: "pointer field path error", src: map[string]any{"ptr": map[string]any{"retries": 1.5}}, dst: new(Config),
			err: `convert: field "ptr.retries": cannot use float64 1.5 as int: not an integer`},
		{name: "key as sent in path", src: map[string]any{"CONFIG": map[string]any{"Timeout": true}}, dst: new(Config),
			err: `convert: field "CONFIG.Timeout": cannot use bool true as float64`},
		{name: "smallest bad key reported", src: map[string]any{"verbose": int64(1), "name": int64(2)}, dst: new(Config),
			err: `convert: field "name": cannot use int64 2 as string`},
		{name: "unknown rejected", src: map[string]any{"name": "x", "extra": int64(1)}, dst: new(Item),
			opts: &Options{DisallowUnknown: true}, err: `convert: field "extra": unknown field in convert.Item`},
		{name: "dash key unknown", src: map[string]any{"Secret": "x"}, dst: new(Config),
			opts: &Options{DisallowUnknown: true}, err: `convert: field "Secret": unknown field in convert.Config`},
		{name: "known accepted with DisallowUnknown", src: map[string]any{"NAME": "x"}, dst: new(Item),
			opts: &Options{DisallowUnknown: true}, want: Item{Name: "x"}},
		{name: "scalar to struct", src: int64(1), dst: new(Item),
			err: `convert: cannot use int64 1 as convert.Item`},
		{name: "list to struct", src: []any{"a"}, dst: new(Item),
			err: `convert: cannot use []any (len 1) as convert.Item`},
		{name: "other struct to struct", src: Inner{}, dst: new(Item),
			err: `convert: cannot use convert.Inner as convert.Item`},
		{name: "bad time", src: map[string]any{"when": "yesterday"}, dst: new(Config),
			err: `convert: field "when": cannot use string "yesterday" as time.Time: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
		{name: "map for time", src: map[string]any{"when": int64(5)}, dst: new(Config),
			err: `convert: field "when": cannot use int64 5 as time.Time`},
	})
}

func TestDuration(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "float seconds", src: 1.5, dst: new(time.Duration), want: 1500 * time.Millisecond},
		{name: "small fraction", src: 0.1, dst: new(time.Duration), want: 100 * time.Millisecond},
		{name: "int seconds", src: int64(30), dst: new(time.Duration), want: 30 * time.Second},
		{name: "negative", src: int64(-2), dst: new(time.Duration), want: -2 * time.Second},
		{name: "uint seconds", src: uint64(2), dst: new(time.Duration), want: 2 * time.Second},
		{name: "go int", src: 3, dst: new(time.Duration), want: 3 * time.Second},
		{name: "pointer", src: 2.0, dst: new(*time.Duration), want: ptr(2 * time.Second)},
		{name: "in list", src: []any{int64(1)}, dst: new([]time.Duration), want: []time.Duration{time.Second}},
		{name: "string", src: "abc", dst: new(time.Duration),
			err: `convert: cannot use string "abc" as time.Duration (a number of seconds)`},
		{name: "string 5s", src: "5s", dst: new(time.Duration),
			err: `convert: cannot use string "5s" as time.Duration (a number of seconds)`},
		{name: "int overflow", src: int64(math.MaxInt64), dst: new(time.Duration),
			err: `convert: cannot use int64 9223372036854775807 as time.Duration: out of range`},
		{name: "uint overflow", src: uint64(math.MaxUint64), dst: new(time.Duration),
			err: `convert: cannot use uint64 18446744073709551615 as time.Duration: out of range`},
		{name: "float overflow", src: 1e300, dst: new(time.Duration),
			err: `convert: cannot use float64 1e+300 as time.Duration: out of range`},
		{name: "inf", src: math.Inf(1), dst: new(time.Duration),
			err: `convert: cannot use float64 +Inf as time.Duration: out of range`},
		{name: "nan", src: math.NaN(), dst: new(time.Duration),
			err: `convert: cannot use float64 NaN as time.Duration: not a number`},
		{name: "field", src: map[string]any{"wait": "soon"}, dst: new(Config),
			err: `convert: field "wait": cannot use string "soon" as time.Duration (a number of seconds)`},
	})
}

func TestPointers(t *testing.T) {
	existing := &Item{Name: "old"}
	holder := struct{ P *Item }{P: existing}
	if err := Into(&holder, map[string]any{"P": map[string]any{"name": "new"}}, nil); err != nil {
		t.Fatal(err)
	}
	if holder.P != existing || existing.Name != "new" {
		t.Fatalf("existing pointer not reused: %p %+v", holder.P, holder.P)
	}
	runDecodeCases(t, []decodeCase{
		{name: "double pointer", src: int64(1), dst: new(**int), want: ptr(ptr(1))},
		{name: "pointer source into pointer", src: ptr(int64(2)), dst: new(*int), want: ptr(2)},
		{name: "pointer to map source", src: &map[string]any{"name": "x"}, dst: new(Item), want: Item{Name: "x"}},
	})
}

func TestCyclic(t *testing.T) {
	m := map[string]any{}
	m["next"] = m
	err := Into(new(Node), m, nil)
	if !errors.Is(err, ErrConvert) || !strings.Contains(err.Error(), "nested deeper than") {
		t.Fatalf("err = %.200v", err)
	}
}

func TestHook(t *testing.T) {
	type withFuncs struct {
		Call  func() string   `json:"call"`
		Calls []func() string `json:"calls"`
		Raw   *remoteFunc     `json:"raw"`
		Other any             `json:"other"`
	}
	var seen []string
	hook := func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		seen = append(seen, describeType(dst))
		rf, ok := src.(*remoteFunc)
		if !ok || dst.Kind() != reflect.Func {
			return reflect.Value{}, false, nil
		}
		id := rf.id
		return reflect.ValueOf(func() string { return "called " + id }), true, nil
	}
	src := map[string]any{
		"call":  &remoteFunc{id: "a"},
		"calls": []any{&remoteFunc{id: "b"}},
		"raw":   &remoteFunc{id: "c"},
		"other": &remoteFunc{id: "d"},
	}
	var got withFuncs
	if err := Into(&got, src, &Options{Hook: hook}); err != nil {
		t.Fatal(err)
	}
	if got.Call() != "called a" || len(got.Calls) != 1 || got.Calls[0]() != "called b" {
		t.Fatalf("hook results not used: %+v", got)
	}
	if got.Raw != src["raw"] || got.Other != src["other"] {
		t.Fatalf("remote funcs not stored as is")
	}
	// The root, four fields and the list element.
	if len(seen) != 6 {
		t.Errorf("hook called %d times: %v", len(seen), seen)
	}

	// Without a hook a remote function cannot become a func.
	err := Into(new(withFuncs), map[string]any{"call": &remoteFunc{}}, nil)
	if err == nil || err.Error() != `convert: field "call": cannot use *convert.remoteFunc as func() string` {
		t.Errorf("err = %v", err)
	}

	cause := errors.New("boom")
	failing := &Options{Hook: func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		if s, ok := src.(string); ok && s == "bad" {
			return reflect.Value{}, false, cause
		}
		return reflect.Value{}, false, nil
	}}
	err = Into(new(map[string][]string), map[string]any{"k": []any{"ok", "bad"}}, failing)
	if err == nil || err.Error() != `convert: field "k[1]": boom` || !errors.Is(err, cause) || !errors.Is(err, ErrConvert) {
		t.Errorf("hook error = %v", err)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Path != "k[1]" || ce.Err != cause {
		t.Errorf("errors.As: %+v", ce)
	}

	// A hook returning an *Error: copied, not modified.
	shared := &Error{Msg: "shared"}
	sharedHook := &Options{Hook: func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		if dst.Kind() == reflect.Int {
			return reflect.Value{}, false, shared
		}
		return reflect.Value{}, false, nil
	}}
	err = Into(new([]int), []any{int64(1)}, sharedHook)
	if err == nil || err.Error() != `convert: field "[0]": shared` || shared.Path != "" {
		t.Errorf("err = %v, shared = %+v", err, shared)
	}

	wrongType := &Options{Hook: func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		return reflect.ValueOf("str"), true, nil
	}}
	err = Into(new(int), int64(1), wrongType)
	if err == nil || err.Error() != `convert: hook returned string, not assignable to int` {
		t.Errorf("err = %v", err)
	}

	zeroing := &Options{Hook: func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		return reflect.Value{}, true, nil
	}}
	n := 5
	if err := Into(&n, int64(1), zeroing); err != nil || n != 0 {
		t.Errorf("zeroing hook: n = %d, err = %v", n, err)
	}
}

func TestAPIErrors(t *testing.T) {
	var n int
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Into non-pointer", Into(n, int64(1), nil), `convert: Into needs a non-nil pointer, got int`},
		{"Into nil pointer", Into((*int)(nil), int64(1), nil), `convert: Into needs a non-nil pointer, got *int`},
		{"Into nil", Into(nil, int64(1), nil), `convert: Into needs a non-nil pointer, got nil`},
		{"Assign unsettable", Assign(reflect.ValueOf(n), int64(1), nil), `convert: destination is not settable`},
		{"Assign invalid", Assign(reflect.Value{}, int64(1), nil), `convert: destination is not settable`},
	} {
		if tc.err == nil || tc.err.Error() != tc.want || !errors.Is(tc.err, ErrConvert) {
			t.Errorf("%s: err = %v, want %q", tc.name, tc.err, tc.want)
		}
	}

	v := reflect.New(reflect.TypeFor[[]string]()).Elem()
	if err := Assign(v, []any{"a"}, nil); err != nil || !cmp.Equal(v.Interface(), []string{"a"}) {
		t.Errorf("Assign: %v %v", v, err)
	}
}

func TestTo(t *testing.T) {
	if n, err := To[int](int64(5), nil); err != nil || n != 5 {
		t.Errorf("To[int] = %v, %v", n, err)
	}
	if v, err := To[any](nil, nil); err != nil || v != nil {
		t.Errorf("To[any](nil) = %v, %v", v, err)
	}
	if s, err := To[string]("x", &Options{}); err != nil || s != "x" {
		t.Errorf("To[string] = %v, %v", s, err)
	}
	it, err := To[Item](map[string]any{"name": int64(1)}, nil)
	if err == nil || it != (Item{}) || err.Error() != `convert: field "name": cannot use int64 1 as string` {
		t.Errorf("To[Item] = %+v, %v", it, err)
	}
	d, err := To[time.Duration](0.5, nil)
	if err != nil || d != 500*time.Millisecond {
		t.Errorf("To[Duration] = %v, %v", d, err)
	}
	// The hook is honoured even when src already has type T.
	hooked := &Options{Hook: func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		return reflect.ValueOf(42), true, nil
	}}
	if n, err := To[int](7, hooked); err != nil || n != 42 {
		t.Errorf("To with hook = %v, %v", n, err)
	}
}

func TestFoldTie(t *testing.T) {
	type twoNames struct {
		Name string
		NAME string
	}
	runDecodeCases(t, []decodeCase{
		{name: "exact", src: map[string]any{"Name": "a", "NAME": "b"}, dst: new(twoNames), want: twoNames{Name: "a", NAME: "b"}},
		{name: "fold is ambiguous", src: map[string]any{"name": "a"}, dst: new(twoNames), want: twoNames{}},
		{name: "fold is ambiguous strict", src: map[string]any{"name": "a"}, dst: new(twoNames),
			opts: &Options{DisallowUnknown: true}, err: `convert: field "name": unknown field in convert.twoNames`},
	})
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, "nil"},
		{myBool(true), "convert.myBool true"},
		{int8(-3), "int8 -3"},
		{uint16(3), "uint16 3"},
		{float32(0.1), "float32 0.1"},
		{myString("s"), `convert.myString "s"`},
		{[]byte("abc"), "[]uint8 (len 3)"},
		{map[string]any{"a": 1}, "map[string]any (len 1)"},
		{Item{}, "convert.Item"},
		{&Item{}, "*convert.Item"},
		{[]map[string]any{}, "[]map[string]any (len 0)"},
	} {
		if got := describe(tc.in); got != tc.want {
			t.Errorf("describe(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
