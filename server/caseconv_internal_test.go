package server

import (
	"testing"

	"github.com/hypha-go/hypha/rpc"
)

// TestCaseConversionNames: the names upstream's conversion gives (computed
// with hypha-rpc's own to_camel_case and to_snake_case), quirks included:
// a name without "_" only loses its capital first letter, parts are
// title-cased as Python's str.title does, leading underscores vanish in
// snake case.
func TestCaseConversionNames(t *testing.T) {
	for _, c := range []struct{ in, camel, snake string }{
		{"HelloWorld", "helloWorld", "hello_world"},
		{"hello_world", "helloWorld", "hello_world"},
		{"hello2you_x", "hello2youX", "hello2you_x"},
		{"Hello_World", "HelloWorld", "hello__world"},
		{"_rintf", "Rintf", "rintf"},
		{"ID", "iD", "i_d"},
		{"already", "already", "already"},
		{"a_b_c", "aBC", "a_b_c"},
		{"x__y", "xY", "x__y"},
		{"get_HTTP_response", "getHttpResponse", "get__h_t_t_p_response"},
		{"hello_wORLD", "helloWorld", "hello_w_o_r_l_d"},
		{"run_in_executor", "runInExecutor", "run_in_executor"},
		{"helloWorld", "helloWorld", "hello_world"},
		{"HTTPServer", "hTTPServer", "h_t_t_p_server"},
		{"snake_case_2d", "snakeCase2D", "snake_case_2d"},
		{"", "", ""},
	} {
		if got := toCamelCase(c.in); got != c.camel {
			t.Errorf("camel(%q) = %q, want %q", c.in, got, c.camel)
		}
		if got := toSnakeCase(c.in); got != c.snake {
			t.Errorf("snake(%q) = %q, want %q", c.in, got, c.snake)
		}
	}
}

// TestConvertCaseNested: nested dicts are converted, lists and functions
// are left as they are, "camel+snake" gives both names.
func TestConvertCaseNested(t *testing.T) {
	fn := &rpc.RemoteFunc{}
	in := map[string]any{"do_it": fn, "sub_ns": map[string]any{"get_x": fn}, "list_val": []any{map[string]any{"a_b": 1}},
		"config": map[string]any{"require_context": true}}
	out := convertCase(in, "camel").(map[string]any)
	if out["doIt"] != fn || out["subNs"].(map[string]any)["getX"] != fn ||
		out["listVal"].([]any)[0].(map[string]any)["a_b"] != 1 || out["config"].(map[string]any)["requireContext"] != true {
		t.Errorf("camel: %v", out)
	}
	if _, ok := in["doIt"]; ok {
		t.Error("the input was changed")
	}
	both := convertCase(map[string]any{"do_it": fn}, "camel+snake").(map[string]any)
	if both["doIt"] != fn || both["do_it"] != fn || len(both) != 2 {
		t.Errorf("camel+snake: %v", both)
	}
}
