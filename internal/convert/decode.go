package convert

import (
	"encoding"
	"math"
	"reflect"
	"strconv"
	"time"
)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

type decoder struct {
	hook            func(src any, dst reflect.Type) (reflect.Value, bool, error)
	disallowUnknown bool
}

func (d *decoder) assign(dst reflect.Value, src any, depth int) error {
	if depth > maxDepth {
		return errDepth()
	}
	dt := dst.Type()
	if d.hook != nil {
		v, ok, err := d.hook(src, dt)
		if err != nil {
			if e, isE := err.(*Error); isE {
				c := *e // do not modify an error the hook may share
				return &c
			}
			return &Error{Msg: err.Error(), Err: err}
		}
		if ok {
			if !v.IsValid() {
				dst.SetZero()
				return nil
			}
			if !v.Type().AssignableTo(dt) {
				return &Error{Msg: "hook returned " + describeType(v.Type()) + ", not assignable to " + describeType(dt)}
			}
			dst.Set(v)
			return nil
		}
	}
	if src == nil {
		dst.SetZero()
		return nil
	}
	sv := reflect.ValueOf(src)
	if st := sv.Type(); st == dt || st.AssignableTo(dt) {
		dst.Set(sv)
		return nil
	}
	switch sv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice:
		if sv.IsNil() {
			dst.SetZero()
			return nil
		}
	}

	switch dt.Kind() {
	case reflect.Pointer:
		if dst.IsNil() {
			dst.Set(reflect.New(dt.Elem()))
		}
		return d.assign(dst.Elem(), src, depth+1)
	case reflect.Interface:
		return mismatch(src, dt)
	}
	if sv.Kind() == reflect.Pointer {
		err := d.assign(dst, sv.Elem().Interface(), depth+1)
		if e, ok := err.(*Error); ok && e.mismatch && e.Path == "" {
			return mismatch(src, dt) // name the type the caller passed
		}
		return err
	}

	if dt == durationType {
		return setDuration(dst, src, sv)
	}
	if sv.Kind() == reflect.String && reflect.PointerTo(dt).Implements(textUnmarshalerType) {
		if err := dst.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(sv.String())); err != nil {
			return &Error{Msg: "cannot use " + describe(src) + " as " + describeType(dt) + ": " + err.Error(), Err: err}
		}
		return nil
	}

	switch dt.Kind() {
	case reflect.Bool:
		if sv.Kind() == reflect.Bool {
			dst.SetBool(sv.Bool())
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return setInt(dst, src, sv)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return setUint(dst, src, sv)
	case reflect.Float32, reflect.Float64:
		return setFloat(dst, src, sv)
	case reflect.String:
		if sv.Kind() == reflect.String {
			dst.SetString(sv.String())
			return nil
		}
		if isBytes(sv) {
			dst.SetString(string(sv.Bytes()))
			return nil
		}
	case reflect.Slice:
		return d.setSlice(dst, dt, src, sv, depth)
	case reflect.Array:
		return d.setArray(dst, dt, src, sv, depth)
	case reflect.Map:
		return d.setMap(dst, dt, src, sv, depth)
	case reflect.Struct:
		return d.setStruct(dst, dt, src, sv, depth)
	}
	return mismatch(src, dt)
}

func mismatch(src any, dt reflect.Type) error {
	msg := "cannot use " + describe(src) + " as " + describeType(dt)
	if dt == durationType {
		msg += " (a number of seconds)"
	}
	return &Error{Msg: msg, mismatch: true}
}

func outOfRange(src any, dt reflect.Type) error {
	return &Error{Msg: "cannot use " + describe(src) + " as " + describeType(dt) + ": out of range"}
}

func notInteger(src any, dt reflect.Type) error {
	return &Error{Msg: "cannot use " + describe(src) + " as " + describeType(dt) + ": not an integer"}
}

func isBytes(v reflect.Value) bool {
	return v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8
}

// 2^63 and 2^64 as float64: the exclusive upper bounds of int64 and uint64.
const (
	two63 = 9223372036854775808.0
	two64 = 18446744073709551616.0
)

func setInt(dst reflect.Value, src any, sv reflect.Value) error {
	var n int64
	switch sv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = sv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := sv.Uint()
		if u > math.MaxInt64 {
			return outOfRange(src, dst.Type())
		}
		n = int64(u)
	case reflect.Float32, reflect.Float64:
		f := sv.Float()
		if math.IsInf(f, 0) || f != math.Trunc(f) { // NaN != NaN
			return notInteger(src, dst.Type())
		}
		if f < -two63 || f >= two63 {
			return outOfRange(src, dst.Type())
		}
		n = int64(f)
	default:
		return mismatch(src, dst.Type())
	}
	if dst.OverflowInt(n) {
		return outOfRange(src, dst.Type())
	}
	dst.SetInt(n)
	return nil
}

func setUint(dst reflect.Value, src any, sv reflect.Value) error {
	var u uint64
	switch sv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := sv.Int()
		if n < 0 {
			return outOfRange(src, dst.Type())
		}
		u = uint64(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u = sv.Uint()
	case reflect.Float32, reflect.Float64:
		f := sv.Float()
		if math.IsInf(f, 0) || f != math.Trunc(f) {
			return notInteger(src, dst.Type())
		}
		if f < 0 || f >= two64 {
			return outOfRange(src, dst.Type())
		}
		u = uint64(f)
	default:
		return mismatch(src, dst.Type())
	}
	if dst.OverflowUint(u) {
		return outOfRange(src, dst.Type())
	}
	dst.SetUint(u)
	return nil
}

func setFloat(dst reflect.Value, src any, sv reflect.Value) error {
	var f float64
	switch sv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f = float64(sv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		f = float64(sv.Uint())
	case reflect.Float32, reflect.Float64:
		f = sv.Float()
	default:
		return mismatch(src, dst.Type())
	}
	if dst.OverflowFloat(f) {
		return outOfRange(src, dst.Type())
	}
	dst.SetFloat(f)
	return nil
}

// setDuration converts a number of seconds into a time.Duration.
func setDuration(dst reflect.Value, src any, sv reflect.Value) error {
	const maxSec = math.MaxInt64 / int64(time.Second)
	var d time.Duration
	switch sv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := sv.Int()
		if n > maxSec || n < -maxSec {
			return outOfRange(src, durationType)
		}
		d = time.Duration(n) * time.Second
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := sv.Uint()
		if u > uint64(maxSec) {
			return outOfRange(src, durationType)
		}
		d = time.Duration(u) * time.Second
	case reflect.Float32, reflect.Float64:
		ns := math.Round(sv.Float() * float64(time.Second))
		if math.IsNaN(ns) {
			return &Error{Msg: "cannot use " + describe(src) + " as time.Duration: not a number"}
		}
		if ns < -two63 || ns >= two63 {
			return outOfRange(src, durationType)
		}
		d = time.Duration(ns)
	default:
		return mismatch(src, durationType)
	}
	dst.SetInt(int64(d))
	return nil
}

func (d *decoder) setSlice(dst reflect.Value, dt reflect.Type, src any, sv reflect.Value, depth int) error {
	et := dt.Elem()
	if et.Kind() == reflect.Uint8 {
		if sv.Kind() == reflect.String {
			dst.SetBytes([]byte(sv.String()))
			return nil
		}
		if isBytes(sv) {
			dst.SetBytes(sv.Bytes())
			return nil
		}
	}
	if s, ok := src.([]any); ok {
		out := reflect.MakeSlice(dt, len(s), len(s))
		for i, e := range s {
			if err := d.assign(out.Index(i), e, depth+1); err != nil {
				return atIndex(err, i)
			}
		}
		dst.Set(out)
		return nil
	}
	if k := sv.Kind(); k != reflect.Slice && k != reflect.Array {
		return mismatch(src, dt)
	}
	n := sv.Len()
	out := reflect.MakeSlice(dt, n, n)
	for i := range n {
		if err := d.assign(out.Index(i), sv.Index(i).Interface(), depth+1); err != nil {
			return atIndex(err, i)
		}
	}
	dst.Set(out)
	return nil
}

func (d *decoder) setArray(dst reflect.Value, dt reflect.Type, src any, sv reflect.Value, depth int) error {
	switch sv.Kind() {
	case reflect.Slice, reflect.Array:
	case reflect.String:
		if dt.Elem().Kind() != reflect.Uint8 {
			return mismatch(src, dt)
		}
	default:
		return mismatch(src, dt)
	}
	if sv.Len() != dt.Len() {
		return &Error{Msg: "cannot use " + describe(src) + " as " + describeType(dt) + ": length mismatch"}
	}
	if sv.Kind() == reflect.String {
		s := sv.String()
		for i := range len(s) {
			dst.Index(i).SetUint(uint64(s[i]))
		}
		return nil
	}
	if s, ok := src.([]any); ok {
		for i, e := range s {
			if err := d.assign(dst.Index(i), e, depth+1); err != nil {
				return atIndex(err, i)
			}
		}
		return nil
	}
	for i := range sv.Len() {
		if err := d.assign(dst.Index(i), sv.Index(i).Interface(), depth+1); err != nil {
			return atIndex(err, i)
		}
	}
	return nil
}

// stringMap returns src as a map[string]any: directly, or copied from a map
// with string-kind keys.
func stringMap(src any, sv reflect.Value) (map[string]any, bool) {
	if m, ok := src.(map[string]any); ok {
		return m, true
	}
	if sv.Kind() != reflect.Map || sv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	m := make(map[string]any, sv.Len())
	for it := sv.MapRange(); it.Next(); {
		m[it.Key().String()] = it.Value().Interface()
	}
	return m, true
}

func (d *decoder) setMap(dst reflect.Value, dt reflect.Type, src any, sv reflect.Value, depth int) error {
	m, ok := stringMap(src, sv)
	if !ok {
		return mismatch(src, dt)
	}
	kt := dt.Key()
	var kind reflect.Kind
	switch kt.Kind() {
	case reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		kind = kt.Kind()
	default:
		if !reflect.PointerTo(kt).Implements(textUnmarshalerType) {
			return &Error{Msg: "cannot use " + describe(src) + " as " + describeType(dt) + ": unsupported key type"}
		}
		kind = reflect.Invalid // TextUnmarshaler
	}
	out := reflect.MakeMapWithSize(dt, len(m))
	kv := reflect.New(kt).Elem()
	ev := reflect.New(dt.Elem()).Elem()
	var ke keyErr
	for k, e := range m {
		if err := setKey(kv, kind, k); err != nil {
			ke.add(k, err)
			continue
		}
		ev.SetZero()
		if err := d.assign(ev, e, depth+1); err != nil {
			ke.add(k, err)
			continue
		}
		out.SetMapIndex(kv, ev)
	}
	if err := ke.result(); err != nil {
		return err
	}
	dst.Set(out)
	return nil
}

func setKey(kv reflect.Value, kind reflect.Kind, k string) error {
	switch kind {
	case reflect.String:
		kv.SetString(k)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(k, 10, kv.Type().Bits())
		if err != nil {
			return &Error{Msg: "cannot use map key " + strconv.Quote(k) + " as " + describeType(kv.Type()), Err: err}
		}
		kv.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(k, 10, kv.Type().Bits())
		if err != nil {
			return &Error{Msg: "cannot use map key " + strconv.Quote(k) + " as " + describeType(kv.Type()), Err: err}
		}
		kv.SetUint(n)
		return nil
	}
	kv.SetZero()
	if err := kv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(k)); err != nil {
		return &Error{Msg: "cannot use map key " + strconv.Quote(k) + " as " + describeType(kv.Type()) + ": " + err.Error(), Err: err}
	}
	return nil
}

func (d *decoder) setStruct(dst reflect.Value, dt reflect.Type, src any, sv reflect.Value, depth int) error {
	m, ok := stringMap(src, sv)
	if !ok {
		return mismatch(src, dt)
	}
	si := cachedStructInfo(dt)
	var ke keyErr
	for k, e := range m {
		fi, exact := si.lookup(k)
		if fi < 0 {
			if d.disallowUnknown {
				ke.add(k, &Error{Msg: "unknown field in " + describeType(dt)})
			}
			continue
		}
		if !exact && len(m) > 1 && si.exactKeyIn(fi, m) {
			continue // an exact key for this field wins
		}
		fv := fieldByIndexAlloc(dst, si.fields[fi].index)
		if err := d.assign(fv, e, depth+1); err != nil {
			ke.add(k, err)
		}
	}
	return ke.result()
}

// fieldByIndexAlloc is FieldByIndex, allocating nil embedded pointers.
func fieldByIndexAlloc(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}
