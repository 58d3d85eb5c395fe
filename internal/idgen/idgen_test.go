package idgen

import (
	"crypto/rand"
	"encoding/binary"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

func TestNewAlphabetAndLength(t *testing.T) {
	for range 1000 {
		id := New()
		if len(id) != Length {
			t.Fatalf("New() = %q: length %d, want %d", id, len(id), Length)
		}
		for _, c := range id {
			if !strings.ContainsRune(Alphabet, c) {
				t.Fatalf("New() = %q: %q is not in the alphabet", id, c)
			}
		}
	}
}

func TestAlphabet(t *testing.T) {
	if len(Alphabet) != 57 {
		t.Fatalf("alphabet has %d characters", len(Alphabet))
	}
	seen := map[rune]bool{}
	for _, c := range Alphabet {
		if seen[c] {
			t.Fatalf("duplicate %q", c)
		}
		seen[c] = true
	}
	for _, c := range "01IOl" {
		if seen[c] {
			t.Fatalf("look-alike %q in alphabet", c)
		}
	}
}

func TestNewUnique(t *testing.T) {
	const n = 100_000
	seen := make(map[string]struct{}, n)
	for range n {
		id := New()
		if _, dup := seen[id]; dup {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = struct{}{}
	}
}

// bigEncode is the reference: shortuuid's int_to_string with padding 22.
func bigEncode(hi, lo uint64) string {
	n := new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
	n.Or(n, new(big.Int).SetUint64(lo))
	base := big.NewInt(57)
	out := make([]byte, Length)
	for i := Length - 1; i >= 0; i-- {
		var r big.Int
		n.DivMod(n, base, &r)
		out[i] = Alphabet[r.Int64()]
	}
	return string(out)
}

func TestEncodeMatchesBigInt(t *testing.T) {
	const max = ^uint64(0)
	cases := [][2]uint64{
		{0, 0}, {0, 1}, {0, 56}, {0, 57}, {0, max}, {1, 0}, {max, max},
		{max, 0}, {0x0123456789abcdef, 0xfedcba9876543210}, {1 << 63, 1},
	}
	var b [16]byte
	for range 1000 {
		_, _ = rand.Read(b[:])
		cases = append(cases, [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])})
	}
	for _, c := range cases {
		if got, want := encode(c[0], c[1]), bigEncode(c[0], c[1]); got != want {
			t.Fatalf("encode(%#x, %#x) = %q, want %q", c[0], c[1], got, want)
		}
	}
	if got := encode(0, 0); got != strings.Repeat("2", Length) {
		t.Fatalf("encode(0) = %q", got)
	}
}

var readableRE = regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]{5}$`)

func TestReadable(t *testing.T) {
	seen := map[string]int{}
	for range 2000 {
		id := Readable()
		if !readableRE.MatchString(id) {
			t.Fatalf("Readable() = %q, does not match %s", id, readableRE)
		}
		if id[strings.LastIndexByte(id, '-')+1] == '0' {
			t.Fatalf("Readable() = %q: number has a leading zero", id)
		}
		seen[id]++
	}
	if len(seen) < 1990 {
		t.Fatalf("only %d distinct readable ids out of 2000", len(seen))
	}
}

func TestWordLists(t *testing.T) {
	for name, list := range map[string][]string{"adjectives": adjectives[:], "nouns": nouns[:]} {
		seen := map[string]bool{}
		for _, w := range list {
			if !regexp.MustCompile(`^[a-z]+$`).MatchString(w) {
				t.Errorf("%s: bad word %q", name, w)
			}
			if seen[w] {
				t.Errorf("%s: duplicate %q", name, w)
			}
			seen[w] = true
		}
	}
}

var sink string

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = New()
	}
}

func BenchmarkNewParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var s string
		for pb.Next() {
			s = New()
		}
		_ = s
	})
}

func BenchmarkEncode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = encode(0x0123456789abcdef, 0xfedcba9876543210)
	}
}

func BenchmarkReadable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = Readable()
	}
}
