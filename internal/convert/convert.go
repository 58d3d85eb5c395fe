// Package convert moves values between the wire's dynamic value model and
// typed Go values.
//
// Decoded wire values are nil, bool, int64, uint64, float64, string, []byte,
// []any, map[string]any, and arbitrary other Go values (such as the rpc
// package's *rpc.RemoteFunc). Assign, To and Into convert such a value into
// a typed Go destination (handler arguments, call results); FromStruct goes
// the other way, turning Go structs and named types into the plain value
// model before encoding.
//
// # Decoding rules (Assign, To, Into)
//
// For every value, including every element, field and map entry reached
// while recursing:
//
//  1. Options.Hook, if set, is tried first.
//  2. nil (and a typed nil pointer, map or slice) sets the zero value.
//  3. If the source's dynamic type is assignable to the destination type the
//     value is assigned directly (this shares maps, slices and pointers; an
//     `any` destination stores the source as is).
//  4. time.Duration takes a number of seconds (fractions allowed).
//  5. A string is passed to UnmarshalText when *T implements
//     encoding.TextUnmarshaler (time.Time takes RFC 3339, for example).
//  6. Otherwise by destination kind:
//     - pointers: a nil pointer is allocated, a non-nil one is reused and the
//     value is converted into its target;
//     - bool: from bool only;
//     - integers and floats: from any Go integer or float kind, with range
//     checks; a float with a fractional part (or NaN, ±Inf) is refused for
//     an integer;
//     - string: from string or []byte;
//     - []byte: from []byte or string (the string is copied);
//     - slices: element-wise from []any or any other slice or array;
//     - arrays: the same, but the length must match exactly;
//     - maps with string-kind (or integer-kind, parsed from decimal)
//     keys: from map[string]any or any other map with string-kind keys,
//     into a new map;
//     - structs: from map[string]any (or any map with string-kind keys).
//     A source pointer is dereferenced.
//
// Struct fields are matched to keys by, in order of preference: exact json
// tag name, exact msgpack tag name, exact Go field name, then the same three
// case-insensitively. A `json:"-"` or `msgpack:"-"` field is never set.
// Unexported fields are ignored; embedded structs are flattened like
// encoding/json does (shallower fields win; ambiguous names are dropped).
// Keys matching no field are ignored unless Options.DisallowUnknown is set.
// Fields whose key is absent keep their current value, so a destination can
// be pre-filled with defaults.
//
// Errors are *Error values that wrap ErrConvert and name the path of the
// offending value, as in
//
//	convert: field "config.timeout": cannot use string "abc" as float64
//
// When several entries of a map are bad, the error reported is the one with
// the smallest key, so errors are deterministic. On error the destination
// may be partly written.
package convert

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
)

// ErrConvert is wrapped by every error this package returns.
var ErrConvert = errors.New("convert: cannot convert value")

// Options tune Assign, To and Into. A nil *Options is the zero Options.
// Options are read-only during a conversion and may be shared by goroutines.
type Options struct {
	// DisallowUnknown makes a map key that matches no struct field an error.
	DisallowUnknown bool

	// Hook, if set, is called first for every value converted, including
	// nested elements, with the source value and the destination type. If it
	// returns ok, the returned value (which must be assignable to dst, or the
	// invalid reflect.Value for the zero value) is used as is; a non-nil
	// error aborts the conversion and is wrapped with the value's path.
	Hook func(src any, dst reflect.Type) (v reflect.Value, ok bool, err error)
}

// Error is the error returned for a value that cannot be converted.
type Error struct {
	// Path locates the value from the root: map keys and struct field
	// names (the wire keys) are joined with ".", slice and array indexes are
	// written "[i]", e.g. "items[2].name". It is empty for the root value.
	Path string
	// Msg describes the problem, e.g. `cannot use string "abc" as float64`.
	Msg string
	// Err is the underlying cause (a Hook or UnmarshalText error), or nil.
	Err error

	mismatch bool // a plain type mismatch
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "convert: " + e.Msg
	}
	return "convert: field " + strconv.Quote(e.Path) + ": " + e.Msg
}

// Unwrap returns ErrConvert and the underlying cause, if any.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrConvert}
	}
	return []error{ErrConvert, e.Err}
}

// Assign converts src into dst, which must be settable (for example the
// Elem of a pointer obtained from reflect.New). opts may be nil.
func Assign(dst reflect.Value, src any, opts *Options) error {
	if !dst.IsValid() || !dst.CanSet() {
		return &Error{Msg: "destination is not settable"}
	}
	d := decoder{}
	if opts != nil {
		d.hook = opts.Hook
		d.disallowUnknown = opts.DisallowUnknown
	}
	return d.assign(dst, src, 0)
}

// To converts src to a T. On error it returns the zero T.
func To[T any](src any, opts *Options) (T, error) {
	if opts == nil || opts.Hook == nil {
		if v, ok := src.(T); ok {
			return v, nil
		}
	}
	var out T
	if err := Assign(reflect.ValueOf(&out).Elem(), src, opts); err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// Into converts src into the value dstPtr points to, which must be a
// non-nil pointer.
func Into(dstPtr any, src any, opts *Options) error {
	rv := reflect.ValueOf(dstPtr)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &Error{Msg: "Into needs a non-nil pointer, got " + describeType(reflect.TypeOf(dstPtr))}
	}
	return Assign(rv.Elem(), src, opts)
}

// maxDepth bounds recursion, protecting against cyclic Go values.
const maxDepth = 10000

func errDepth() error {
	return &Error{Msg: "value nested deeper than " + strconv.Itoa(maxDepth) + " levels (cyclic?)"}
}

// atKey prefixes the path of err (an *Error) with a map key or field name.
func atKey(err error, key string) error {
	e := asError(err)
	switch {
	case e.Path == "":
		e.Path = key
	case e.Path[0] == '[':
		e.Path = key + e.Path
	default:
		e.Path = key + "." + e.Path
	}
	return e
}

// atIndex prefixes the path of err with a slice or array index.
func atIndex(err error, i int) error {
	e := asError(err)
	seg := "[" + strconv.Itoa(i) + "]"
	switch {
	case e.Path == "":
		e.Path = seg
	case e.Path[0] == '[':
		e.Path = seg + e.Path
	default:
		e.Path = seg + "." + e.Path
	}
	return e
}

func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Msg: err.Error(), Err: err}
}

// keyErr accumulates the error of the smallest key while iterating a map,
// so that the reported error does not depend on map iteration order.
type keyErr struct {
	key string
	err error
}

func (k *keyErr) add(key string, err error) {
	if k.err == nil || key < k.key {
		k.key, k.err = key, err
	}
}

func (k *keyErr) result() error {
	if k.err == nil {
		return nil
	}
	return atKey(k.err, k.key)
}

// describe renders a source value for an error message: its type and, for
// scalars, a (truncated) value.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return "string " + quoteTrunc(x)
	case bool:
		return "bool " + strconv.FormatBool(x)
	case int64:
		return "int64 " + strconv.FormatInt(x, 10)
	case uint64:
		return "uint64 " + strconv.FormatUint(x, 10)
	case float64:
		return "float64 " + strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return "nil"
	}
	rv := reflect.ValueOf(v)
	t := describeType(rv.Type())
	switch rv.Kind() {
	case reflect.Bool:
		return t + " " + strconv.FormatBool(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return t + " " + strconv.FormatInt(rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return t + " " + strconv.FormatUint(rv.Uint(), 10)
	case reflect.Float32:
		return t + " " + strconv.FormatFloat(rv.Float(), 'g', -1, 32)
	case reflect.Float64:
		return t + " " + strconv.FormatFloat(rv.Float(), 'g', -1, 64)
	case reflect.String:
		return t + " " + quoteTrunc(rv.String())
	case reflect.Slice, reflect.Array, reflect.Map:
		return t + " (len " + strconv.Itoa(rv.Len()) + ")"
	}
	return t
}

func describeType(t reflect.Type) string {
	if t == nil {
		return "nil"
	}
	return strings.ReplaceAll(t.String(), "interface {}", "any")
}

func quoteTrunc(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
