package embedded_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/workers/browser"
	"github.com/hypha-go/hypha/workers/process"
)

// screenJS reads the page's terminal buffer as text.
const screenJS = `(() => { const t = window.hyphaTerminal; if (!t) return ""; const b = t.buffer.active; let s = "";
for (let i = 0; i < b.length; i++) s += b.getLine(i).translateToString(true) + "\n"; return s; })()`

// TestWebTerminal: the page the server serves for a terminal session, in
// headless Chromium, with alice's workspace token in its URL fragment:
// typed keys reach the session's bash, its output shows in the page's
// xterm.js, and the pty has the size the page fitted. A token of another
// workspace, and a read-only member's, get an error on the page.
func TestWebTerminal(t *testing.T) {
	chromium, err := browser.FindChromium("")
	testserver.NeedOrSkip(t, err == nil, "Chromium (Debian's chromium)")
	sys, err := embedded.Start(testserver.Ctx(t), embedded.Options{
		Server:    server.Config{DataDir: t.TempDir(), Logger: testserver.Logger(t)},
		Addr:      "127.0.0.1:0",
		Process:   process.Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)},
		NoConda:   true,
		NoBrowser: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	_, apps := aliceApps(t, sys)
	ctx := testserver.Ctx(t)
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":   "web-term",
		"manifest": map[string]any{"type": "terminal", "name": "Web term", "entry_point": "rc.sh", "startup_command": "/bin/bash --rcfile rc.sh -i"},
		"files":    []any{map[string]any{"path": "rc.sh", "content": "PS1='web$ '\n"}},
		"stage":    true,
	}); err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "web-term", rpc.Kwargs{"timeout": 30.0, "stage": true})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := v.(map[string]any)["id"].(string)
	ws, cid, _ := strings.Cut(sid, "/")
	pageURL := sys.Server.URL() + "/" + ws + "/terminal/" + cid

	// The page and the assets are served, with no secret in them.
	resp, err := http.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("page: %s %v", resp.Status, resp.Header)
	}

	tok := func(id, home string) string {
		s, err := sys.Server.Issuer().Generate(&auth.UserInfo{ID: id, Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: home}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 700))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	bgctx, bgcancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer bgcancel()
	actx, acancel := chromedp.NewExecAllocator(bgctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// Bob, of another workspace, opens alice's terminal with his token.
	if err := chromedp.Do(bctx, chromedp.Navigate(pageURL+"#token="+tok("bob", "ws-user-bob"))); err != nil {
		t.Fatal(err)
	}
	waitPage(t, bctx, `document.body.dataset.state === "error"`)
	msg, _ := chromedp.Run(bctx, chromedp.Text("#status"))
	if !strings.Contains(msg, "the token is for ws-user-bob, not ws-user-alice") {
		t.Fatalf("bob's page says %q", msg)
	}
	// A read-only member of alice's workspace connects, but may not
	// attach (the controller's relay needs read_write).
	readTok, err := sys.Server.Issuer().Generate(&auth.UserInfo{ID: "reader", Roles: []string{},
		Scope: auth.Scope{CurrentWorkspace: ws, Workspaces: map[string]auth.Permission{ws: auth.Read}}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank"), chromedp.Navigate(pageURL+"#token="+readTok)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, bctx, `document.body.dataset.state === "error"`)
	msg, _ = chromedp.Run(bctx, chromedp.Text("#status"))
	if !strings.Contains(strings.ToLower(msg), "permission") {
		t.Fatalf("the reader's page says %q", msg)
	}

	// Alice.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank"), chromedp.Navigate(pageURL+"#token="+tok("alice", "ws-user-alice"))); err != nil {
		t.Fatal(err)
	}
	waitPage(t, bctx, `document.body.dataset.state === "attached"`)
	if href, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`location.href`)); strings.Contains(href, "token") {
		t.Fatalf("the token stays in the address bar: %s", href)
	}
	waitPage(t, bctx, `(`+screenJS+`).includes("web$ ")`)
	typeKeys(t, bctx, "echo typed-$((6*7)) ; stty size\r")
	waitPage(t, bctx, `(`+screenJS+`).includes("typed-42")`)
	size, err := chromedp.Run(bctx, chromedp.Evaluate[string](`window.hyphaTerminal.rows + " " + window.hyphaTerminal.cols`))
	if err != nil {
		t.Fatal(err)
	}
	waitPage(t, bctx, `(`+screenJS+`).includes("\n`+size+`\n")`)
	if size == "24 80" {
		t.Logf("the fitted size happens to be the default 24x80")
	}
	// The worker's screen model agrees.
	tw := sys.TerminalWorker()
	page, err := tw.GetLogs(context.Background(), sid, workerScreenQuery())
	if err != nil || !strings.Contains(page.Items[0].Content, "typed-42") {
		t.Fatalf("worker screen: %v %v", page.Items, err)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	waitPage(t, bctx, `document.body.dataset.state === "ended"`)
}

// waitPage waits until expr is true in the page.
func waitPage(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			st, _ := chromedp.Run(ctx, chromedp.Text("#status"))
			scr, _ := chromedp.Run(ctx, chromedp.Evaluate[string](screenJS))
			t.Fatalf("page never satisfied %s (err %v); status %q; screen:\n%s", expr, err, st, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// typeKeys types text into the focused page key by key, as a keyboard
// does: one keyDown (with the character) and one keyUp per key; "\r" is
// Enter. (chromedp.SendKeys also sends a char event per key, which
// xterm.js takes as a second key press.)
func typeKeys(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		for _, r := range text {
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Text: string(r), Key: string(r)}
			up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: string(r)}
			if r == '\r' {
				down = input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Text: "\r", Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13}
				up = input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13}
			}
			for _, ev := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, ev); err != nil {
					return chromedp.Void{}, err
				}
			}
		}
		return chromedp.Void{}, nil
	})
	if err != nil {
		t.Fatalf("type %q: %v", text, err)
	}
}
