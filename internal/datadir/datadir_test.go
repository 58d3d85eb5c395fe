package datadir

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkPrivate fails for any folder under dir that is not 0700 or regular
// file that is not 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && info.Mode().Perm() != DirMode:
			t.Errorf("folder %s has mode %v, want %v", p, info.Mode().Perm(), DirMode)
		case d.Type().IsRegular() && info.Mode().Perm() != FileMode:
			t.Errorf("file %s has mode %v, want %v", p, info.Mode().Perm(), FileMode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPrepareCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	if err := Prepare(dir, nil); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
}

// TestHostileLooseDataDirTightened: a data dir left world-readable by an
// older version (0755 folders, 0644 manifests with env secrets) is made
// private at start, with one log line; symlinks are neither changed nor
// followed.
func TestHostileLooseDataDirTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	app := filepath.Join(dir, "apps", "ws-a", "app1")
	if err := os.MkdirAll(filepath.Join(app, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "manifest.json"), []byte(`{"env":{"K":"v"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "files", "main.py"), []byte("print(1)"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(app, "files", "main.py"), 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Prepare(dir, slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
	if st, err := os.Stat(outside); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("symlink target changed: %v, %v", st.Mode(), err)
	}
	logs := buf.String()
	if strings.Count(logs, "\n") != 1 || !strings.Contains(logs, "made it private") || !strings.Contains(logs, "entries_changed=7") {
		t.Fatalf("want one log line about 7 entries, got %q", logs)
	}
	// Already private: nothing to say.
	buf.Reset()
	if err := Prepare(dir, slog.New(slog.NewTextHandler(&buf, nil))); err != nil || buf.Len() != 0 {
		t.Fatalf("second Prepare: %v, logs %q", err, buf.String())
	}
}

func TestPrepareRefusesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Prepare(f, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("err = %v", err)
	}
}
