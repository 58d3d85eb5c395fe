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

// skip skips one value like msgpack's Decoder.Skip, but refuses nesting
// deeper than MaxDepth: the library's Skip recurses without bound, and a
// frame of a few MiB of nested one-element arrays would overflow the stack,
// a fatal error that no recover catches.
func (dd *decoder) skip(depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, MaxDepth)
	}
	d := dd.d
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := d.DecodeMapLen()
		if err != nil {
			return err
		}
		for range max(n, 0) {
			if err := dd.skip(depth + 1); err != nil {
				return err
			}
			if err := dd.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil {
			return err
		}
		for range max(n, 0) {
			if err := dd.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := dd.fits(c); err != nil {
		return err
	}
	return d.Skip() // scalars, strings, bin and ext do not nest
}
