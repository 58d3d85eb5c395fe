package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/workers/browser"
)

// TestLoginPageInChromium: the login page itself, in a real Chromium: the
// user types a username and password into the form the program's login URL
// opens, the page's script posts them (under the page's Content-Security-
// Policy), says the user is logged in, and rpc.Login gets the user's token.
func TestLoginPageInChromium(t *testing.T) {
	path, err := browser.FindChromium("")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium in CI: %v", err)
		}
		t.Skipf("skipping: %v (install Debian's chromium)", err)
	}
	dir := t.TempDir()
	if err := auth.OpenUsers(auth.UsersFile(dir)).Add("erin", "erins password", "", nil); err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, server.Config{DataDir: dir})
	ctx := testserver.Ctx(t)

	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.UserDataDir(profile),
		chromedp.DisableGPU, chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(profile, "config")))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	var status string
	res, err := rpc.Login(ctx, loginConfig(s, func(_ context.Context, info rpc.LoginInfo) error {
		bc, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		// A plain string selector is resolved by DOM.performSearch, which
		// takes CSS selectors.
		if err := chromedp.Do(bc,
			chromedp.Navigate(info.LoginURL),
			chromedp.WaitVisible("#username"),
			chromedp.SendKeys("#username", "erin"),
			chromedp.SendKeys("#password", "erins password"),
			chromedp.Click("#pw-form button[type=submit]"),
			chromedp.WaitVisible("#msg.ok"),
		); err != nil {
			return err
		}
		var err error
		status, err = chromedp.Run(bc, chromedp.Text("#msg"))
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "You are logged in") {
		t.Fatalf("page says %q", status)
	}
	u, err := s.Issuer().Parse(res.Token)
	if err != nil || u.ID != "erin" {
		t.Fatalf("token of %+v, %v", u, err)
	}
}
