package a2aproxy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/worker"
)

// compile as upstream: the manifest's agents over the source file's, the
// final manifest written as the "source" file, defaults for name,
// description and version, wait_for_service "default"; other types pass.
func TestCompile(t *testing.T) {
	w := New(Options{})
	ctx := context.Background()
	src := `{"a2aAgents": {"a": {"url": "http://old"}, "b": {"url": "http://b"}}}`
	res, err := w.Compile(ctx, worker.CompileRequest{
		Manifest: worker.Manifest{"type": Type, "a2aAgents": map[string]any{"a": map[string]any{"url": "http://new"}}, "extra": 1.0},
		Files:    []worker.File{{Path: "source", Name: "source", Content: src}, {Path: "README.md", Name: "README.md", Content: "hi"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	agents := m["a2aAgents"].(map[string]any)
	if agents["a"].(map[string]any)["url"] != "http://new" || agents["b"].(map[string]any)["url"] != "http://b" {
		t.Fatalf("agents = %v", agents)
	}
	if m["name"] != "A2A Agent" || m["version"] != "1.0.0" || m["wait_for_service"] != "default" || m["extra"] != 1.0 {
		t.Fatalf("manifest = %v", m)
	}
	if len(res.Files) != 2 || res.Files[0].Path != "README.md" || res.Files[1].Path != "source" {
		t.Fatalf("files = %v", res.Files)
	}
	var written map[string]any
	if err := json.Unmarshal([]byte(res.Files[1].Content.(string)), &written); err != nil {
		t.Fatal(err)
	}
	if _, ok := written["wait_for_service"]; ok || written["type"] != Type || written["a2aAgents"] == nil {
		t.Fatalf("source = %v", written)
	}

	other := worker.Manifest{"type": "python-eval"}
	res, err = w.Compile(ctx, worker.CompileRequest{Manifest: other})
	if err != nil || res.Manifest["type"] != "python-eval" {
		t.Fatalf("other type: %v %v", res.Manifest, err)
	}
}

func TestHostileCompileSource(t *testing.T) {
	w := New(Options{})
	for name, src := range map[string]string{
		"not json":  "{a2aAgents",
		"too large": `{"x": "` + strings.Repeat("a", MaxSourceBytes) + `"}`,
		"bad agent": `{"a2aAgents": {"a": {"url": "gopher://x"}}}`,
	} {
		_, err := w.Compile(context.Background(), worker.CompileRequest{Manifest: worker.Manifest{"type": Type},
			Files: []worker.File{{Path: "source", Name: "source", Content: src}}})
		if !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The hello-a2a example's manifest compiles.
func TestExampleManifest(t *testing.T) {
	b, err := os.ReadFile("../../examples/hello-a2a/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	res, err := New(Options{}).Compile(context.Background(), worker.CompileRequest{Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest["entry_point"] != "source" || len(res.Files) != 1 || res.Files[0].Path != "source" {
		t.Fatalf("compiled = %v, files %v", res.Manifest, res.Files)
	}
}
