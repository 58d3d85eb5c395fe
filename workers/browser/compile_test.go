package browser

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/worker"
)

func compile(t *testing.T, man worker.Manifest, files ...worker.File) (worker.CompileResult, error) {
	t.Helper()
	return New(Options{}).Compile(context.Background(), worker.CompileRequest{Manifest: man, Files: files})
}

func TestCompileWindow(t *testing.T) {
	res, err := compile(t, worker.Manifest{"type": TypeWindow, "name": "App", "script": "api.export({})", "requirements": []any{"https://x/y.js"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Manifest["script"]; ok || res.Manifest.EntryPoint() != DefaultEntryPoint {
		t.Fatalf("manifest: %v", res.Manifest)
	}
	page := res.Files[0].Content.(string)
	for _, want := range []string{"api.export({})", "/assets/hypha-rpc-websocket.mjs", `"requirements":["https://x/y.js"]`, "<title>App</title>", "connectToServer(cfg)"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	// A complete HTML page is kept as it is.
	raw := "<!DOCTYPE html><html><body>mine</body></html>"
	res, err = compile(t, worker.Manifest{"type": TypeWindow, "entry_point": "app.html"}, worker.File{Path: "app.html", Content: raw})
	if err != nil || len(res.Files) != 1 || res.Files[0].Content != raw || res.Files[0].Path != DefaultEntryPoint {
		t.Fatalf("raw HTML: %+v, %v", res.Files, err)
	}
	// A web-app keeps its files and needs an http(s) URL.
	if _, err := compile(t, worker.Manifest{"type": TypeWebApp, "entry_point": "https://example.org/app"}); err != nil {
		t.Fatal(err)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		man   worker.Manifest
		files []worker.File
		want  string
	}{
		{"no script", worker.Manifest{"type": TypeWindow}, nil, "has no script"},
		{"binary source", worker.Manifest{"type": TypeWindow, "entry_point": "a.js"}, []worker.File{{Path: "a.js", Content: "eA==", Format: "base64"}}, "must be a text file"},
		{"bad requirements", worker.Manifest{"type": TypeWindow, "script": "1", "requirements": "x.js"}, nil, "requirements must be a list"},
		{"web-app without URL", worker.Manifest{"type": TypeWebApp}, nil, "http(s) URL"},
		{"web-app javascript URL", worker.Manifest{"type": TypeWebApp, "entry_point": "javascript:alert(1)"}, nil, "http(s) URL"},
		{"web-app file URL", worker.Manifest{"type": TypeWebApp, "entry_point": "file:///etc/passwd"}, nil, "http(s) URL"},
		{"unknown type", worker.Manifest{"type": "web-pythonn"}, nil, "not supported"},
	} {
		_, err := compile(t, tc.man, tc.files...)
		if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig with %q", tc.name, err, tc.want)
		}
	}
}

// TestHostileManifestValues: no manifest value can end the page's script
// element or inject markup; only the app's own script is inserted as is.
func TestHostileManifestValues(t *testing.T) {
	evil := `</script><script>alert("pwned")</script><!--`
	res, err := compile(t, worker.Manifest{"type": TypeWindow, "name": evil, "description": evil, "requirements": []any{evil}, "script": "api.export({})"})
	if err != nil {
		t.Fatal(err)
	}
	page := res.Files[0].Content.(string)
	if strings.Contains(page, "pwned\")</script>") || strings.Count(page, "</script>") != 1 {
		t.Fatalf("a manifest value breaks out of the page's script:\n%s", page)
	}
}

// TestHostileStartConfig: start refuses entry points and URLs that leave the
// app's files or are not http(s), before any browser is involved.
func TestHostileStartConfig(t *testing.T) {
	w := New(Options{ChromiumPath: "/nonexistent"})
	defer w.Shutdown(context.Background())
	for _, cfg := range []worker.Config{
		{EntryPoint: "../../etc/passwd", AppFilesBaseURL: "http://127.0.0.1:1/f", Manifest: worker.Manifest{"type": TypeWindow}},
		{EntryPoint: "/etc/passwd", AppFilesBaseURL: "http://127.0.0.1:1/f", Manifest: worker.Manifest{"type": TypeWindow}},
		{EntryPoint: "https://evil.example/x", AppFilesBaseURL: "http://127.0.0.1:1/f", Manifest: worker.Manifest{"type": TypeWindow}},
		{AppFilesBaseURL: "file:///etc", Manifest: worker.Manifest{"type": TypeWindow}},
		{AppFilesBaseURL: "javascript:alert(1)", Manifest: worker.Manifest{"type": TypeWindow}},
		{Manifest: worker.Manifest{"type": TypeWebApp, "entry_point": "chrome://settings"}},
		{Manifest: worker.Manifest{"type": TypeWebApp, "entry_point": "file:///etc/passwd"}},
	} {
		cfg.ID, cfg.Workspace, cfg.ClientID = "ws/h", "ws", "h"
		if _, err := w.Start(context.Background(), cfg); !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("%+v: err = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestTruncate(t *testing.T) {
	s := strings.Repeat("é", 10) // 20 bytes
	got := truncate(s, 5)
	if !strings.HasPrefix(got, "éé ") || !strings.Contains(got, "16 bytes truncated") {
		t.Fatalf("truncate = %q", got)
	}
}

func TestHyphaSourceErrors(t *testing.T) {
	for src, want := range map[string]string{
		"<config lang=\"yaml\">name: [x</config><script>1</script>":                                                      "not valid YAML",
		"<config lang=\"yaml\">- a\n- b</config><script>1</script>":                                                      "not a mapping",
		"<config lang=\"toml\">name = 1</config><script>1</script>":                                                      `lang="toml"`,
		`<config lang="json">{"type": "web-python"}</config><script>1</script>`:                                          "needs a Python script",
		`<config lang="json">{"type": "bogus"}</config><script>1</script>`:                                               "not supported by the browser worker",
		`<config lang="json">{"type": "web-python", "requirements": ["numpy"]}</config><script lang="python">1</script>`: "not available offline",
		`<script lang="ruby">1</script>`:                                                                                 `lang="ruby"`,
		`<config lang="json">{not json</config><script>1</script>`:                                                       "not a JSON object",
		`<config lang="json">{}</config>`:                                                                                "no <script>",
		`<script lang="python">print(1)</script>`:                                                                        `lang="python"`,
	} {
		_, err := compile(t, worker.Manifest{"type": TypeHypha, "entry_point": "s.html"}, worker.File{Path: "s.html", Content: src})
		if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}

// TestHyphaSourceSplitByUpstream: upstream's controller hands compile the
// script of a hypha source alone (main.js), its config already merged into
// the manifest; the page is the window page around that script.
// TestHyphaSourceYAMLConfig: a YAML config gives the same manifest fields
// as the JSON one.
func TestHyphaSourceYAMLConfig(t *testing.T) {
	src := "<config lang=\"yaml\">\nname: YAML App\ntype: web-worker\nversion: 0.1.2\nrequirements:\n  - https://x/y.js\nlabels: [a, b]\n</config>\n<script>api.export({ping: () => 'pong'})</script>"
	res, err := compile(t, worker.Manifest{"type": TypeHypha, "entry_point": "s.imjoy.html"}, worker.File{Path: "s.imjoy.html", Content: src})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if m["name"] != "YAML App" || m["type"] != TypeWebWorker || m["version"] != "0.1.2" {
		t.Fatalf("manifest %v", m)
	}
	if r, _ := m["requirements"].([]any); len(r) != 1 || r[0] != "https://x/y.js" {
		t.Fatalf("requirements %#v", m["requirements"])
	}
}

// TestHostileYAMLConfig: a YAML config that expands aliases without bound
// (a "billion laughs") is refused, not expanded.
func TestHostileYAMLConfig(t *testing.T) {
	var b strings.Builder
	b.WriteString("<config lang=\"yaml\">\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		fmt.Fprintf(&b, "%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	b.WriteString("</config><script>1</script>")
	_, err := compile(t, worker.Manifest{"type": TypeHypha, "entry_point": "s.html"}, worker.File{Path: "s.html", Content: b.String()})
	if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), "YAML") {
		t.Fatalf("err = %v, want a refused YAML config", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}

func TestHyphaSourceSplitByUpstream(t *testing.T) {
	res, err := compile(t, worker.Manifest{"type": TypeHypha, "name": "split", "entry_point": "main.js"},
		worker.File{Path: "main.js", Content: `await api.export({ping: () => "pong"});`})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest["type"] != TypeWindow || res.Manifest["entry_point"] != DefaultEntryPoint {
		t.Fatalf("manifest %v", res.Manifest)
	}
	page := res.Files[len(res.Files)-1].Content.(string)
	if !strings.Contains(page, `await api.export({ping: () => "pong"});`) || !strings.Contains(page, "<title>split</title>") {
		t.Fatalf("page:\n%s", page)
	}
}
