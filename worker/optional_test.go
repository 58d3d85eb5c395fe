package worker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCompileRequestFromArgs(t *testing.T) {
	cb := &remoteFunc{"cb"}
	req, err := CompileRequestFromArgs(
		map[string]any{"_rtype": "pydantic-model", "type": "conda-jupyter-kernel", "dependencies": []any{"numpy"}},
		[]any{
			map[string]any{"name": "main.py", "content": "print(1)", "format": "text"},
			map[string]any{"path": "data.json", "content": map[string]any{"a": int64(1)}, "format": "json", "size": int64(7)},
		},
		map[string]any{
			"server_url": "http://127.0.0.1:9527", "public_url": "https://hypha.example", "workspace": "ws",
			"user": map[string]any{"id": "u1"}, "progress_callback": cb, "other": true,
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := CompileRequest{
		Manifest: Manifest{"type": "conda-jupyter-kernel", "dependencies": []any{"numpy"}},
		Files: []File{
			{Path: "main.py", Name: "main.py", Content: "print(1)", Format: "text"},
			{Path: "data.json", Name: "data.json", Content: map[string]any{"a": int64(1)}, Format: "json", Extra: map[string]any{"size": int64(7)}},
		},
		Config: CompileConfig{
			ServerURL: "http://127.0.0.1:9527", PublicURL: "https://hypha.example", Workspace: "ws",
			User: map[string]any{"id": "u1"}, ProgressCallback: cb, Extra: map[string]any{"other": true},
		},
	}
	if d := cmp.Diff(want, req, cmp.AllowUnexported(remoteFunc{}), cmp.Comparer(func(a, b ProgressFunc) bool { return (a == nil) == (b == nil) })); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}

	res := CompileResult{Manifest: req.Manifest, Files: req.Files[:1]}
	wantList := []any{
		map[string]any{"type": "conda-jupyter-kernel", "dependencies": []any{"numpy"}},
		[]any{map[string]any{"path": "main.py", "name": "main.py", "content": "print(1)", "format": "text"}},
	}
	if d := cmp.Diff(wantList, res.ToList()); d != "" {
		t.Errorf("ToList (-want +got):\n%s", d)
	}

	for _, tt := range []struct {
		name                    string
		manifest, files, config any
		wantErr                 string
	}{
		{"nil config and files", map[string]any{}, nil, nil, ""},
		{"files not a list", map[string]any{}, "x", nil, "files: want list"},
		{"file not a map", map[string]any{}, []any{"x"}, nil, "files[]: want map"},
		{"file path not a string", map[string]any{}, []any{map[string]any{"path": int64(1)}}, nil, "files[].path"},
		{"manifest not a map", "x", nil, nil, "manifest: want map"},
		{"config user not a map", nil, nil, map[string]any{"user": "u"}, "config.user"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileRequestFromArgs(tt.manifest, tt.files, tt.config)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestExecuteRequestTimeout(t *testing.T) {
	def := 30 * time.Second
	for _, tt := range []struct {
		cfg  map[string]any
		want time.Duration
	}{
		{nil, def},
		{map[string]any{"timeout": int64(5)}, 5 * time.Second},
		{map[string]any{"timeout": 0.25}, 250 * time.Millisecond},
		{map[string]any{"timeout": "5"}, def},
		{map[string]any{"timeout": int64(0)}, def},
		{map[string]any{"timeout": -1.0}, def},
		{map[string]any{"timeout": 1e300}, def},
	} {
		if got := (ExecuteRequest{Config: tt.cfg}).Timeout(def); got != tt.want {
			t.Errorf("Timeout(%v) = %v, want %v", tt.cfg, got, tt.want)
		}
	}
}
