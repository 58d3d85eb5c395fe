package wire

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// canon encodes v with sorted map keys, so that equal values (NaNs
// included) give equal bytes. (go-cmp is exponential on deeply nested
// slices, which the fuzzer produces.)
func canon(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("canonical encoding: %v", err)
	}
	return buf.Bytes()
}

func sameValue(t *testing.T, what string, a, b any) {
	t.Helper()
	if ca, cb := canon(t, a), canon(t, b); !bytes.Equal(ca, cb) {
		t.Fatalf("%s changed: %x -> %x", what, ca, cb)
	}
}

func fuzzSeeds(f *testing.F) {
	add := func(vs ...any) {
		b, err := Encode(vs...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	add(map[string]any{"type": "method", "to": "ws/b", "method": "services.s.f", "session": "s1"},
		map[string]any{"args": []any{int64(1), "x", []byte{0, 1}, nil, true, 2.5}, "promise": "*", "t": 15.0})
	add(map[string]any{"type": "method", "to": "*/manager-x", "method": "s1.heartbeat", "parent": "s1"})
	add(map[string]any{"type": "client_disconnected", "to": "*", "data": map[string]any{"id": "a", "workspace": "w"}})
	add(map[string]any{"n": []any{map[string]any{"deep": []any{[]any{[]any{}}}}}, "u": uint64(math.MaxUint64), "i": int64(math.MinInt64)},
		map[string]any{"f": math.Inf(-1), "ts": time.Unix(1700000000, 5).UTC()})
	add(map[string]any{}, map[string]any{})
	f.Add([]byte{})
	f.Add([]byte{0x80, 0xc1})
	f.Add([]byte{0x81, 0xc0, 0xc0})                       // nil key
	f.Add([]byte{0x81, 0x01, 0x02})                       // int key
	f.Add([]byte{0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02}) // duplicate key
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa1, 'x', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}) // NaN
	f.Add([]byte{0x81, 0xa1, 'x', 0xc7, 0x03, 0x05, 1, 2, 3})          // unknown ext
	f.Add(append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 100)...))
	f.Add([]byte{0x80, 0x80, 0x80}) // trailing bytes after extra
	f.Add([]byte{0x80, 0x93, 1, 2, 3})
}

// FuzzDecodeFrame: DecodeFrame, DecodeMain and ScanMain never panic on any
// input; when DecodeMain succeeds, re-encoding the main segment and
// appending the untouched tail (what the router does) gives a frame whose
// main segment and tail decode back to the same values.
func FuzzDecodeFrame(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		t0 := time.Now()
		defer func() {
			// Input of at most a few KiB that takes seconds is an attack
			// vector (it found the unchecked length claims).
			if d := time.Since(t0); d > 5*time.Second {
				t.Fatalf("slow input (%s): %x", d, frame[:min(len(frame), 200)])
			}
		}()
		main1, extra1, errFrame := DecodeFrame(frame)
		_, _, _, _ = DecodeFrameRawUser(frame)
		_, _ = ScanMain(frame)
		_, _ = Decode(frame)
		main, tail, err := DecodeMain(frame)
		if err != nil {
			if errFrame == nil {
				t.Fatalf("DecodeFrame accepted what DecodeMain refused: %v", err)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.HasSuffix(frame, tail) {
			t.Fatalf("tail is not the end of the frame")
		}
		re, err := AppendEncode(main, tail)
		if err != nil {
			t.Fatalf("re-encode main: %v", err)
		}
		main2, tail2, err := DecodeMain(re)
		if err != nil {
			t.Fatalf("re-encoded frame: %v", err)
		}
		sameValue(t, "main (through re-encoding)", main, main2)
		if !bytes.Equal(tail, tail2) {
			t.Fatalf("tail changed: %x -> %x", tail, tail2)
		}
		if errFrame == nil {
			m3, e3, err := DecodeFrame(re)
			if err != nil {
				t.Fatalf("DecodeFrame of the re-encoded frame: %v", err)
			}
			sameValue(t, "main (DecodeFrame)", main1, m3)
			sameValue(t, "extra (DecodeFrame)", extra1, e3)
		}
		// The router's fast path: restamping keeps the tail and sets the stamps.
		if m, err := ScanMain(frame); err == nil {
			out := m.Restamp(frame, "w/a", "w/b", "w", nil)
			got, tail3, err := DecodeMain(out)
			if err != nil {
				t.Fatalf("restamped frame: %v", err)
			}
			if got["from"] != "w/a" || got["to"] != "w/b" || got["ws"] != "w" || !bytes.Equal(tail3, tail) {
				t.Fatalf("restamp lost the stamps or the tail: %v", got)
			}
		}
	})
}

// TestSkipDepth: nesting is bounded for every decoding entry point,
// including skipping (ScanMain) of values it does not keep.
func TestSkipDepth(t *testing.T) {
	deep := append([]byte{0x82, 0xa2, 't', 'o', 0xa1, 'x', 0xa1, 'y'}, bytes.Repeat([]byte{0x81, 0xa0}, 1<<20)...)
	deep = append(deep, 0xc0)
	if _, err := ScanMain(deep); !errors.Is(err, ErrMalformed) {
		t.Errorf("ScanMain: %v", err)
	}
	if _, _, err := DecodeMain(deep); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeMain: %v", err)
	}
	ok := append([]byte{0x82, 0xa2, 't', 'o', 0xa1, 'x', 0xa1, 'y'}, bytes.Repeat([]byte{0x91}, MaxDepth-2)...)
	ok = append(ok, 0xc0)
	if m, err := ScanMain(ok); err != nil || m.To != "x" {
		t.Errorf("ScanMain at the depth limit: %v", err)
	}
}

// TestHostileLengthClaims: str, bin and ext headers that claim more bytes
// than the frame holds are refused without allocating the claim, at every
// entry point. (msgpack grows a pooled buffer towards the claim and keeps
// it: before the check, 60 frames of 7 bytes cost 7 GB and 50 s.)
func TestHostileLengthClaims(t *testing.T) {
	claim := []byte{0xff, 0xff, 0xff, 0xf0}
	var values [][]byte
	for _, code := range []byte{0xdb, 0xc6, 0xc9} { // str32, bin32, ext32
		v := append([]byte{code}, claim...)
		if code == 0xc9 {
			v = append(v, 0x05) // ext type
		}
		values = append(values, append(v, 'x'))
	}
	values = append(values, []byte{0xda, 0xff, 0xff, 'x'}, []byte{0xd9, 0xff, 'x'}, []byte{0xc5, 0xff, 0xff, 'x'})
	var frames [][]byte
	for _, v := range values {
		frames = append(frames,
			append([]byte{0x81, 0xa2, 't', 'o'}, v...),                 // value in main
			append([]byte{0x81}, v...),                                 // key in main
			append([]byte{0x82, 0xa1, 'k', 0x91}, v...),                // skipped value (ScanMain)
			append([]byte{0x81, 0xa4, 'u', 's', 'e', 'r'}, v...),       // the raw user entry
			append([]byte{0x80, 0x81, 0xa4, 'a', 'r', 'g', 's'}, v...), // in the extra segment
		)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 20 {
		for _, f := range frames {
			if _, _, err := DecodeFrame(f); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeFrame(%x): %v", f, err)
			}
			if _, _, _, err := DecodeFrameRawUser(f); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeFrameRawUser(%x): %v", f, err)
			}
			_, _ = ScanMain(f)
			_, _, _ = DecodeMain(f)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Errorf("decoding %d hostile frames allocated %d MB", 20*len(frames), d>>20)
	}
}
