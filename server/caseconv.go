package server

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/hypha-go/hypha/rpc"
)

// get_service's case_conversion ("camel", "snake", "camel+snake",
// "snake+camel"), as upstream's server applies it (hypha-rpc's
// convert_case): every key of the service, and of every dict nested in it,
// is renamed; the values, functions included, stay as they are, so a call
// through a renamed function still reaches the provider's own method.

// convertCase returns v with its keys converted; v is not changed.
func convertCase(v any, kind string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // two keys that convert alike: the same one wins every time
	out := make(map[string]any, len(m))
	for _, k := range keys {
		switch kind {
		case "camel":
			out[toCamelCase(k)] = convertCase(m[k], kind)
		case "snake":
			out[toSnakeCase(k)] = convertCase(m[k], kind)
		default: // both
			out[toCamelCase(k)] = convertCase(m[k], "camel")
			out[toSnakeCase(k)] = convertCase(m[k], "snake")
		}
	}
	return out
}

// validCaseConversion checks get_service's case_conversion option.
func validCaseConversion(kind string) error {
	switch kind {
	case "", "camel", "snake", "camel+snake", "snake+camel":
		return nil
	}
	return fmt.Errorf("get_service: case_conversion %q is not camel, snake, camel+snake or snake+camel", kind)
}

// toCamelCase: a name without "_" gets a lower-case first letter
// (HelloWorld → helloWorld); otherwise the parts after each "_" are
// title-cased and joined to the first (hello_world → helloWorld).
func toCamelCase(s string) string {
	if s == "" {
		return s
	}
	if !strings.Contains(s, "_") {
		r := []rune(s)
		r[0] = unicode.ToLower(r[0])
		return string(r)
	}
	parts := strings.Split(s, "_")
	var b strings.Builder
	b.WriteString(parts[0])
	for _, p := range parts[1:] {
		b.WriteString(titleCase(p))
	}
	return b.String()
}

// titleCase is Python's str.title: a letter after a letter is lower case,
// any other letter upper case (hello2you → Hello2You).
func titleCase(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		if unicode.IsLetter(r) {
			if prevCased {
				b.WriteRune(unicode.ToLower(r))
			} else {
				b.WriteRune(unicode.ToUpper(r))
			}
			prevCased = true
			continue
		}
		prevCased = false
		b.WriteRune(r)
	}
	return b.String()
}

// toSnakeCase puts "_" before every upper-case letter, lower-cases it, and
// drops the leading underscores (HelloWorld → hello_world).
func toSnakeCase(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return strings.TrimLeft(b.String(), "_")
}

// caseConversionOf reads get_service's case_conversion: from its config
// argument, or given as a keyword argument of its own.
func caseConversionOf(c *rpc.Call) string {
	kind := ""
	if cfg, _ := c.Arg(1, "config").(map[string]any); cfg != nil {
		kind, _ = cfg["case_conversion"].(string)
	}
	if k, ok := c.Kwargs["case_conversion"].(string); ok {
		kind = k
	}
	return kind
}
