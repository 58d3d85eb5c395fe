package convert

// Number is a decoded wire number as a float64: the integers the codec
// produces (int64, uint64), float64 and float32, and int from Go callers.
// ok is false for anything else, a numeric string included.
func Number(v any) (f float64, ok bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case int:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	}
	return 0, false
}
