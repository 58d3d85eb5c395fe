package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadAppTypes: the app type hypha run and hypha apps install pick from
// the path: by extension, an .html file by its content (an ImJoy-style
// source is hypha, any other page window), a directory by its manifest,
// --type over everything.
func TestLoadAppTypes(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	page := "<!DOCTYPE html>\n<html><body><script>console.log(1)</script></body></html>"
	imjoy := "<docs>x</docs>\n<config lang=\"json\">{\"name\": \"P\"}</config>\n<script lang=\"javascript\">api.export({})</script>"
	examples, _ := filepath.Abs("../../examples")
	for _, tc := range []struct {
		name, path, flagType string
		wantType, wantEntry  string
		wantWait             any // manifest wait_for_service; nil: not set
		wantPrefix           string
	}{
		{"python file", write("a/main.py", "print(1)"), "", "python-eval", "main.py", nil, ""},
		{"node file", write("b/index.js", "1"), "", "node-eval", "index.js", nil, ""},
		{"html page", write("c/page.html", page), "", "window", "page.html", false, "<!DOCTYPE html>"},
		{"htm page", write("c/page.htm", page), "", "window", "page.htm", false, "<!DOCTYPE html>"},
		{"html without doctype", write("d/frag.html", "<h1>hi</h1><script>console.log(2)</script>"), "", "window", "frag.html", false, "<!doctype html>\n<h1>hi</h1>"},
		{"imjoy source", write("e/plugin.imjoy.html", imjoy), "", "hypha", "plugin.imjoy.html", nil, "<docs>"},
		{"imjoy source named .html", write("e/app.html", strings.ToUpper(imjoy[:7])+imjoy[7:]), "", "hypha", "app.html", nil, ""},
		{"--type over an html file", write("f/page.html", page), "iframe", "iframe", "page.html", nil, ""},
		{"--type over a js file", write("g/worker.js", "1"), "web-worker", "web-worker", "worker.js", nil, ""},
		{"directory with manifest", filepath.Join(examples, "hello-window"), "", "window", "main.js", "default", ""},
		{"directory with index.html", filepath.Dir(write("h/index.html", page)), "", "window", "index.html", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, err := loadApp(tc.path, tc.flagType, "")
			if err != nil {
				t.Fatal(err)
			}
			if app.Manifest["type"] != tc.wantType || app.Manifest["entry_point"] != tc.wantEntry {
				t.Fatalf("type %v, entry %v; want %s, %s", app.Manifest["type"], app.Manifest["entry_point"], tc.wantType, tc.wantEntry)
			}
			if got := app.Manifest["wait_for_service"]; got != tc.wantWait {
				t.Fatalf("wait_for_service = %v, want %v", got, tc.wantWait)
			}
			if src := app.fileText(tc.wantEntry); !strings.HasPrefix(src, tc.wantPrefix) {
				t.Fatalf("the entry point reads %.40q, want it to start with %q", src, tc.wantPrefix)
			}
		})
	}
	if _, err := loadApp(write("i/notes.txt", "x"), "", ""); err == nil || !strings.Contains(err.Error(), "cannot tell the app type") {
		t.Fatalf("a .txt file: %v", err)
	}
}
