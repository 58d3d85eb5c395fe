package main

import (
	"bytes"
	"errors"
	"testing"
)

// TestPrintExecuteResult: the kernel shape prints streams, results and the
// traceback (exit 1 on an exception); any other value (a browser page's)
// prints as itself, JSON for objects.
func TestPrintExecuteResult(t *testing.T) {
	for _, tc := range []struct {
		name          string
		v             any
		out, errw     string
		wantErrRaised bool
	}{
		{"stream and result", map[string]any{"status": "ok", "outputs": []any{
			map[string]any{"type": "stream", "name": "stdout", "text": "hi\n"},
			map[string]any{"type": "execute_result", "data": map[string]any{"text/plain": "2"}},
		}}, "hi\n2\n", "", false},
		{"exception", map[string]any{"status": "error", "outputs": []any{},
			"error": map[string]any{"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": []any{"tb line"}}},
			"", "tb line\n", true},
		{"browser object", map[string]any{"title": "hello", "n": int64(3)}, `{"n":3,"title":"hello"}` + "\n", "", false},
		{"browser object with a status", map[string]any{"status": "ok", "items": []any{int64(1)}}, `{"items":[1],"status":"ok"}` + "\n", "", false},
		{"browser object with outputs not a list", map[string]any{"status": "done", "outputs": "3 files"}, `{"outputs":"3 files","status":"done"}` + "\n", "", false},
		{"browser object with outputs only", map[string]any{"outputs": []any{}}, `{"outputs":[]}` + "\n", "", false},
		{"browser null", nil, "null\n", "", false},
		{"browser list", []any{"a", int64(2)}, `["a",2]` + "\n", "", false},
		{"browser string", "hello", "hello\n", "", false},
		{"browser number", int64(42), "42\n", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			err := printExecuteResult(&out, &errw, tc.v)
			if got := errors.Is(err, errExecuteFailed); got != tc.wantErrRaised || (err != nil && !got) {
				t.Fatalf("err = %v", err)
			}
			if out.String() != tc.out || errw.String() != tc.errw {
				t.Fatalf("out %q err %q, want %q %q", out.String(), errw.String(), tc.out, tc.errw)
			}
		})
	}
}
