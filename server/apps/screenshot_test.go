package apps_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/server/auth"
)

// TestScreenshotRelay: the controller relays take_screenshot to the
// session's worker with the session's context (its workspace), checks the
// answer is an image of the format asked for, bounded, and refuses a
// session whose worker has no take_screenshot.
func TestScreenshotRelay(t *testing.T) {
	_, w, _, svc, _ := setup(t)
	call(t, svc, "install", with(testApp(""), "app_id", "page"))
	sid := asMap(t, call(t, svc, "start", "page"))["id"].(string)

	for _, tc := range []struct {
		args  []any
		magic string
	}{
		{[]any{sid}, "\x89PNG"},
		{[]any{sid, "PNG"}, "\x89PNG"},
		{[]any{rpc.Kwargs{"session_id": sid, "format": "jpeg"}}, "\xff\xd8\xff"},
		{[]any{sid, "jpg"}, "\xff\xd8\xff"},
	} {
		img, ok := call(t, svc, "take_screenshot", tc.args...).([]byte)
		if !ok || !bytes.HasPrefix(img, []byte(tc.magic)) {
			t.Fatalf("take_screenshot%v = %q", tc.args, img)
		}
	}
	w.mu.Lock()
	shots := w.shots
	w.mu.Unlock()
	if len(shots) != 4 || shots[0]["ws"] != aliceWS {
		t.Fatalf("the worker got contexts %v, want the session's (workspace %s)", shots, aliceWS)
	}

	// An answer over the bound is refused.
	restore := apps.SetMaxScreenshotBytes(8)
	callErr(t, svc, "take_screenshot", "more than the 8 a screenshot may have", sid)
	restore()
	callErr(t, svc, "take_screenshot", "needs session_id", rpc.Kwargs{"format": "png"})
	callErr(t, svc, "take_screenshot", "not found", aliceWS+"/_rapp_nothing")
	// A worker answering something else than an image of the format.
	for _, bad := range []struct {
		answer any
		want   string
	}{
		{"\x89PNG\r\n\x1a\n as text", "answered string, not image bytes"},
		{[]byte("GIF89a..."), "not a png image"},
		{map[string]any{"data": "x"}, "not image bytes"},
	} {
		w.mu.Lock()
		w.shotWith = bad.answer
		w.mu.Unlock()
		callErr(t, svc, "take_screenshot", bad.want, sid)
	}
	call(t, svc, "stop", sid)
	callErr(t, svc, "take_screenshot", "not found", sid)
}

// TestScreenshotNotSupported: a session on a worker without the extension
// gets a clear "not supported" error.
func TestScreenshotNotSupported(t *testing.T) {
	_, w, _, svc, _ := setup(t)
	// The same emulation as a second worker, for its own app type, without
	// take_screenshot.
	if _, err := w.client.RegisterService(testserver.Ctx(t), rpc.Service{
		ID: "plain-worker", Name: "Plain Worker", Type: "server-app-worker",
		Config: rpc.ServiceConfig{Visibility: "protected", RequireContext: true},
		Functions: map[string]any{
			"supported_types": []any{"plain-app"},
			"start":           rpc.HandlerFunc(w.start),
			"stop":            rpc.HandlerFunc(w.stop),
			"get_logs":        rpc.HandlerFunc(w.getLogs),
		}}); err != nil {
		t.Fatal(err)
	}
	app := testApp("")
	app["manifest"].(map[string]any)["type"] = "plain-app"
	call(t, svc, "install", with(app, "app_id", "plain"))
	sid := asMap(t, call(t, svc, "start", "plain"))["id"].(string)
	callErr(t, svc, "take_screenshot", "has no take_screenshot", sid)
}

// TestHostileScreenshot: a screenshot of alice's session asked by an
// anonymous client, by bob, or with a context naming alice, is refused
// before the worker is asked, with the same answer as for a session that
// does not exist; a read-only token of alice's workspace may take one (as
// it may read the logs); a format other than png or jpeg is refused.
func TestHostileScreenshot(t *testing.T) {
	s, w, _, svc, _ := setup(t)
	call(t, svc, "install", with(testApp(""), "app_id", "page"))
	sid := asMap(t, call(t, svc, "start", "page"))["id"].(string)
	roTok, err := s.Issuer().Generate(&auth.UserInfo{ID: "reader", Roles: []string{}, Scope: auth.Scope{
		CurrentWorkspace: aliceWS, Workspaces: map[string]auth.Permission{aliceWS: auth.Read}}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"anonymous": "", "bob": userToken(t, s, "bob")} {
		other := appsService(t, testserver.Connect(t, s, rpc.Config{Token: tok, NoReconnect: true}))
		e1 := callErr(t, other, "take_screenshot", "Permission denied", sid)
		callErr(t, other, "take_screenshot", "Permission denied", rpc.Kwargs{"session_id": sid,
			"context": map[string]any{"ws": aliceWS, "user": map[string]any{"id": "alice"}}})
		// A session that does not exist reads the same: nothing is revealed.
		e2 := callErr(t, other, "take_screenshot", "Permission denied", aliceWS+"/_rapp_nothing")
		if strings.ReplaceAll(e1.Error(), sid, "X") != strings.ReplaceAll(e2.Error(), aliceWS+"/_rapp_nothing", "X") {
			t.Errorf("%s: the refusal tells the sessions apart:\n%v\n%v", name, e1, e2)
		}
	}
	w.mu.Lock()
	n := len(w.shots)
	w.mu.Unlock()
	if n != 0 {
		t.Fatalf("the worker took %d screenshots for refused callers", n)
	}
	reader := appsService(t, testserver.Connect(t, s, rpc.Config{Token: roTok, Workspace: aliceWS, NoReconnect: true}))
	if img, ok := call(t, reader, "take_screenshot", sid).([]byte); !ok || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Fatalf("read-only token: %q", img)
	}
	for _, f := range []string{"gif", "../../etc/passwd", "png\x00"} {
		callErr(t, svc, "take_screenshot", "format must be png or jpeg", sid, f)
	}
	callErr(t, svc, "take_screenshot", "must be a string", sid, map[string]any{"x": 1})
	_ = fmt.Sprint
}
