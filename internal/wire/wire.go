// Package wire reads and writes hypha-rpc binary frames.
//
// A frame is one msgpack map (the routing "main" segment) optionally followed by
// a second msgpack map (the "extra" payload), concatenated with no length prefix.
// The server only decodes the first map and forwards the rest byte for byte, so
// DecodeMain reports where the first object ends.
//
// Dynamic values are decoded strictly: integers become int64 (uint64 only above
// MaxInt64), floats float64, str string, bin []byte. Loose decoding is never used
// because it turns bin into string and would corrupt binary payloads.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MaxDepth bounds the nesting of decoded values so that a hostile frame cannot
// exhaust the stack.
const MaxDepth = 64

// ErrMalformed is wrapped by every decoding error caused by bad input.
var ErrMalformed = errors.New("malformed msgpack frame")

type decoder struct {
	r bytes.Reader
	d *msgpack.Decoder
	// rawUser keeps the main segment's "user" value undecoded (see
	// DecodeFrameRawUser).
	rawUser bool
	user    []byte
	buf     []byte
}

var decoderPool = sync.Pool{New: func() any {
	dd := &decoder{}
	dd.d = msgpack.NewDecoder(&dd.r)
	return dd
}}

func getDecoder(b []byte) *decoder {
	dd := decoderPool.Get().(*decoder)
	dd.buf = b
	dd.r.Reset(b)
	dd.d.Reset(&dd.r)
	return dd
}

func putDecoder(dd *decoder) {
	dd.r.Reset(nil)
	dd.rawUser, dd.user, dd.buf = false, nil, nil
	decoderPool.Put(dd)
}

// DecodeMain decodes the first msgpack object of frame, which must be a map, and
// returns it together with the undecoded remainder (the extra segment, possibly empty).
func DecodeMain(frame []byte) (map[string]any, []byte, error) {
	dd := getDecoder(frame)
	defer putDecoder(dd)
	v, err := dd.value(0)
	if err != nil {
		return nil, nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("%w: first segment is %T, want a map", ErrMalformed, v)
	}
	rest := frame[len(frame)-dd.r.Len():]
	return m, rest, nil
}

// DecodeFrame decodes the main segment and, if present, the extra segment. The
// extra segment must be a map when present; trailing bytes after it are an error.
func DecodeFrame(frame []byte) (main, extra map[string]any, err error) {
	main, extra, _, err = decodeFrame(frame, false)
	return main, extra, err
}

// DecodeFrameRawUser is DecodeFrame except that the main segment's "user"
// entry is returned as its raw msgpack bytes and left out of main. Every
// message from one client carries the same user bytes, so a receiver can
// cache their decoding instead of decoding them for every message.
func DecodeFrameRawUser(frame []byte) (main, extra map[string]any, user []byte, err error) {
	return decodeFrame(frame, true)
}

func decodeFrame(frame []byte, rawUser bool) (main, extra map[string]any, user []byte, err error) {
	dd := getDecoder(frame)
	defer putDecoder(dd)
	dd.rawUser = rawUser
	main, extra, err = dd.frame()
	return main, extra, dd.user, err
}

func (dd *decoder) frame() (main, extra map[string]any, err error) {
	v, err := dd.value(0)
	if err != nil {
		return nil, nil, err
	}
	dd.rawUser = false // only the main segment's user is trusted and cached
	main, ok := v.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("%w: first segment is %T, want a map", ErrMalformed, v)
	}
	if dd.r.Len() == 0 {
		return main, nil, nil
	}
	v, err = dd.value(0)
	if err != nil {
		return nil, nil, fmt.Errorf("extra segment: %w", err)
	}
	extra, ok = v.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("%w: extra segment is %T, want a map", ErrMalformed, v)
	}
	if dd.r.Len() != 0 {
		return nil, nil, fmt.Errorf("%w: %d trailing bytes after the extra segment", ErrMalformed, dd.r.Len())
	}
	return main, extra, nil
}

// Decode decodes exactly one msgpack value.
func Decode(b []byte) (any, error) {
	dd := getDecoder(b)
	defer putDecoder(dd)
	v, err := dd.value(0)
	if err != nil {
		return nil, err
	}
	if dd.r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, dd.r.Len())
	}
	return v, nil
}

func (dd *decoder) value(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, MaxDepth)
	}
	d := dd.d
	c, err := d.PeekCode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var v any
	switch {
	case c == msgpcode.Nil:
		err = d.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		v, err = d.DecodeBool()
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64,
		c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32:
		v, err = d.DecodeInt64()
	case c == msgpcode.Uint64:
		var u uint64
		u, err = d.DecodeUint64()
		if u <= 1<<63-1 {
			v = int64(u)
		} else {
			v = u
		}
	case c == msgpcode.Float || c == msgpcode.Double:
		v, err = d.DecodeFloat64()
	case msgpcode.IsFixedString(c):
		// Short strings (map keys, routing fields) are read in place and the
		// protocol's common ones are not allocated at all.
		pos := len(dd.buf) - dd.r.Len()
		n := int(c & msgpcode.FixedStrMask)
		if pos+1+n > len(dd.buf) {
			return nil, fmt.Errorf("%w: string of %d bytes exceeds the frame", ErrMalformed, n)
		}
		b := dd.buf[pos+1 : pos+1+n]
		if _, err := dd.r.Seek(int64(1+n), io.SeekCurrent); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return intern(b), nil
	case msgpcode.IsString(c):
		if err = dd.fits(c); err == nil {
			v, err = d.DecodeString()
		}
	case msgpcode.IsBin(c):
		v, err = dd.bin()
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		return dd.mapValue(depth)
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return dd.arrayValue(depth)
	case msgpcode.IsExt(c):
		// Only the timestamp extension (-1) is used by the reference clients (JS Date).
		if err = dd.fits(c); err == nil {
			v, err = d.DecodeInterface()
		}
	default:
		return nil, fmt.Errorf("%w: unexpected code 0x%02x", ErrMalformed, c)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return v, nil
}

func (dd *decoder) mapValue(depth int) (any, error) {
	n, err := dd.d.DecodeMapLen()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Each entry needs at least two bytes; refuse lengths the frame cannot hold
	// before allocating anything.
	if n < 0 || n*2 > dd.r.Len() {
		if n == -1 {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: map of %d entries exceeds the frame", ErrMalformed, n)
	}
	m := make(map[string]any, n)
	for range n {
		k, err := dd.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if depth == 0 && dd.rawUser {
			if ks, _ := k.(string); ks == "user" {
				start := len(dd.buf) - dd.r.Len()
				if err := dd.skip(depth + 1); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
				}
				dd.user = dd.buf[start : len(dd.buf)-dd.r.Len() : len(dd.buf)-dd.r.Len()]
				continue
			}
		}
		var key string
		switch kk := k.(type) {
		case string:
			key = kk
		case []byte:
			key = string(kk)
		case nil:
			key = "None"
		default:
			key = fmt.Sprint(kk)
		}
		v, err := dd.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	return m, nil
}

func (dd *decoder) arrayValue(depth int) (any, error) {
	n, err := dd.d.DecodeArrayLen()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if n < 0 || n > dd.r.Len() {
		if n == -1 {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: array of %d items exceeds the frame", ErrMalformed, n)
	}
	a := make([]any, n)
	for i := range n {
		v, err := dd.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a[i] = v
	}
	return a, nil
}

type encoder struct {
	buf bytes.Buffer
	e   *msgpack.Encoder
}

var encoderPool = sync.Pool{New: func() any {
	ee := &encoder{}
	ee.e = msgpack.NewEncoder(&ee.buf)
	ee.e.UseCompactInts(true)
	return ee
}}

// Encode appends the msgpack encoding of each value to one new byte slice. It is
// used for frames: Encode(main) or Encode(main, extra).
func Encode(values ...any) ([]byte, error) {
	ee := encoderPool.Get().(*encoder)
	ee.buf.Reset()
	for _, v := range values {
		if err := ee.e.Encode(v); err != nil {
			encoderPool.Put(ee)
			return nil, fmt.Errorf("encode frame: %w", err)
		}
	}
	out := bytes.Clone(ee.buf.Bytes())
	if ee.buf.Cap() < 1<<20 {
		encoderPool.Put(ee)
	}
	return out, nil
}

// AppendEncode encodes v and appends tail verbatim (the server's re-stamping of
// a routed frame).
func AppendEncode(v any, tail []byte) ([]byte, error) {
	ee := encoderPool.Get().(*encoder)
	ee.buf.Reset()
	if err := ee.e.Encode(v); err != nil {
		encoderPool.Put(ee)
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	out := make([]byte, 0, ee.buf.Len()+len(tail))
	out = append(out, ee.buf.Bytes()...)
	out = append(out, tail...)
	encoderPool.Put(ee)
	return out, nil
}

// Raw is an already encoded msgpack value, written verbatim by Encode.
type Raw = msgpack.RawMessage

// MustRaw encodes v once so that it can be embedded in many frames (for
// example the server's per-connection user info).
func MustRaw(v any) Raw {
	b, err := Encode(v)
	if err != nil {
		panic(err)
	}
	return Raw(b)
}

// intern returns the protocol's frequent short strings without allocating
// (a switch on string(b) does not copy b).
func intern(b []byte) string {
	switch string(b) {
	case "type":
		return "type"
	case "method":
		return "method"
	case "from":
		return "from"
	case "to":
		return "to"
	case "session":
		return "session"
	case "parent":
		return "parent"
	case "ws":
		return "ws"
	case "user":
		return "user"
	case "args":
		return "args"
	case "with_kwargs":
		return "with_kwargs"
	case "promise":
		return "promise"
	case "t":
		return "t"
	case "*":
		return "*"
	case "_rtype":
		return "_rtype"
	case "_rtarget":
		return "_rtarget"
	case "_rmethod":
		return "_rmethod"
	case "_rpromise":
		return "_rpromise"
	case "_rserver":
		return "_rserver"
	case "_rname":
		return "_rname"
	case "_rdoc":
		return "_rdoc"
	case "_rvalue":
		return "_rvalue"
	case "_rtrace":
		return "_rtrace"
	case "data":
		return "data"
	case "id":
		return "id"
	case "config":
		return "config"
	case "name":
		return "name"
	}
	return string(b)
}
