package wire

import (
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// scanMainDecoder is the msgpack-decoder ScanMain that the hand-written one
// replaced, kept as the reference of FuzzScanMainMatchesDecoder. It parses the main segment of frame. String values of to, type and
// session are extracted; from, ws and user are dropped (the server stamps
// them); every other entry is kept verbatim.
func scanMainDecoder(frame []byte) (*Main, error) {
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
		if key == "from" || key == "to" || key == "ws" || key == "user" {
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

// FuzzScanMainMatchesDecoder: the hand-written ScanMain accepts exactly the
// frames the msgpack-decoder version accepted, with the same fields and
// the same kept entries.
func FuzzScanMainMatchesDecoder(f *testing.F) {
	fuzzSeeds(f)
	seed, _ := Encode(map[string]any{"type": "method", "to": "b", "session": "s", "from": "x", "ws": "y", "user": map[string]any{"id": "u"}},
		map[string]any{"args": []any{1}})
	f.Add(seed)
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0xa2, 't', 'o', 0x01})            // non-string to
	f.Add([]byte{0x81, 0xd9, 0x02, 't', 'o', 0xa1, 'x'}) // str8 key
	f.Add([]byte{0x81, 0xa2, 't', 'o', 0xdb, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		got, err1 := ScanMain(frame)
		want, err2 := scanMainDecoder(frame)
		if err1 != nil && err2 == nil && len(frame) > 0 && msgpcode.IsExt(frame[0]) {
			// The decoder took an extension's payload for the map; no
			// client sends that, and DecodeMain refuses it too.
			if _, _, err := DecodeMain(frame); err == nil {
				t.Fatalf("DecodeMain accepts an extension as the main segment; ScanMain refuses it")
			}
			return
		}
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("ScanMain error %v, the decoder's %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		if got.To != want.To || got.Type != want.Type || got.Session != want.Session || got.end != want.end ||
			got.nkept != want.nkept || got.kept != want.kept {
			t.Fatalf("ScanMain %+v, the decoder's %+v", *got, *want)
		}
	})
}

// BenchmarkScanMain: scanning and restamping a typical routed frame.
func BenchmarkScanMain(b *testing.B) {
	frame, _ := Encode(map[string]any{"type": "method", "to": "ws-user-root/bench-serve:bench-echo", "method": "services.bench-echo.echo",
		"session": "abc123def456", "parent": "abc123def456", "with_kwargs": false, "from": "ws-user-root/caller", "ws": "ws-user-root", "user": nil},
		map[string]any{"args": []any{"0123456789abcdef"}, "promise": "*", "t": 15.0})
	for _, tc := range []struct {
		name string
		scan func([]byte) (*Main, error)
	}{{"hand", ScanMain}, {"decoder", scanMainDecoder}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := tc.scan(frame)
				if err != nil {
					b.Fatal(err)
				}
				_ = m.Restamp(frame, "ws-user-root/caller", "ws-user-root/bench-serve", "ws-user-root", nil)
				m.Release()
			}
		})
	}
}
