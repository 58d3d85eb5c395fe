package browser

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// windowApp is an app's script: it exports its default service and logs.
const windowApp = `
console.log("window app in", window.env.get("HYPHA_WORKSPACE"));
await api.export({
  name: "Window App",
  hello: (name) => "hello " + name + " from " + window.env.get("HYPHA_APP_ID"),
  title: () => document.title,
});
`

// TestServerAppsWindow runs the whole path: a user installs a window app
// through public/server-apps (the worker compiles it), the controller
// starts it on the browser worker registered in public, the page loads from
// the server's app files, imports the hypha-rpc client from the server's
// /assets, connects back and serves its default service, which Go calls;
// execute is relayed by the controller; stop closes the page.
// controllerSetup starts a server with the apps controller, registers a
// browser worker in public as the embedded system does, and connects alice.
func controllerSetup(t *testing.T) (w *Worker, hosted *hyphaworker.Hosted, wc, user *rpc.Client, apps *rpc.RemoteService, ctx context.Context) {
	needChromium(t)
	s := testserver.Start(t, server.Config{DataDir: t.TempDir()})
	root := auth.RootUser()
	root.Scope.CurrentWorkspace, root.CurrentWorkspace = "public", "public"
	rtok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wc = testserver.Connect(t, s, rpc.Config{Token: rtok, Workspace: "public", ClientID: "builtin-browser-worker"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	w = New(Options{Logger: testserver.Logger(t)})
	hosted, err = hyphaworker.Host(ctx, wc, w, hyphaworker.Options{UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := hosted.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		_ = w.Shutdown(ctx)
	})

	tok, err := s.Issuer().Generate(&auth.UserInfo{ID: "alice", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-alice"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	user = testserver.Connect(t, s, rpc.Config{Token: tok, ClientID: "alice-client"})
	apps, err = user.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}
	return w, hosted, wc, user, apps, ctx
}

func TestServerAppsWindow(t *testing.T) {
	w, hosted, wc, user, apps, ctx := controllerSetup(t)
	_, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":           "win-app",
		"manifest":         map[string]any{"type": TypeWindow, "name": "Win App", "entry_point": "main.js"},
		"files":            []any{map[string]any{"path": "main.js", "content": windowApp}},
		"timeout":          60.0,
		"wait_for_service": "default",
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "win-app", rpc.Kwargs{"timeout": 60.0, "wait_for_service": "default"})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid, _ := v.(map[string]any)["id"].(string)
	if !strings.HasPrefix(sid, "ws-user-alice/") {
		t.Fatalf("session = %v", v)
	}
	app, err := user.GetService(ctx, sid+":default")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := app.Call(ctx, "hello", "go"); err != nil || got != "hello go from win-app" {
		t.Fatalf("hello = %v, %v", got, err)
	}
	if got, err := app.Call(ctx, "title", "go"); err != nil || got != "Win App" {
		t.Fatalf("title = %v, %v", got, err)
	}
	got, err := apps.Call(ctx, "execute", sid, "await new Promise(r => setTimeout(() => r(document.title + '!'), 10))")
	if err != nil || got != "Win App!" {
		t.Fatalf("execute through the controller = %v, %v", got, err)
	}
	logs, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "console"})
	if err != nil || !strings.Contains(fmt.Sprint(logs), "[log] window app in ws-user-alice") {
		t.Fatalf("console logs = %v, %v", logs, err)
	}
	// The extension on the worker service, called as root of public (the
	// worker's own workspace).
	ws, err := wc.GetService(ctx, hosted.ServiceID)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ws.Call(ctx, ExtTakeScreenshot, sid, "jpeg")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := img.([]byte)
	if _, format, err := image.Decode(bytes.NewReader(b)); err != nil || format != "jpeg" {
		t.Fatalf("screenshot over rpc: %s, %v (%T)", format, err, img)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the session to go", func() bool { return w.Sessions.Len() == 0 })
}

// TestServerAppsIframeAndWebWorker: an iframe app (a window page) and a
// web-worker app (the script in a module Web Worker started by the page)
// connect back and serve their default service.
func TestServerAppsIframeAndWebWorker(t *testing.T) {
	w, _, _, user, apps, ctx := controllerSetup(t)
	const script = `await api.export({hello: (n) => "hello " + n + " from " + self.env.get("HYPHA_APP_ID") + " in a " + (typeof document === "undefined" ? "worker" : "page")});`
	for typ, where := range map[string]string{TypeIframe: "page", TypeWebWorker: "worker"} {
		id := typ + "-app"
		_, err := apps.Call(ctx, "install", rpc.Kwargs{
			"app_id":   id,
			"manifest": map[string]any{"type": typ, "name": id, "entry_point": "main.js"},
			"files":    []any{map[string]any{"path": "main.js", "content": script}},
			"timeout":  60.0, "wait_for_service": "default",
		})
		if err != nil {
			t.Fatalf("%s: install: %v", typ, err)
		}
		v, err := apps.Call(ctx, "start", id, rpc.Kwargs{"timeout": 60.0, "wait_for_service": "default"})
		if err != nil {
			t.Fatalf("%s: start: %v", typ, err)
		}
		sid := v.(map[string]any)["id"].(string)
		app, err := user.GetService(ctx, sid+":default")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := app.Call(ctx, "hello", "go"); err != nil || got != "hello go from "+id+" in a "+where {
			t.Fatalf("%s: hello = %v, %v", typ, got, err)
		}
		if _, err := apps.Call(ctx, "stop", sid); err != nil {
			t.Fatal(err)
		}
	}
	testserver.WaitFor(t, 30*time.Second, "the sessions to go", func() bool { return w.Sessions.Len() == 0 })
}

// hyphaSource is an ImJoy-style app: config, window markup, style, script.
const hyphaSource = `<docs>An ImJoy-style app.</docs>
<config lang="json">
{"name": "Imjoy Style", "type": "window", "version": "0.1.0", "requirements": []}
</config>
<window lang="html">
  <div id="out">from the window section</div>
</window>
<style lang="css">
  #out { color: rgb(0, 128, 0); }
</style>
<script lang="javascript">
class Plugin {
  async setup() { console.log("setup"); }
  async read() {
    const el = document.getElementById("out");
    return el.textContent + " / " + getComputedStyle(el).color;
  }
}
await api.export(new Plugin());
</script>
`

// TestServerAppsHyphaSource: an ImJoy-style source is parsed at install
// (its config becomes the manifest), its page has the window section and
// the style, and its exported class is the default service.
func TestServerAppsHyphaSource(t *testing.T) {
	_, _, _, user, apps, ctx := controllerSetup(t)
	info, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "imjoy-app",
		"manifest": map[string]any{"type": TypeHypha, "entry_point": "source.imjoy.html"},
		"files":    []any{map[string]any{"path": "source.imjoy.html", "content": hyphaSource}},
		"timeout":  60.0, "wait_for_service": "default",
	})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if s := fmt.Sprint(info); !strings.Contains(s, "Imjoy Style") || !strings.Contains(s, "type:window") {
		t.Errorf("the installed manifest does not carry the source's config: %s", s)
	}
	v, err := apps.Call(ctx, "start", "imjoy-app", rpc.Kwargs{"timeout": 60.0, "wait_for_service": "default"})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := v.(map[string]any)["id"].(string)
	app, err := user.GetService(ctx, sid+":default")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := app.Call(ctx, "read"); err != nil || got != "from the window section / rgb(0, 128, 0)" {
		t.Fatalf("read = %v, %v", got, err)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
}
