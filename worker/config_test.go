package worker

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// remoteFunc stands in for the rpc package's remote function object.
type remoteFunc struct{ id string }

// serverConfig is a start() config as the current server sends it,
// decoded (worker-contract §1.3).
func serverConfig() map[string]any {
	return map[string]any{
		"id":                 "ws-user-1/_rapp_brave-fox__rlb",
		"app_id":             "my-app",
		"workspace":          "ws-user-1",
		"client_id":          "_rapp_brave-fox__rlb",
		"server_url":         "http://127.0.0.1:9527",
		"app_files_base_url": "http://127.0.0.1:9527/ws-user-1/artifacts/my-app/files",
		"token":              "tok",
		"entry_point":        "main.py",
		"artifact_id":        "ws-user-1/my-app",
		"manifest": map[string]any{
			"_rtype":       "pydantic-model",
			"type":         "python-eval",
			"name":         "My App",
			"entry_point":  "main.py",
			"daemon":       false,
			"dependencies": []any{"numpy"},
			"custom_field": map[string]any{"x": int64(1)},
		},
		"timeout":           float64(60),
		"progress_callback": &remoteFunc{"cb"},
		"disable_ssl":       false,
		"env":               map[string]any{"A": "1"}, // from additional_kwargs
	}
}

func TestConfigFromMapServerShape(t *testing.T) {
	in := serverConfig()
	before := maps.Clone(in)
	beforeManifest := maps.Clone(in["manifest"].(map[string]any))

	got, err := ConfigFromMap(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ID:              "ws-user-1/_rapp_brave-fox__rlb",
		AppID:           "my-app",
		Workspace:       "ws-user-1",
		ClientID:        "_rapp_brave-fox__rlb",
		ServerURL:       "http://127.0.0.1:9527",
		AppFilesBaseURL: "http://127.0.0.1:9527/ws-user-1/artifacts/my-app/files",
		Token:           "tok",
		EntryPoint:      "main.py",
		ArtifactID:      "ws-user-1/my-app",
		Manifest: Manifest{
			"type":         "python-eval",
			"name":         "My App",
			"entry_point":  "main.py",
			"daemon":       false,
			"dependencies": []any{"numpy"},
			"custom_field": map[string]any{"x": int64(1)},
		},
		Timeout:          60 * time.Second,
		ProgressCallback: in["progress_callback"],
		Extra:            map[string]any{"env": map[string]any{"A": "1"}},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(remoteFunc{}), cmp.Comparer(func(a, b ProgressFunc) bool { return (a == nil) == (b == nil) })); d != "" {
		t.Fatalf("ConfigFromMap (-want +got):\n%s", d)
	}
	if got.ProgressCallback != in["progress_callback"] {
		t.Error("progress_callback must be kept as the same opaque value")
	}
	if d := cmp.Diff(before, in, cmp.AllowUnexported(remoteFunc{})); d != "" {
		t.Errorf("input map modified:\n%s", d)
	}
	if d := cmp.Diff(beforeManifest, in["manifest"]); d != "" {
		t.Errorf("input manifest modified:\n%s", d)
	}
	if got.Manifest.Type() != "python-eval" || got.Manifest.Name() != "My App" || got.Manifest.EntryPoint() != "main.py" {
		t.Errorf("manifest accessors: %q %q %q", got.Manifest.Type(), got.Manifest.Name(), got.Manifest.EntryPoint())
	}
}

func TestConfigFromMapFields(t *testing.T) {
	base := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"id": "ws/c", "workspace": "ws", "client_id": "c"}
		mod(m)
		return m
	}
	tests := []struct {
		name    string
		in      map[string]any
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{"fractional timeout", base(func(m map[string]any) { m["timeout"] = 1.5 }), func(t *testing.T, c Config) {
			if c.Timeout != 1500*time.Millisecond {
				t.Errorf("Timeout = %v", c.Timeout)
			}
		}, ""},
		{"integer timeout", base(func(m map[string]any) { m["timeout"] = int64(30) }), func(t *testing.T, c Config) {
			if c.Timeout != 30*time.Second {
				t.Errorf("Timeout = %v", c.Timeout)
			}
		}, ""},
		{"nil optionals", base(func(m map[string]any) {
			m["timeout"], m["token"], m["entry_point"], m["manifest"], m["disable_ssl"], m["progress_callback"] = nil, nil, nil, nil, nil, nil
		}), func(t *testing.T, c Config) {
			if c.Timeout != 0 || c.Token != "" || c.Manifest != nil || c.DisableSSL || c.ProgressCallback != nil || c.Extra != nil {
				t.Errorf("got %+v", c)
			}
		}, ""},
		{"disable_ssl", base(func(m map[string]any) { m["disable_ssl"] = true }), func(t *testing.T, c Config) {
			if !c.DisableSSL {
				t.Error("DisableSSL = false")
			}
		}, ""},
		{"id derived from workspace and client_id", map[string]any{"workspace": "ws", "client_id": "c"}, func(t *testing.T, c Config) {
			if c.ID != "ws/c" {
				t.Errorf("ID = %q", c.ID)
			}
		}, ""},
		{"manifest without _rtype untouched", base(func(m map[string]any) { m["manifest"] = map[string]any{"type": "t"} }), func(t *testing.T, c Config) {
			if d := cmp.Diff(Manifest{"type": "t"}, c.Manifest); d != "" {
				t.Error(d)
			}
		}, ""},
		{"additional kwargs override a known key", base(func(m map[string]any) { m["timeout"] = int64(5) }), func(t *testing.T, c Config) {
			if c.Timeout != 5*time.Second || c.Extra != nil {
				t.Errorf("Timeout %v Extra %v", c.Timeout, c.Extra)
			}
		}, ""},
		{"missing id", map[string]any{"workspace": "ws"}, nil, "invalid worker config: id"},
		{"string timeout", base(func(m map[string]any) { m["timeout"] = "60" }), nil, "invalid worker config: timeout: want non-negative seconds, got string"},
		{"negative timeout", base(func(m map[string]any) { m["timeout"] = -1.0 }), nil, "timeout"},
		{"int app_id", base(func(m map[string]any) { m["app_id"] = int64(3) }), nil, "invalid worker config: app_id: want string, got int64"},
		{"list manifest", base(func(m map[string]any) { m["manifest"] = []any{} }), nil, "manifest: want map"},
		{"string disable_ssl", base(func(m map[string]any) { m["disable_ssl"] = "yes" }), nil, "disable_ssl: want bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConfigFromMap(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestConfigToMapRoundTrip(t *testing.T) {
	in := serverConfig()
	c, err := ConfigFromMap(in)
	if err != nil {
		t.Fatal(err)
	}
	// The server's own map comes back unchanged, the manifest's "_rtype"
	// marker included: ToMap is what the controller sends.
	out := c.ToMap()
	want := maps.Clone(in)
	if d := cmp.Diff(want, out, cmp.AllowUnexported(remoteFunc{})); d != "" {
		t.Fatalf("ToMap (-want +got):\n%s", d)
	}
	again, err := ConfigFromMap(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(c, again, cmp.AllowUnexported(remoteFunc{}), cmp.Comparer(func(a, b ProgressFunc) bool { return (a == nil) == (b == nil) })); d != "" {
		t.Errorf("round trip (-first +second):\n%s", d)
	}

	empty := Config{ID: "ws/c"}.ToMap()
	for _, k := range []string{"token", "entry_point", "app_files_base_url", "timeout", "manifest"} {
		if v, ok := empty[k]; !ok || v != nil {
			t.Errorf("empty config: %s = %#v, want nil", k, v)
		}
	}
	if _, ok := empty["progress_callback"]; ok {
		t.Error("progress_callback present without a callback")
	}
}

func TestConfigAppEnv(t *testing.T) {
	c := Config{ServerURL: "http://h", Workspace: "ws", ClientID: "c", Token: "t", AppID: "a"}
	want := map[string]string{"HYPHA_SERVER_URL": "http://h", "HYPHA_WORKSPACE": "ws", "HYPHA_CLIENT_ID": "c", "HYPHA_TOKEN": "t", "HYPHA_APP_ID": "a"}
	if d := cmp.Diff(want, c.AppEnv()); d != "" {
		t.Error(d)
	}
}
