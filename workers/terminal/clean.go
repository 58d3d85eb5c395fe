package terminal

import (
	"strings"
	"unicode/utf8"
)

// cleanOutput turns terminal output into the text a person would read:
// escape sequences (CSI, OSC, DCS/APC/PM/SOS strings and two-byte ESC
// sequences) removed, CR LF made LF, a lone CR returning to the start of
// the line (what follows overwrites it, as on a screen), a backspace
// stepping back one character, other control characters (but tab)
// dropped. It is one pass over the input.
func cleanOutput(s string) string {
	var out strings.Builder
	out.Grow(len(s))
	var line []rune // the current line
	col := 0        // where the next character goes in line
	flush := func() {
		out.WriteString(string(line))
		line, col = line[:0], 0
	}
	put := func(r rune) {
		if col < len(line) {
			line[col] = r
		} else {
			line = append(line, r)
		}
		col++
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b:
			i = skipEscape(s, i)
			continue
		case c == '\n':
			flush()
			out.WriteByte('\n')
		case c == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				break // the LF ends the line
			}
			col = 0
		case c == '\b':
			if col > 0 {
				col--
			}
		case c == '\t':
			put('\t')
		case c < 0x20 || c == 0x7f:
			// other controls (bell, shift in/out, ...) show nothing
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				r = '\uFFFD'
			}
			if r >= 0x80 && r < 0xa0 {
				i += n // C1 controls
				continue
			}
			put(r)
			i += n
			continue
		}
		i++
	}
	flush()
	return out.String()
}

// skipEscape returns the index after the escape sequence starting at i (an
// ESC).
func skipEscape(s string, i int) int {
	i++ // ESC
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[': // CSI: parameters and intermediates, then a final byte 0x40-0x7e
		i++
		for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
			i++
		}
		return min(i+1, len(s))
	case ']', 'P', '_', '^', 'X': // OSC, DCS, APC, PM, SOS: up to BEL or ST
		i++
		for i < len(s) {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
			i++
		}
		return i
	case '(', ')', '*', '+', '-', '.', '/', '#', '%', ' ': // charset and similar: one more byte
		return min(i+2, len(s))
	default: // two-byte sequence (ESC 7, ESC =, ESC M, ...)
		return i + 1
	}
}

// stripANSI removes escape sequences only.
func stripANSI(s string) string {
	if strings.IndexByte(s, 0x1b) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i = skipEscape(s, i)
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// renderLine applies carriage returns and backspaces to one line (no LF).
func renderLine(s string) string {
	if !strings.ContainsAny(s, "\r\b\x07") {
		return s
	}
	return strings.TrimRight(cleanOutput(strings.TrimRight(s, "\r")), "\n")
}
