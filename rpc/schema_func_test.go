package rpc

import (
	"context"
	"testing"
)

// TestSchemaReplacesParameters: rpc.Schema's parameters are what the
// service schema carries for the function.
func TestSchemaReplacesParameters(t *testing.T) {
	params := map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}, "required": []any{"q"}}
	h := HandlerFunc(func(ctx context.Context, c *Call) (any, error) { return c.Kwargs["q"], nil })
	lf, err := adaptFunc(Doc(Schema(h, params), "search"), "search")
	if err != nil {
		t.Fatal(err)
	}
	f := lf.schema["function"].(map[string]any)
	if f["description"] != "search" {
		t.Fatalf("description: %v", f["description"])
	}
	if got := f["parameters"].(map[string]any)["required"]; len(got.([]any)) != 1 {
		t.Fatalf("parameters: %v", f["parameters"])
	}
}
