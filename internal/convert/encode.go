package convert

import (
	"encoding"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"
)

// WireValuer is implemented by values that know their own wire form.
// FromStruct calls WireValue and converts its result further, unless the
// result itself implements WireValuer: so returning the receiver passes a
// value through FromStruct untouched (for the encoder to handle).
type WireValuer interface {
	WireValue() any
}

var (
	wireValuerType    = reflect.TypeFor[WireValuer]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	errorType         = reflect.TypeFor[error]()
	isZeroerType      = reflect.TypeFor[interface{ IsZero() bool }]()
	anySliceType      = reflect.TypeFor[[]any]()
	anyMapType        = reflect.TypeFor[map[string]any]()
)

// FromStruct converts v into the plain value model for encoding:
//
//   - nil, bool, string, int64, uint64, float64 and []byte are returned as is;
//   - other integer kinds become int64, other unsigned kinds uint64, float32
//     float64, and named bool/string types their base type;
//   - time.Duration becomes a float64 number of seconds (the inverse of the
//     decoding rule);
//   - values implementing WireValuer are replaced by WireValue() (see
//     WireValuer); encoding.TextMarshaler values (time.Time, say) become
//     strings; values implementing error, and funcs, are left untouched;
//   - structs become map[string]any keyed by json tag name (else msgpack tag
//     name, else Go field name), honouring "-", omitempty and omitzero and
//     flattening embedded structs like encoding/json;
//   - maps become map[string]any, their keys of string kind, integer kind
//     (formatted in decimal) or encoding.TextMarshaler;
//   - other slices and arrays become []any ([]byte-like ones []byte);
//   - pointers and interfaces are followed; nil pointers, slices, maps and
//     interfaces become nil.
//
// A map[string]any or []any is recursed into but copied only when some
// element changes, so already-plain trees are returned as is without
// allocating. Channels, complex numbers and unsafe pointers are errors.
func FromStruct(v any) (any, error) {
	out, _, err := fromAny(v, 0)
	return out, err
}

// fromAny converts v, reporting whether the result differs from v.
func fromAny(v any, depth int) (any, bool, error) {
	switch x := v.(type) {
	case nil, bool, string, int64, uint64, float64, []byte:
		return v, false, nil
	case int:
		return int64(x), true, nil
	case int32:
		return int64(x), true, nil
	case int16:
		return int64(x), true, nil
	case int8:
		return int64(x), true, nil
	case uint:
		return uint64(x), true, nil
	case uint32:
		return uint64(x), true, nil
	case uint16:
		return uint64(x), true, nil
	case uint8:
		return uint64(x), true, nil
	case float32:
		return float64(x), true, nil
	case time.Duration:
		return x.Seconds(), true, nil
	case map[string]any:
		return fromMap(x, depth)
	case []any:
		out, changed, err := fromSlice(x, depth)
		if err != nil {
			return nil, false, err
		}
		if !changed {
			return v, false, nil // do not box the slice header again
		}
		return out, true, nil
	}
	if depth > maxDepth {
		return nil, false, errDepth()
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Func {
		if rv.IsNil() {
			return nil, true, nil
		}
		return v, false, nil
	}
	out, err := typeEncoder(rv.Type())(rv, depth)
	return out, true, err
}

func fromMap(m map[string]any, depth int) (any, bool, error) {
	if depth > maxDepth {
		return nil, false, errDepth()
	}
	var out map[string]any
	var ke keyErr
	for k, e := range m {
		ne, changed, err := fromAny(e, depth+1)
		if err != nil {
			ke.add(k, err)
			continue
		}
		if changed {
			if out == nil {
				out = maps.Clone(m)
			}
			out[k] = ne
		}
	}
	if err := ke.result(); err != nil {
		return nil, false, err
	}
	if out == nil {
		return m, false, nil
	}
	return out, true, nil
}

func fromSlice(s []any, depth int) ([]any, bool, error) {
	if depth > maxDepth {
		return nil, false, errDepth()
	}
	var out []any
	for i, e := range s {
		ne, changed, err := fromAny(e, depth+1)
		if err != nil {
			return nil, false, atIndex(err, i)
		}
		if changed {
			if out == nil {
				out = slices.Clone(s)
			}
			out[i] = ne
		}
	}
	if out == nil {
		return s, false, nil
	}
	return out, true, nil
}

// encoderFunc converts a reflect.Value of one type to the plain value model.
type encoderFunc func(v reflect.Value, depth int) (any, error)

var encoderCache sync.Map // reflect.Type → encoderFunc

// typeEncoder returns the (cached) encoder for t. Recursive types get a
// placeholder that waits for the real encoder, as in encoding/json.
func typeEncoder(t reflect.Type) encoderFunc {
	if fi, ok := encoderCache.Load(t); ok {
		return fi.(encoderFunc)
	}
	var (
		wg sync.WaitGroup
		f  encoderFunc
	)
	wg.Add(1)
	fi, loaded := encoderCache.LoadOrStore(t, encoderFunc(func(v reflect.Value, depth int) (any, error) {
		wg.Wait()
		return f(v, depth)
	}))
	if loaded {
		return fi.(encoderFunc)
	}
	f = newTypeEncoder(t, true)
	wg.Done()
	encoderCache.Store(t, f)
	return f
}

func newTypeEncoder(t reflect.Type, allowAddr bool) encoderFunc {
	if t.Implements(wireValuerType) {
		return wireEncoder
	}
	if allowAddr && t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(wireValuerType) {
		return condAddrEncoder(addrWireEncoder, newTypeEncoder(t, false))
	}
	if t == durationType {
		return durationEncoder
	}
	if t.Implements(textMarshalerType) {
		return textEncoder
	}
	if allowAddr && t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(textMarshalerType) {
		return condAddrEncoder(addrTextEncoder, newTypeEncoder(t, false))
	}
	if t.Implements(errorType) {
		return passEncoder
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(v reflect.Value, _ int) (any, error) { return v.Bool(), nil }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(v reflect.Value, _ int) (any, error) { return v.Int(), nil }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(v reflect.Value, _ int) (any, error) { return v.Uint(), nil }
	case reflect.Float32, reflect.Float64:
		return func(v reflect.Value, _ int) (any, error) { return v.Float(), nil }
	case reflect.String:
		return func(v reflect.Value, _ int) (any, error) { return v.String(), nil }
	case reflect.Interface:
		return interfaceEncoder
	case reflect.Func:
		return passEncoder
	case reflect.Pointer:
		return newPtrEncoder(t)
	case reflect.Map:
		if t == anyMapType {
			return plainEncoder
		}
		return newMapEncoder(t)
	case reflect.Slice:
		if t == anySliceType {
			return plainEncoder
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return bytesEncoder
		}
		return newSliceEncoder(t)
	case reflect.Array:
		return newArrayEncoder(t)
	case reflect.Struct:
		return newStructEncoder(t)
	}
	return func(v reflect.Value, _ int) (any, error) {
		return nil, &Error{Msg: "cannot encode value of type " + describeType(v.Type())}
	}
}

func condAddrEncoder(addr, plain encoderFunc) encoderFunc {
	return func(v reflect.Value, depth int) (any, error) {
		if v.CanAddr() {
			return addr(v, depth)
		}
		return plain(v, depth)
	}
}

func isNilRef(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func:
		return v.IsNil()
	}
	return false
}

func wireEncoder(v reflect.Value, depth int) (any, error) {
	if isNilRef(v) {
		return nil, nil
	}
	return fromWire(v.Interface().(WireValuer).WireValue(), depth)
}

func addrWireEncoder(v reflect.Value, depth int) (any, error) {
	return fromWire(v.Addr().Interface().(WireValuer).WireValue(), depth)
}

func fromWire(w any, depth int) (any, error) {
	if _, self := w.(WireValuer); self {
		return w, nil
	}
	out, _, err := fromAny(w, depth+1)
	return out, err
}

func durationEncoder(v reflect.Value, _ int) (any, error) {
	return time.Duration(v.Int()).Seconds(), nil
}

func textEncoder(v reflect.Value, _ int) (any, error) {
	if isNilRef(v) {
		return nil, nil
	}
	return marshalText(v.Interface().(encoding.TextMarshaler), v.Type())
}

func addrTextEncoder(v reflect.Value, _ int) (any, error) {
	return marshalText(v.Addr().Interface().(encoding.TextMarshaler), v.Type())
}

func marshalText(m encoding.TextMarshaler, t reflect.Type) (any, error) {
	b, err := m.MarshalText()
	if err != nil {
		return nil, &Error{Msg: "cannot encode " + describeType(t) + ": " + err.Error(), Err: err}
	}
	return string(b), nil
}

func passEncoder(v reflect.Value, _ int) (any, error) {
	if isNilRef(v) {
		return nil, nil
	}
	return v.Interface(), nil
}

func plainEncoder(v reflect.Value, depth int) (any, error) {
	if v.IsNil() {
		return nil, nil
	}
	out, _, err := fromAny(v.Interface(), depth)
	return out, err
}

func interfaceEncoder(v reflect.Value, depth int) (any, error) {
	if v.IsNil() {
		return nil, nil
	}
	out, _, err := fromAny(v.Elem().Interface(), depth+1)
	return out, err
}

func bytesEncoder(v reflect.Value, _ int) (any, error) {
	if v.IsNil() {
		return nil, nil
	}
	return v.Bytes(), nil
}

func newPtrEncoder(t reflect.Type) encoderFunc {
	elem := typeEncoder(t.Elem())
	return func(v reflect.Value, depth int) (any, error) {
		if v.IsNil() {
			return nil, nil
		}
		if depth > maxDepth {
			return nil, errDepth()
		}
		return elem(v.Elem(), depth+1)
	}
}

func newSliceEncoder(t reflect.Type) encoderFunc {
	elems := newElemsEncoder(t)
	return func(v reflect.Value, depth int) (any, error) {
		if v.IsNil() {
			return nil, nil
		}
		if depth > maxDepth {
			return nil, errDepth()
		}
		return elems(v, depth)
	}
}

func newArrayEncoder(t reflect.Type) encoderFunc {
	if t.Elem().Kind() == reflect.Uint8 {
		return func(v reflect.Value, _ int) (any, error) {
			out := make([]byte, v.Len())
			for i := range out {
				out[i] = byte(v.Index(i).Uint())
			}
			return out, nil
		}
	}
	return newElemsEncoder(t)
}

// newElemsEncoder encodes the elements of a slice or array as []any.
func newElemsEncoder(t reflect.Type) encoderFunc {
	elem := typeEncoder(t.Elem())
	return func(v reflect.Value, depth int) (any, error) {
		out := make([]any, v.Len())
		for i := range out {
			e, err := elem(v.Index(i), depth+1)
			if err != nil {
				return nil, atIndex(err, i)
			}
			out[i] = e
		}
		return out, nil
	}
}

func newMapEncoder(t reflect.Type) encoderFunc {
	kt := t.Key()
	var key func(k reflect.Value) (string, error)
	switch {
	case kt.Kind() == reflect.String:
		key = func(k reflect.Value) (string, error) { return k.String(), nil }
	case kt.Implements(textMarshalerType):
		key = func(k reflect.Value) (string, error) {
			if isNilRef(k) {
				return "", nil
			}
			b, err := k.Interface().(encoding.TextMarshaler).MarshalText()
			if err != nil {
				return "", &Error{Msg: "cannot encode map key of type " + describeType(kt) + ": " + err.Error(), Err: err}
			}
			return string(b), nil
		}
	default:
		switch kt.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			key = func(k reflect.Value) (string, error) { return strconv.FormatInt(k.Int(), 10), nil }
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			key = func(k reflect.Value) (string, error) { return strconv.FormatUint(k.Uint(), 10), nil }
		default:
			return func(v reflect.Value, _ int) (any, error) {
				return nil, &Error{Msg: "cannot encode " + describeType(t) + ": unsupported key type"}
			}
		}
	}
	elem := typeEncoder(t.Elem())
	return func(v reflect.Value, depth int) (any, error) {
		if v.IsNil() {
			return nil, nil
		}
		if depth > maxDepth {
			return nil, errDepth()
		}
		out := make(map[string]any, v.Len())
		var ke keyErr
		for it := v.MapRange(); it.Next(); {
			k, err := key(it.Key())
			if err != nil {
				return nil, err
			}
			e, err := elem(it.Value(), depth+1)
			if err != nil {
				ke.add(k, err)
				continue
			}
			out[k] = e
		}
		if err := ke.result(); err != nil {
			return nil, err
		}
		return out, nil
	}
}

func newStructEncoder(t reflect.Type) encoderFunc {
	si := cachedStructInfo(t)
	encs := make([]encoderFunc, len(si.fields))
	for i := range si.fields {
		encs[i] = typeEncoder(si.fields[i].typ)
	}
	return func(v reflect.Value, depth int) (any, error) {
		if depth > maxDepth {
			return nil, errDepth()
		}
		out := make(map[string]any, len(si.fields))
		for i := range si.fields {
			f := &si.fields[i]
			fv, ok := fieldByIndex(v, f.index)
			if !ok {
				continue // inside a nil embedded pointer
			}
			if f.omitEmpty && isEmptyValue(fv) || f.omitZero && isZeroValue(fv) {
				continue
			}
			e, err := encs[i](fv, depth+1)
			if err != nil {
				return nil, atKey(err, f.name)
			}
			out[f.name] = e
		}
		return out, nil
	}
}

// fieldByIndex is FieldByIndex, reporting false for a nil embedded pointer.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64,
		reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// isZeroValue is encoding/json's omitzero test: an IsZero method if the
// type has one, else reflect's zero test.
func isZeroValue(v reflect.Value) bool {
	t := v.Type()
	if t.Implements(isZeroerType) {
		if isNilRef(v) {
			return true
		}
		return v.Interface().(interface{ IsZero() bool }).IsZero()
	}
	if v.CanAddr() && reflect.PointerTo(t).Implements(isZeroerType) {
		return v.Addr().Interface().(interface{ IsZero() bool }).IsZero()
	}
	return v.IsZero()
}
