package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// fits checks, before msgpack reads it, that the str, bin or ext value whose
// code c was just peeked claims no more bytes than the frame has left.
// msgpack trusts the claim: it allocates it outright (bin) or grows the
// decoder's buffer towards it 1 MiB at a time, keeping the grown buffer even
// when the read fails (str, ext, skipping), and decoders are pooled. Without
// this check a stream of 7-byte frames claiming 4 GiB strings costs the
// server gigabytes of memory and seconds of CPU each.
func (dd *decoder) fits(c byte) error {
	rest := dd.buf[len(dd.buf)-dd.r.Len():] // starts at the peeked code
	hdr, size := 1, 0
	switch {
	case msgpcode.IsFixedString(c):
		size = int(c & msgpcode.FixedStrMask)
	case c == msgpcode.Str8, c == msgpcode.Bin8:
		hdr = 2
	case c == msgpcode.Str16, c == msgpcode.Bin16:
		hdr = 3
	case c == msgpcode.Str32, c == msgpcode.Bin32:
		hdr = 5
	case c == msgpcode.Ext8:
		hdr = 3
	case c == msgpcode.Ext16:
		hdr = 4
	case c == msgpcode.Ext32:
		hdr = 6
	case c == msgpcode.FixExt1, c == msgpcode.FixExt2, c == msgpcode.FixExt4, c == msgpcode.FixExt8, c == msgpcode.FixExt16:
		hdr, size = 2, 1<<(c-msgpcode.FixExt1)
	default:
		return nil
	}
	if len(rest) < hdr {
		return fmt.Errorf("%w: truncated header", ErrMalformed)
	}
	switch c {
	case msgpcode.Str8, msgpcode.Bin8, msgpcode.Ext8:
		size = int(rest[1])
	case msgpcode.Str16, msgpcode.Bin16, msgpcode.Ext16:
		size = int(binary.BigEndian.Uint16(rest[1:3]))
	case msgpcode.Str32, msgpcode.Bin32, msgpcode.Ext32:
		size = int(binary.BigEndian.Uint32(rest[1:5]))
	}
	if size > len(rest)-hdr {
		return fmt.Errorf("%w: a value of %d bytes exceeds the frame", ErrMalformed, size)
	}
	return nil
}

// bin reads a bin value. msgpack's DecodeBytes allocates the length a
// header claims before reading: a 5-byte frame claiming a 4 GiB bin32 would
// make the server allocate 4 GiB. The claim is checked against what the
// frame holds first.
func (dd *decoder) bin() ([]byte, error) {
	n, err := dd.d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if n > dd.r.Len() {
		return nil, fmt.Errorf("bin of %d bytes exceeds the frame", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(&dd.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// skip skips one value, refusing nesting deeper than MaxDepth (msgpack's own
// Skip recurses without bound: a few MiB of nested one-element arrays would
// overflow the stack, a fatal error no recover catches) and lengths the
// frame cannot hold. It works on the frame's bytes directly: skipping is on
// the router's hot path (every main segment, every stamped user).
func (dd *decoder) skip(depth int) error {
	pos := len(dd.buf) - dd.r.Len()
	end, err := skipRaw(dd.buf, pos, depth)
	if err != nil {
		return err
	}
	_, err = dd.r.Seek(int64(end-pos), io.SeekCurrent)
	return err
}

// skipRaw returns the offset just past the msgpack value starting at pos.
func skipRaw(b []byte, pos, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, MaxDepth)
	}
	if pos >= len(b) {
		return 0, fmt.Errorf("%w: truncated value", ErrMalformed)
	}
	c := b[pos]
	// fixed-size headers: hdr bytes of header, then size bytes of payload,
	// or n nested values (n2: key-value pairs).
	hdr, size, n, pairs := 1, 0, -1, false
	lenAt := func(width int) (int, error) {
		if pos+1+width > len(b) {
			return 0, fmt.Errorf("%w: truncated header", ErrMalformed)
		}
		switch width {
		case 1:
			return int(b[pos+1]), nil
		case 2:
			return int(binary.BigEndian.Uint16(b[pos+1:])), nil
		default:
			return int(binary.BigEndian.Uint32(b[pos+1:])), nil
		}
	}
	var err error
	switch {
	case c <= 0x7f || c >= 0xe0, c == msgpcode.Nil, c == msgpcode.True, c == msgpcode.False:
	case msgpcode.IsFixedMap(c):
		n, pairs = int(c&msgpcode.FixedMapMask), true
	case msgpcode.IsFixedArray(c):
		n = int(c & msgpcode.FixedArrayMask)
	case msgpcode.IsFixedString(c):
		size = int(c & msgpcode.FixedStrMask)
	default:
		switch c {
		case msgpcode.Str8, msgpcode.Bin8:
			hdr = 2
			size, err = lenAt(1)
		case msgpcode.Str16, msgpcode.Bin16:
			hdr = 3
			size, err = lenAt(2)
		case msgpcode.Str32, msgpcode.Bin32:
			hdr = 5
			size, err = lenAt(4)
		case msgpcode.Ext8:
			hdr = 3
			size, err = lenAt(1)
		case msgpcode.Ext16:
			hdr = 4
			size, err = lenAt(2)
		case msgpcode.Ext32:
			hdr = 6
			size, err = lenAt(4)
		case msgpcode.Float, msgpcode.Uint32, msgpcode.Int32:
			size = 4
		case msgpcode.Double, msgpcode.Uint64, msgpcode.Int64:
			size = 8
		case msgpcode.Uint8, msgpcode.Int8:
			size = 1
		case msgpcode.Uint16, msgpcode.Int16:
			size = 2
		case msgpcode.FixExt1, msgpcode.FixExt2, msgpcode.FixExt4, msgpcode.FixExt8, msgpcode.FixExt16:
			hdr, size = 2, 1<<(c-msgpcode.FixExt1)
		case msgpcode.Array16:
			hdr = 3
			n, err = lenAt(2)
		case msgpcode.Array32:
			hdr = 5
			n, err = lenAt(4)
		case msgpcode.Map16:
			hdr, pairs = 3, true
			n, err = lenAt(2)
		case msgpcode.Map32:
			hdr, pairs = 5, true
			n, err = lenAt(4)
		default:
			return 0, fmt.Errorf("%w: unexpected code 0x%02x", ErrMalformed, c)
		}
	}
	if err != nil {
		return 0, err
	}
	pos += hdr
	if n < 0 {
		if size > len(b)-pos || pos > len(b) {
			return 0, fmt.Errorf("%w: a value of %d bytes exceeds the frame", ErrMalformed, size)
		}
		return pos + size, nil
	}
	if pairs {
		n *= 2
	}
	if n > len(b)-pos { // every nested value takes at least one byte
		return 0, fmt.Errorf("%w: %d nested values exceed the frame", ErrMalformed, n)
	}
	for range n {
		if pos, err = skipRaw(b, pos, depth+1); err != nil {
			return 0, err
		}
	}
	return pos, nil
}
