package apps_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
)

// dataFiles lists the regular files under dir/apps (manifests and app files).
func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(filepath.Join(dir, "apps"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestHostileInstallLimits: an install over any limit is refused with an
// error naming the limit, and nothing reaches the data directory.
func TestHostileInstallLimits(t *testing.T) {
	dir := t.TempDir()
	lim := apps.Limits{MaxFiles: 3, MaxTotalBytes: 4096, MaxManifestBytes: 2048, MaxAppsPerWorkspace: 2}
	s := testserver.Start(t, server.Config{DataDir: dir, Apps: apps.ForServer(lim)})
	newTestWorker(t, s, rpc.Config{Token: userToken(t, s, "alice")}, "protected")
	alice := connectUser(t, s, "alice", "alice-client")
	svc := appsService(t, alice)

	manifest := map[string]any{"type": "test-app", "entry_point": "main.txt"}
	file := func(p, content string) map[string]any { return map[string]any{"path": p, "content": content} }
	main := file("main.txt", "hello")
	for _, tc := range []struct {
		name string
		kw   rpc.Kwargs
		want string
	}{
		{"too many files", rpc.Kwargs{"manifest": manifest,
			"files": []any{main, file("a", "1"), file("b", "2"), file("c", "3")}}, "over the limit of 3 files per app (max install files)"},
		{"too many bytes in one file", rpc.Kwargs{"manifest": manifest,
			"files": []any{main, file("big", strings.Repeat("x", 5000))}}, "over the limit of 4096 bytes per app (max install bytes)"},
		{"too many bytes in all files", rpc.Kwargs{"manifest": manifest,
			"files": []any{main, file("a", strings.Repeat("x", 2100)), file("b", strings.Repeat("x", 2100))}}, "over the limit of 4096 bytes per app (max install bytes)"},
		{"too many bytes as base64", rpc.Kwargs{"manifest": manifest, "files": []any{main,
			map[string]any{"path": "b.bin", "format": "base64", "content": strings.Repeat("AAAA", 1500)}}}, "(max install bytes)"},
		{"too many bytes as source", rpc.Kwargs{"manifest": manifest, "source": strings.Repeat("x", 5000)}, "(max install bytes)"},
		{"manifest too large", rpc.Kwargs{"manifest": map[string]any{"type": "test-app", "entry_point": "main.txt",
			"description": strings.Repeat("d", 3000)}, "files": []any{main}}, "over the limit of 2048 bytes (max manifest bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, stage := range []bool{true, false} {
				callErr(t, svc, "install", tc.want, with(tc.kw, "stage", stage))
			}
			if got := dataFiles(t, dir); len(got) != 0 {
				t.Fatalf("a refused install wrote %v", got)
			}
		})
	}
	if l := asList(t, call(t, svc, "list_apps")); len(l) != 0 {
		t.Fatalf("refused installs left apps: %v", l)
	}

	t.Run("apps per workspace", func(t *testing.T) {
		call(t, svc, "install", with(testApp(""), "app_id", "one", "stage", true))
		call(t, svc, "install", with(testApp(""), "app_id", "two", "stage", true))
		before := dataFiles(t, dir)
		callErr(t, svc, "install", "already has 2 apps, the limit per workspace (max apps per workspace)",
			with(testApp(""), "app_id", "three", "stage", true))
		if after := dataFiles(t, dir); len(after) != len(before) {
			t.Fatalf("the refused install wrote files: %v → %v", before, after)
		}
		// Replacing an existing app is not a new one.
		call(t, svc, "install", with(testApp(""), "app_id", "two", "stage", true, "overwrite", true))
	})

	t.Run("staged edits", func(t *testing.T) {
		// "one" has only a staged version: the edits change it, within the
		// same limits as an install.
		before := dataFiles(t, dir)
		callErr(t, svc, "edit_file", "(max install bytes)", "one", "big.txt", strings.Repeat("x", 5000), rpc.Kwargs{"stage": true})
		call(t, svc, "edit_file", "one", "a", "1", rpc.Kwargs{"stage": true})
		call(t, svc, "edit_file", "one", "b", "1", rpc.Kwargs{"stage": true})
		callErr(t, svc, "edit_file", "over the limit of 3 files per app (max install files)", "one", "c", "1", rpc.Kwargs{"stage": true})
		if after := dataFiles(t, dir); len(after) > len(before)+2 {
			t.Fatalf("staged edits over the limits wrote %v → %v", before, after)
		}
	})

	t.Run("get_file asks for too many files", func(t *testing.T) {
		paths := []any{"main.txt", "main.txt", "main.txt", "main.txt"}
		art, err := alice.GetService(testserver.Ctx(t), "public/artifact-manager")
		if err != nil {
			t.Fatal(err)
		}
		callErr(t, art, "get_file", "over the limit of 3 files per app (max install files)", "one", paths)
	})
}

// TestHostileChunkQuotaInstall: the observed attack. An anonymous client
// fills what it may of the apps controller's message cache (chunked
// messages in flight); installs over 256 KiB, which travel in chunks to the
// controller, still work for everyone else.
func TestHostileChunkQuotaInstall(t *testing.T) {
	limits := rpc.ChunkLimits{PerSenderMessages: 2, PerSenderBytes: 2 << 20, TotalBytes: 4 << 20}
	s := testserver.Start(t, server.Config{DataDir: t.TempDir(), Chunks: limits})
	newTestWorker(t, s, rpc.Config{Token: userToken(t, s, "alice")}, "protected")
	alice := connectUser(t, s, "alice", "alice-client")
	svc := appsService(t, alice)
	ctx := testserver.Ctx(t)

	m := testserver.ConnectRaw(t, s, map[string]any{"client_id": "mallory"})
	const ctl = "public/" + apps.ClientID
	mc := func(op string, args ...any) error {
		_, err := m.Call(ctx, ctl, "services.built-in.message_cache."+op, args, nil, nil)
		return err
	}
	for i := range 2 {
		if err := mc("create", fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
		if err := mc("append", fmt.Sprint("k", i), make([]byte, 1000<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mc("create", "k2"); err == nil || !strings.Contains(err.Error(), "(per-client limit 2)") {
		t.Fatalf("a third message: %v", err)
	}
	big := strings.Repeat("x", 600<<10)
	kw := with(testApp(""), "app_id", "big", "stage", true)
	kw["files"] = []any{map[string]any{"path": "main.txt", "content": "hi"}, map[string]any{"path": "big.txt", "content": big}}
	call(t, svc, "install", kw)
	if v := call(t, svc, "read_file", "big", "big.txt"); v != big {
		t.Fatalf("read_file returned %d bytes", len(fmt.Sprint(v)))
	}
}

// TestHostileSessionsPerWorkspace: one workspace cannot take every session
// a shared worker offers; another workspace still starts its apps, and a
// stopped session frees its place.
func TestHostileSessionsPerWorkspace(t *testing.T) {
	s := testserver.Start(t, server.Config{DataDir: t.TempDir(), Apps: apps.ForServer(apps.Limits{MaxSessionsPerWorkspace: 2})})
	newTestWorker(t, s, rpc.Config{Token: publicRootToken(t, s), Workspace: "public"}, "public")
	alice := appsService(t, connectUser(t, s, "alice", "alice-client"))
	bob := appsService(t, connectUser(t, s, "bob", "bob-client"))
	// stage: the staged versions run (the installs skipped the trial start).
	detached := rpc.Kwargs{"wait_for_service": false, "stage": true}
	for _, id := range []string{"a1", "a2", "a3"} {
		call(t, alice, "install", with(testApp(""), "app_id", id, "stage", true))
	}
	call(t, bob, "install", with(testApp(""), "app_id", "b1", "stage", true))
	first := asMap(t, call(t, alice, "start", "a1", detached))
	call(t, alice, "start", "a2", detached)
	callErr(t, alice, "start", "already has 2 app sessions, the limit per workspace (max sessions per workspace)", "a3", detached)
	if n := len(asList(t, call(t, alice, "list_running"))); n != 2 {
		t.Fatalf("alice has %d sessions after the refused start; want 2", n)
	}
	call(t, bob, "start", "b1", detached) // another workspace is not affected
	call(t, alice, "stop", first["id"])
	call(t, alice, "start", "a3", detached) // the stopped session freed its place
}
