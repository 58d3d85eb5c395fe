package embedded_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/workers/browser"
	"github.com/hypha-go/hypha/workers/process"
)

// TestEmbeddedBrowserWorker: with a Chromium installed the system registers
// the browser worker, and a window app installed by a user runs on it,
// loading the hypha-rpc client from the system's own server.
func TestEmbeddedBrowserWorker(t *testing.T) {
	_, err := browser.FindChromium("")
	testserver.NeedOrSkip(t, err == nil, "Chromium (Debian's chromium)")
	sys, err := embedded.Start(testserver.Ctx(t), embedded.Options{
		Server:  server.Config{DataDir: t.TempDir(), Logger: testserver.Logger(t)},
		Addr:    "127.0.0.1:0",
		Process: process.Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)},
		NoConda: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if sys.BrowserWorker() == nil || !strings.Contains(sys.BrowserStatus(), "chromium") {
		t.Fatalf("browser worker not registered: %s", sys.BrowserStatus())
	}
	user, apps := aliceApps(t, sys)
	ctx := testserver.Ctx(t)
	_, err = apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "hello-window",
		"manifest": map[string]any{"type": "window", "name": "Hello", "entry_point": "main.js"},
		"files":    []any{map[string]any{"path": "main.js", "content": `await api.export({hello: (n) => "hello " + n});`}},
		"timeout":  20.0, "wait_for_service": "default",
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "hello-window", rpc.Kwargs{"timeout": 20.0, "wait_for_service": "default"})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := v.(map[string]any)["id"].(string)
	app, err := user.GetService(ctx, sid+":default")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := app.Call(ctx, "hello", "go"); err != nil || got != "hello go" {
		t.Fatalf("hello = %v, %v", got, err)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 20*time.Second, "the session to end", func() bool { return sys.BrowserWorker().Sessions.Len() == 0 })
}

// TestEmbeddedNoChromium: without a browser the system runs on and says
// what to install.
func TestEmbeddedNoChromium(t *testing.T) {
	sys, err := embedded.Start(testserver.Ctx(t), embedded.Options{
		Server:  server.Config{Logger: testserver.Logger(t)},
		Addr:    "127.0.0.1:0",
		Process: process.Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)},
		NoConda: true,
		Browser: browser.Options{ChromiumPath: "/nonexistent/chromium"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if sys.BrowserWorker() != nil || !strings.Contains(sys.BrowserStatus(), "apt-get install chromium") {
		t.Fatalf("status = %q", sys.BrowserStatus())
	}
}
