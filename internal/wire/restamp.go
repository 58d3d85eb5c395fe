package wire

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxKept bounds how many main-segment entries ScanMain remembers; a main
// segment is a handful of routing fields, so more than this is refused.
const maxKept = 32

// Main holds the routing fields of a frame's main segment and where its
// other entries lie, so that the server can re-stamp a frame without
// decoding it into a map (the router's hot path).
type Main struct {
	To, Type, Session string
	end               int // offset where the main segment ends
	kept              [maxKept][2]int
	nkept             int
}

// ScanMain parses the main segment of frame. String values of to, type and
// session are extracted; from, ws and user are dropped (the server stamps
// them); every other entry is kept verbatim.
//
// It walks the bytes itself (skipRaw for the values it keeps or drops)
// rather than through a msgpack decoder: the router calls it for every
// frame, and a key is then compared in place instead of being decoded into
// a new string.
func ScanMain(frame []byte) (*Main, error) {
	n, pos, ok := mapHeader(frame)
	if !ok {
		return nil, fmt.Errorf("%w: main segment is not a map", ErrMalformed)
	}
	if n > maxKept+4 {
		return nil, fmt.Errorf("%w: main segment has %d entries", ErrMalformed, n)
	}
	m := mainPool.Get().(*Main)
	*m = Main{}
	for range n {
		start := pos
		key, next, err := rawString(frame, pos)
		if err != nil {
			m.Release()
			return nil, fmt.Errorf("%w: main segment key is not a string", ErrMalformed)
		}
		pos = next
		var dst *string
		trustedKey := false
		switch string(key) {
		case "to":
			dst, trustedKey = &m.To, true
		case "type":
			dst = &m.Type
		case "session":
			dst = &m.Session
		case "from", "ws", "user":
			trustedKey = true
		}
		if dst != nil && pos < len(frame) && msgpcode.IsString(frame[pos]) {
			v, next, err := rawString(frame, pos)
			if err != nil {
				m.Release()
				return nil, err
			}
			*dst, pos = string(v), next
		} else {
			if pos, err = skipRaw(frame, pos, 1); err != nil {
				m.Release()
				return nil, err
			}
		}
		if trustedKey {
			continue
		}
		if m.nkept == maxKept {
			m.Release()
			return nil, fmt.Errorf("%w: main segment has too many entries", ErrMalformed)
		}
		m.kept[m.nkept] = [2]int{start, pos}
		m.nkept++
	}
	m.end = pos
	return m, nil
}

// mapHeader reads the header of a msgpack map at the start of b: its
// number of entries and where the first one starts.
func mapHeader(b []byte) (n, pos int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch c := b[0]; {
	case msgpcode.IsFixedMap(c):
		return int(c & msgpcode.FixedMapMask), 1, true
	case c == msgpcode.Map16 && len(b) >= 3:
		return int(binary.BigEndian.Uint16(b[1:])), 3, true
	case c == msgpcode.Map32 && len(b) >= 5:
		return int(binary.BigEndian.Uint32(b[1:])), 5, true
	}
	return 0, 0, false
}

// rawString returns the bytes of the msgpack string at b[pos:] (without
// copying them) and the offset just past it.
func rawString(b []byte, pos int) (s []byte, next int, err error) {
	if pos >= len(b) {
		return nil, 0, fmt.Errorf("%w: truncated value", ErrMalformed)
	}
	c := b[pos]
	hdr, size := 1, 0
	switch {
	case msgpcode.IsFixedString(c):
		size = int(c & msgpcode.FixedStrMask)
	case c == msgpcode.Str8 && pos+2 <= len(b):
		hdr, size = 2, int(b[pos+1])
	case c == msgpcode.Str16 && pos+3 <= len(b):
		hdr, size = 3, int(binary.BigEndian.Uint16(b[pos+1:]))
	case c == msgpcode.Str32 && pos+5 <= len(b):
		hdr, size = 5, int(binary.BigEndian.Uint32(b[pos+1:]))
	case msgpcode.IsString(c):
		return nil, 0, fmt.Errorf("%w: truncated header", ErrMalformed)
	default:
		return nil, 0, fmt.Errorf("%w: not a string", ErrMalformed)
	}
	start := pos + hdr
	if size > len(b)-start {
		return nil, 0, fmt.Errorf("%w: string of %d bytes past the end of the frame", ErrMalformed, size)
	}
	return b[start : start+size], start + size, nil
}

var mainPool = sync.Pool{New: func() any { return new(Main) }}

// Release returns m for reuse by ScanMain; m must not be used afterwards.
// (The router scans every frame; reusing the scan state saves an
// allocation of half a kilobyte per frame.)
func (m *Main) Release() { mainPool.Put(m) }

// Restamp returns a new frame: the scanned main segment with to replaced
// and from, ws and user set, followed by the original tail bytes.
func (m *Main) Restamp(frame []byte, from, to, ws string, user Raw) []byte {
	size := 3 + len(frame) + len(from) + len(to) + len(ws) + len(user) + 40
	out := make([]byte, 0, size)
	out = appendMapHeader(out, m.nkept+4)
	for _, sp := range m.kept[:m.nkept] {
		out = append(out, frame[sp[0]:sp[1]]...)
	}
	out = appendString(out, "from")
	out = appendString(out, from)
	out = appendString(out, "to")
	out = appendString(out, to)
	out = appendString(out, "ws")
	out = appendString(out, ws)
	out = appendString(out, "user")
	if len(user) == 0 {
		out = append(out, msgpcode.Nil)
	} else {
		out = append(out, user...)
	}
	return append(out, frame[m.end:]...)
}

func appendMapHeader(b []byte, n int) []byte {
	if n < 16 {
		return append(b, msgpcode.FixedMapLow|byte(n))
	}
	return binary.BigEndian.AppendUint16(append(b, msgpcode.Map16), uint16(n))
}

func appendString(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, msgpcode.FixedStrLow|byte(n))
	case n < 256:
		b = append(b, msgpcode.Str8, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, msgpcode.Str16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, msgpcode.Str32), uint32(n))
	}
	return append(b, s...)
}
