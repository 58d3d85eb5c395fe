package hyphaworker

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypha-go/hypha/worker"
)

func TestOptionsValidate(t *testing.T) {
	p := worker.Properties{Name: "My Worker", SupportedTypes: []string{"t"}}
	tests := []struct {
		name    string
		o       Options
		p       worker.Properties
		wantErr string
	}{
		{"minimal", Options{}, p, ""},
		{"public", Options{Visibility: Public}, p, ""},
		{"unlisted", Options{Visibility: Unlisted}, p, ""},
		{"authorized with protected", Options{AuthorizedWorkspaces: []string{"ws-a"}}, p, ""},
		{"local url", Options{LocalURL: "http://10.0.0.1:9527"}, p, ""},
		{"unsluggable name", Options{}, worker.Properties{Name: "!!!", SupportedTypes: []string{"t"}}, "service id is empty"},
		{"bad service id", Options{ServiceID: "a:b"}, p, "must not contain"},
		{"private", Options{Visibility: "private"}, p, `visibility "private" does not exist`},
		{"unknown visibility", Options{Visibility: "secret"}, p, "unknown visibility"},
		{"authorized with public", Options{Visibility: Public, AuthorizedWorkspaces: []string{"x"}}, p, "need visibility"},
		{"bad local url", Options{LocalURL: "localhost:9527"}, p, "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate(tt.p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, worker.ErrInvalidConfig) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestOptionsServiceMap(t *testing.T) {
	p := worker.Properties{
		Name:           "My Custom Worker 2",
		Description:    "does things",
		SupportedTypes: []string{"a", "b"},
		RequireContext: true,
	}
	want := map[string]any{
		"id":              "my-custom-worker-2",
		"name":            "My Custom Worker 2",
		"description":     "does things",
		"type":            "server-app-worker",
		"config":          map[string]any{"visibility": "protected", "run_in_executor": false, "require_context": true},
		"supported_types": []any{"a", "b"},
		"use_local_url":   false,
	}
	if d := cmp.Diff(want, Options{}.ServiceMap(p)); d != "" {
		t.Fatalf("ServiceMap (-want +got):\n%s", d)
	}

	o := Options{ServiceID: "w1", Visibility: Protected, AuthorizedWorkspaces: []string{"ws-a"}, UseLocalURL: true}
	m := o.ServiceMap(p)
	if m["id"] != "w1" || m["use_local_url"] != true {
		t.Errorf("id/use_local_url = %v/%v", m["id"], m["use_local_url"])
	}
	if d := cmp.Diff([]any{"ws-a"}, m["config"].(map[string]any)["authorized_workspaces"]); d != "" {
		t.Error(d)
	}
	o.LocalURL = "http://10.0.0.1:9527"
	if got := o.ServiceMap(p)["use_local_url"]; got != "http://10.0.0.1:9527" {
		t.Errorf("use_local_url with LocalURL = %v", got)
	}
	if _, top := m["visibility"]; top {
		t.Error("visibility must sit under config only")
	}
}
