package localproc

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hypha-go/hypha/worker"
)

// TestAppEnv: the order of precedence (base < manifest env < config env <
// HYPHA_*), HOME for a session of its own, and the keys dropped.
func TestAppEnv(t *testing.T) {
	t.Setenv("HOME", "/home/worker")
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("SECRET_OF_THE_WORKER", "not for apps")
	cfg := worker.Config{
		ServerURL: "http://h", Workspace: "ws", ClientID: "c", Token: "tok", AppID: "app",
		Manifest: worker.Manifest{"env": map[string]any{
			"A": "manifest", "B": "manifest", "HYPHA_TOKEN": "forged", "N": 1, "": "x", "X=Y": "z", "NUL": "a\x00b",
		}},
		Extra: map[string]any{"env": map[string]any{"B": "config"}},
	}
	env, dropped := AppEnv(map[string]string{"PATH": "/bin", "A": "base", "TERM": "xterm"}, cfg, User{Switch: true}, "/work/s1")
	want := []string{
		"A=manifest", "B=config", "HOME=/work/s1", "HYPHA_APP_ID=app", "HYPHA_CLIENT_ID=c", "HYPHA_SERVER_URL=http://h",
		"HYPHA_TOKEN=tok", "HYPHA_WORKSPACE=ws", "LANG=C.UTF-8", "PATH=/bin", "TERM=xterm",
	}
	if d := cmp.Diff(want, env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"manifest.env.", "manifest.env.N", "manifest.env.NUL", "manifest.env.X=Y"}, dropped); d != "" {
		t.Errorf("dropped (-want +got):\n%s", d)
	}
	env, _ = AppEnv(nil, worker.Config{Manifest: worker.Manifest{"env": "not a map"}}, User{}, "/work/s2")
	if !slices.Contains(env, "HOME=/home/worker") {
		t.Errorf("a session run as the worker's user keeps the worker's HOME: %v", env)
	}
}
