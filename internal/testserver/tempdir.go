package testserver

import (
	"os"
	"testing"
)

// SharedTempDir is a temp folder (mode 0755) that app sessions running as
// other users can reach: t.TempDir's parent is private (0700), so the
// working directories of per-session uids cannot live below it. It is
// removed when the test ends.
func SharedTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hypha-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
