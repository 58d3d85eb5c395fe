// Package idgen generates random identifiers: compact base57 ids compatible
// in shape with Python's shortuuid (used for session, message and callback
// ids on the RPC hot path) and human-readable ids such as "brave-river-42817".
//
// All randomness comes from crypto/rand.
package idgen

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Alphabet is the base57 alphabet of Python's shortuuid: digits and letters
// without the look-alikes 0, 1, I, O and l.
const Alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// Length is the length of the ids returned by New.
const Length = 22

// pow10 is 57^10, the largest power of 57 below 2^64 that leaves a
// remainder we can split into 10 digits with 64-bit arithmetic.
const pow10 = 57 * 57 * 57 * 57 * 57 * 57 * 57 * 57 * 57 * 57

// New returns a random 22-character id over Alphabet, the same shape as
// Python's shortuuid.uuid(): 128 random bits written in base57, most
// significant digit first. As in shortuuid the first character is drawn
// from a shorter range (57^22 > 2^128), so it is never one of the last few
// letters; the other 21 carry full entropy.
//
// It performs exactly one 16-byte crypto/rand read and no big.Int arithmetic.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (crashes instead)
	return encode(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]))
}

// encode writes the 128-bit number hi<<64|lo in base57, 22 digits.
func encode(hi, lo uint64) string {
	var out [Length]byte
	// Two 128-by-64 divisions by 57^10 peel off two 10-digit groups; the
	// final quotient is below 2^128/57^20 < 57^2 and gives the top 2 digits.
	for g := 0; g < 2; g++ {
		var r uint64
		hi, r = bits.Div64(0, hi, pow10)
		lo, r = bits.Div64(r, lo, pow10)
		end := Length - 10*g
		for i := end - 1; i >= end-10; i-- {
			out[i] = Alphabet[r%57]
			r /= 57
		}
	}
	// hi is now 0 and lo < 57^2.
	out[1] = Alphabet[lo%57]
	out[0] = Alphabet[lo/57]
	return string(out[:])
}

// Readable returns a random lowercase human-readable id made of an
// adjective, a noun and five digits joined by '-', e.g. "brave-river-42817".
// It has about 29 bits of entropy: use it for display names and defaults,
// never for secrets or where collisions would be harmful.
func Readable() string {
	return ReadableDigits(5)
}

// ReadableDigits is Readable with n digits (1 to 12) after the words; the
// server uses 8 for user ids, where more entropy matters.
func ReadableDigits(n int) string {
	n = min(max(n, 1), 12)
	var b [16]byte
	_, _ = rand.Read(b[:])
	x := binary.LittleEndian.Uint64(b[:8])
	// The modulo bias over 64 random bits is below 2^-40; negligible here.
	adj := adjectives[x%uint64(len(adjectives))]
	x /= uint64(len(adjectives))
	noun := nouns[x%uint64(len(nouns))]
	lo := uint64(1)
	for range n - 1 {
		lo *= 10
	}
	v := lo + binary.LittleEndian.Uint64(b[8:])%(lo*9) // n digits, no leading zero
	buf := make([]byte, 0, len(adj)+len(noun)+2+n)
	buf = append(buf, adj...)
	buf = append(buf, '-')
	buf = append(buf, noun...)
	buf = append(buf, '-')
	return fmt.Sprintf("%s%d", buf, v)
}
