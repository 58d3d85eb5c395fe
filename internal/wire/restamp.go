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

var trusted = map[string]bool{"from": true, "to": true, "ws": true, "user": true}

// ScanMain parses the main segment of frame. String values of to, type and
// session are extracted; from, ws and user are dropped (the server stamps
// them); every other entry is kept verbatim.
func ScanMain(frame []byte) (*Main, error) {
	dd := getDecoder(frame)
	defer putDecoder(dd)
	d := dd.d
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: main segment is not a map", ErrMalformed)
	}
	if n > maxKept+4 {
		return nil, fmt.Errorf("%w: main segment has %d entries", ErrMalformed, n)
	}
	m := mainPool.Get().(*Main)
	*m = Main{}
	pos := func() int { return len(frame) - dd.r.Len() }
	for range n {
		start := pos()
		c, err := d.PeekCode()
		if err != nil || !msgpcode.IsString(c) {
			return nil, fmt.Errorf("%w: main segment key is not a string", ErrMalformed)
		}
		if err := dd.fits(c); err != nil {
			return nil, err
		}
		key, err := d.DecodeString()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		var dst *string
		switch key {
		case "to":
			dst = &m.To
		case "type":
			dst = &m.Type
		case "session":
			dst = &m.Session
		}
		if dst != nil {
			if c, err := d.PeekCode(); err == nil && msgpcode.IsString(c) {
				if err := dd.fits(c); err != nil {
					return nil, err
				}
				if *dst, err = d.DecodeString(); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
				}
			} else if err := dd.skip(1); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		} else if err := dd.skip(1); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if trusted[key] {
			continue
		}
		if m.nkept == maxKept {
			return nil, fmt.Errorf("%w: main segment has too many entries", ErrMalformed)
		}
		m.kept[m.nkept] = [2]int{start, pos()}
		m.nkept++
	}
	m.end = pos()
	return m, nil
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
