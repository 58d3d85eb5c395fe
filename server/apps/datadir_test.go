package apps_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypha-go/hypha/rpc"
)

// TestHostileDataDirPrivate: installed apps (manifests may hold env
// secrets) are readable by the server's user only, and a data dir left
// world-readable is tightened when the server starts.
func TestHostileDataDirPrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir)
	newTestWorker(t, s, rpc.Config{Token: userToken(t, s, "alice")}, "protected")
	alice := connectUser(t, s, "alice", "alice-client")
	apps := appsService(t, alice)
	app := testApp("")
	app["manifest"].(map[string]any)["env"] = map[string]any{"API_KEY": "very-secret"}
	app["files"] = []any{
		map[string]any{"path": "main.txt", "content": "hello from main"},
		map[string]any{"path": "sub/dir/data.txt", "content": "x"},
	}
	call(t, apps, "install", with(app, "app_id", "private-app", "stage", true))
	// Not staged: the trial start rewrites manifest.json with the services.
	call(t, apps, "install", with(testApp(""), "app_id", "private-app", "overwrite", true))

	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		// The ended trial session's folder may go while the walk runs.
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n++
		switch {
		case d.IsDir() && info.Mode().Perm() != 0o700:
			t.Errorf("folder %s has mode %v, want 0700", p, info.Mode().Perm())
		case d.Type().IsRegular() && info.Mode().Perm() != 0o600:
			t.Errorf("file %s has mode %v, want 0600", p, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 7 {
		t.Fatalf("only %d entries under the data dir: the app was not stored?", n)
	}
}
