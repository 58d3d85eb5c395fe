package worker

import (
	"fmt"
	"math"
)

// The helpers below read decoded wire values (see docs/architecture.md: ints
// arrive as int64, uint64 only above MaxInt64, floats as float64, maps as
// map[string]any). They also accept Go's plain int so that Go callers (tests,
// the CLI) can build the same maps by hand. A nil value means "absent" for
// every kind, because Python sends None for unset optional fields.

func wireString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	}
	return "", false
}

func wireBool(v any) (bool, bool) {
	switch x := v.(type) {
	case nil:
		return false, true
	case bool:
		return x, true
	}
	return false, false
}

// wireInt accepts integral floats too: JavaScript callers have only one
// number type and may send 10 as 10.0.
func wireInt(v any) (int64, bool) {
	switch x := v.(type) {
	case nil:
		return 0, true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case float64:
		if x != math.Trunc(x) || math.IsInf(x, 0) || x > math.MaxInt64 || x < math.MinInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

func wireFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case nil:
		return 0, true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		return x, true
	case float32:
		return wireFloat(float64(x))
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

func wireMap(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case map[string]any:
		return x, true
	}
	return nil, false
}

func wireList(v any) ([]any, bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	case []map[string]any:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = m
		}
		return out, true
	}
	return nil, false
}

// badField builds the ErrInvalidConfig error for one field.
func badField(field, want string, got any) error {
	return fmt.Errorf("%w: %s: want %s, got %T", ErrInvalidConfig, field, want, got)
}

// stringsToList converts to the wire list type so that maps built here
// compare equal to decoded ones.
func stringsToList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// nilIfEmpty renders an optional string the way Python's None would arrive.
func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
