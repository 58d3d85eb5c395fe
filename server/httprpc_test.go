package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// rawStream is one HTTP RPC stream driven by hand: GET /rpc, frames read
// one by one, messages POSTed with whatever credentials a test chooses.
type rawStream struct {
	t      *testing.T
	s      *server.Server
	hc     *http.Client
	resp   *http.Response
	br     *bufio.Reader
	cancel context.CancelFunc
	Info   map[string]any
	Cookie *http.Cookie
	Token  string
}

func httpTestClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// openStream opens GET /rpc with query q and token (may be empty); it
// returns the HTTP status and body of a refused stream, or the stream.
func openStream(t *testing.T, s *server.Server, q url.Values, token string) (*rawStream, int, string) {
	t.Helper()
	hc := httpTestClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/rpc?"+q.Encode(), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /rpc: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, string(b)
	}
	rs := &rawStream{t: t, s: s, hc: hc, resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel, Token: token}
	t.Cleanup(rs.Close)
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "hypha_rpc_") {
			rs.Cookie = c
		}
	}
	main, _, err := rs.Next()
	if err != nil || main["type"] != "connection_info" {
		t.Fatalf("first frame: %v, %v; want connection_info", main, err)
	}
	rs.Info = main
	return rs, http.StatusOK, ""
}

func (rs *rawStream) Close() {
	rs.cancel()
	rs.resp.Body.Close()
}

// Next reads one frame of the stream.
func (rs *rawStream) Next() (main map[string]any, extra []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(rs.br, hdr[:]); err != nil {
		return nil, nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(rs.br, b); err != nil {
		return nil, nil, err
	}
	return wire.DecodeMain(b)
}

func (rs *rawStream) ID() string {
	return fmt.Sprint(rs.Info["workspace"]) + "/" + fmt.Sprint(rs.Info["client_id"])
}

// post sends body for stream ws/cid with the given token and cookie.
func post(t *testing.T, s *server.Server, ws, cid string, body []byte, token string, cookie *http.Cookie) (int, string) {
	t.Helper()
	hc := httpTestClient(t)
	q := url.Values{"client_id": {cid}, "workspace": {ws}}
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/rpc?"+q.Encode(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/msgpack")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST /rpc: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// call builds a method call frame from the stream's client.
func callFrame(t *testing.T, to, method string, args ...any) []byte {
	t.Helper()
	b, err := wire.Encode(map[string]any{"type": "method", "to": to, "method": method},
		map[string]any{"args": args})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHTTPStreamWire checks upstream's wire shapes: connection_info first
// (with a reconnection token), msgpack frames with a 4-byte length, ping
// and refresh_token POSTed as control messages answered on the stream.
func TestHTTPStreamWire(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	rs, code, body := openStream(t, s, url.Values{"client_id": {"wire"}}, "")
	if rs == nil {
		t.Fatalf("GET /rpc: %d %s", code, body)
	}
	if rs.resp.Header.Get("Content-Type") != "application/x-msgpack-stream" {
		t.Fatalf("content type %q", rs.resp.Header.Get("Content-Type"))
	}
	for _, k := range []string{"workspace", "client_id", "manager_id", "reconnection_token", "public_base_url"} {
		if rs.Info[k] == nil || rs.Info[k] == "" {
			t.Fatalf("connection_info has no %s: %v", k, rs.Info)
		}
	}
	if rs.Cookie == nil || !rs.Cookie.HttpOnly || rs.Cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("stream cookie %+v, want HttpOnly SameSite=Strict", rs.Cookie)
	}
	ws := fmt.Sprint(rs.Info["workspace"])
	for _, typ := range []string{"ping", "refresh_token"} {
		b, _ := wire.Encode(map[string]any{"type": typ})
		if code, body := post(t, s, ws, "wire", b, "", rs.Cookie); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", typ, code, body)
		}
		want := map[string]string{"ping": "pong", "refresh_token": "reconnection_token"}[typ]
		for {
			m, _, err := rs.Next()
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if m["type"] == want {
				break
			}
		}
	}
}

// TestHostileHTTPStreamForgedPost: whoever knows a client's workspace and
// id (every frame it sends carries them) tries to speak as it by POSTing to
// its stream: without credentials, with a token of another user, with a
// token of the same user that did not open the stream, with a made-up
// cookie. Every attempt is refused with 403 and nothing reaches the target;
// the owner's own POSTs still work.
func TestHostileHTTPStreamForgedPost(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	owner := testserver.RootClient(t, s, "owner")
	var calls atomic.Int32
	var lastFrom atomic.Value
	testserver.MustRegister(t, owner, rpc.Service{ID: "target", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"hit": func(cc *rpc.CallContext) string {
			calls.Add(1)
			lastFrom.Store(cc.From)
			return "hit"
		}}})
	tok, err := owner.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": 600})
	if err != nil {
		t.Fatal(err)
	}
	token := fmt.Sprint(tok)
	victim, code, body := openStream(t, s, url.Values{"client_id": {"victim"}}, token)
	if victim == nil {
		t.Fatalf("victim stream: %d %s", code, body)
	}
	anonVictim, code, body := openStream(t, s, url.Values{"client_id": {"anon-victim"}}, "")
	if anonVictim == nil {
		t.Fatalf("anonymous victim stream: %d %s", code, body)
	}
	attacker, code, body := openStream(t, s, url.Values{"client_id": {"attacker"}}, "")
	if attacker == nil {
		t.Fatalf("attacker stream: %d %s", code, body)
	}
	otherTok, err := owner.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": 600, "permission": "read"})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*rawStream{victim, anonVictim} {
		ws, cid := fmt.Sprint(v.Info["workspace"]), fmt.Sprint(v.Info["client_id"])
		frame := callFrame(t, "ws-user-root/owner", "services.target.hit")
		attempts := map[string]struct {
			token  string
			cookie *http.Cookie
		}{
			"no credentials":                   {},
			"another user's token":             {token: fmt.Sprint(attacker.Info["reconnection_token"])},
			"the attacker's own cookie":        {cookie: &http.Cookie{Name: v.Cookie.Name, Value: attacker.Cookie.Value}},
			"a made-up cookie":                 {cookie: &http.Cookie{Name: v.Cookie.Name, Value: "AAAA"}},
			"same user, another (read) token":  {token: fmt.Sprint(otherTok)},
			"the stream's reconnection token":  {token: fmt.Sprint(v.Info["reconnection_token"]) + "x"},
			"the root token for another token": {token: testserver.RootToken},
		}
		for name, a := range attempts {
			code, body := post(t, s, ws, cid, frame, a.token, a.cookie)
			if code != http.StatusForbidden || !strings.Contains(body, "credentials of the RPC stream") {
				t.Errorf("%s: forged POST to %s with %s: %d %s; want 403", cid, ws, name, code, body)
			}
		}
	}
	// The owners' own POSTs: by cookie, and for the token stream by token.
	if code, body := post(t, s, fmt.Sprint(victim.Info["workspace"]), "victim",
		callFrame(t, "ws-user-root/owner", "services.target.hit"), token, nil); code != http.StatusOK {
		t.Fatalf("owner's POST by token: %d %s", code, body)
	}
	testserver.WaitFor(t, 10*time.Second, "the owner's call", func() bool { return calls.Load() == 1 })
	if lastFrom.Load() != fmt.Sprint(victim.Info["workspace"])+"/victim" {
		t.Fatalf("the call came from %v", lastFrom.Load())
	}
	if code, body := post(t, s, fmt.Sprint(anonVictim.Info["workspace"]), "anon-victim",
		callFrame(t, "ws-user-root/owner", "services.target.hit"), "", anonVictim.Cookie); code != http.StatusOK {
		t.Fatalf("anonymous owner's POST by cookie: %d %s", code, body)
	}
	testserver.WaitFor(t, 10*time.Second, "the anonymous owner's call", func() bool { return calls.Load() == 2 })
	// A stream nobody opened.
	if code, body := post(t, s, "ws-user-root", "nobody", callFrame(t, "x", "y"), testserver.RootToken, nil); code != http.StatusBadRequest ||
		!strings.Contains(body, "no open RPC stream") {
		t.Fatalf("POST to a stream nobody opened: %d %s", code, body)
	}
}

// TestHostileHTTPStreamAdmission: an anonymous stream cannot enter another
// workspace, a token cannot be used for a workspace it does not grant, a
// bad reconnection token is refused, and the stream's identity is the
// caller's own (stamped on what it sends).
func TestHostileHTTPStreamAdmission(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	owner := testserver.RootClient(t, s, "owner")
	if _, err := owner.Manager().Call(ctx, "create_workspace", map[string]any{"id": "private-ws"}); err != nil {
		t.Fatal(err)
	}
	tok, err := owner.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": 600, "workspace": "private-ws"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		q     url.Values
		token string
		code  int
		want  string
	}{
		{"anonymous into another workspace", url.Values{"client_id": {"a1"}, "workspace": {"ws-user-root"}}, "", 403, "Permission denied"},
		{"anonymous into a private workspace", url.Values{"client_id": {"a2"}, "workspace": {"private-ws"}}, "", 403, "Permission denied"},
		{"token for another workspace", url.Values{"client_id": {"a3"}, "workspace": {"ws-user-root"}}, fmt.Sprint(tok), 403, "workspace mismatch"},
		{"bad token", url.Values{"client_id": {"a4"}}, "not-a-jwt", 401, "Authentication error"},
		{"bad reconnection token", url.Values{"client_id": {"a5"}, "reconnection_token": {"xx"}}, "", 401, "Authentication error"},
		{"server's workspace", url.Values{"client_id": {"a6"}, "workspace": {"*"}}, "", 403, "invalid workspace"},
	}
	for _, c := range cases {
		rs, code, body := openStream(t, s, c.q, c.token)
		if rs != nil || code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: got %d %s; want %d %q", c.name, code, body, c.code, c.want)
		}
	}
	// Anonymous asking for public lands in its own workspace, as upstream.
	rs, code, body := openStream(t, s, url.Values{"client_id": {"pub"}, "workspace": {"public"}}, "")
	if rs == nil {
		t.Fatalf("anonymous stream asking for public: %d %s", code, body)
	}
	if ws := fmt.Sprint(rs.Info["workspace"]); !strings.HasPrefix(ws, "ws-user-anonymouz-") {
		t.Fatalf("anonymous stream asking for public is in %q", ws)
	}
	// The stream's own identity on what it sends: a spoofed from/user is overwritten.
	var seen atomic.Value
	testserver.MustRegister(t, owner, rpc.Service{ID: "who", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"f": func(cc *rpc.CallContext) string { seen.Store(cc.From + " " + cc.User.ID); return "" }}})
	frame, _ := wire.Encode(map[string]any{"type": "method", "to": "ws-user-root/owner", "method": "services.who.f",
		"from": "ws-user-root/owner", "user": map[string]any{"id": "root"}}, map[string]any{"args": []any{}})
	if code, body := post(t, s, fmt.Sprint(rs.Info["workspace"]), "pub", frame, "", rs.Cookie); code != 200 {
		t.Fatalf("POST: %d %s", code, body)
	}
	testserver.WaitFor(t, 10*time.Second, "the call", func() bool { return seen.Load() != nil })
	if got := seen.Load().(string); !strings.HasPrefix(got, rs.ID()+" anonymouz-") {
		t.Fatalf("the callee saw %q, want the anonymous stream's own id and user", got)
	}
}

// TestHostileHTTPStreamLimits: too many streams for one caller (429 naming
// the limit; room comes back when one closes), an oversize POST (413),
// an empty and malformed bodies (400 naming the problem, and the stream
// closed after MaxMalformedFrames, as a websocket).
func TestHostileHTTPStreamLimits(t *testing.T) {
	s := testserver.Start(t, server.Config{MaxRPCStreamsPerCaller: 2, MaxMessageSize: 1 << 20, MaxMalformedFrames: 3})
	var open []*rawStream
	for i := range 2 {
		rs, code, body := openStream(t, s, url.Values{"client_id": {fmt.Sprint("c", i)}}, testserver.RootToken)
		if rs == nil {
			t.Fatalf("stream %d: %d %s", i, code, body)
		}
		open = append(open, rs)
	}
	_, code, body := openStream(t, s, url.Values{"client_id": {"c2"}}, testserver.RootToken)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "at most 2 open, max RPC streams per caller") {
		t.Fatalf("third stream of one caller: %d %s", code, body)
	}
	// Anonymous callers count per address, apart from root.
	anon, code, body := openStream(t, s, url.Values{"client_id": {"anon"}}, "")
	if anon == nil {
		t.Fatalf("an anonymous stream while root is at its limit: %d %s", code, body)
	}
	open[1].Close()
	testserver.WaitFor(t, 10*time.Second, "room for another stream", func() bool {
		rs, _, _ := openStream(t, s, url.Values{"client_id": {"c3"}}, testserver.RootToken)
		if rs != nil {
			rs.Close()
		}
		return rs != nil
	})

	rs := open[0]
	ws, cid := fmt.Sprint(rs.Info["workspace"]), fmt.Sprint(rs.Info["client_id"])
	big := callFrame(t, "x", "y", bytes.Repeat([]byte{1}, 2<<20))
	if code, body := post(t, s, ws, cid, big, testserver.RootToken, nil); code != http.StatusRequestEntityTooLarge ||
		!strings.Contains(body, "over the limit of 1048576 bytes (max message size") {
		t.Fatalf("oversize POST: %d %s", code, body)
	}
	if code, body := post(t, s, ws, cid, nil, testserver.RootToken, nil); code != http.StatusBadRequest || !strings.Contains(body, "empty body") {
		t.Fatalf("empty POST: %d %s", code, body)
	}
	for i := range 3 {
		code, body := post(t, s, ws, cid, []byte("not msgpack at all"), testserver.RootToken, nil)
		if i < 2 && (code != http.StatusBadRequest || !strings.Contains(body, "malformed message")) {
			t.Fatalf("malformed POST %d: %d %s", i, code, body)
		}
	}
	// The third malformed message closes the stream, with the reason.
	var last map[string]any
	for {
		m, _, err := rs.Next()
		if err != nil {
			break
		}
		last = m
	}
	if last["type"] != "error" || !strings.Contains(fmt.Sprint(last["message"]), "Too many malformed frames") {
		t.Fatalf("last frame before the stream ended: %v", last)
	}
}

// TestHostileHTTPStreamControlFrames: a peer of the same workspace sends an
// HTTP client frames typed like the transport's control messages (a forged
// connection_info or reconnection_token, which upstream's clients would
// take for the server's): they are not delivered; other frames are.
func TestHostileHTTPStreamControlFrames(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	rs, code, body := openStream(t, s, url.Values{"client_id": {"victim"}}, testserver.RootToken)
	if rs == nil {
		t.Fatalf("stream: %d %s", code, body)
	}
	peer := rootRaw(t, s, "peer")
	for _, typ := range []string{"connection_info", "reconnection_token", "error", "ping", "harmless"} {
		if err := peer.Send(map[string]any{"type": typ, "to": "victim", "reconnection_token": "forged", "workspace": "evil"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for {
		m, _, err := rs.Next()
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if m["from"] == nil {
			continue // the server's own control messages (ping)
		}
		if m["type"] != "harmless" {
			t.Fatalf("a routed frame of type %v reached the stream: %v", m["type"], m)
		}
		break
	}
}

// TestHostileHTTPStreamRevokedToken: revoking the token a stream opened
// with ends the stream, and the token no longer opens one.
func TestHostileHTTPStreamRevokedToken(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "root")
	tok, err := root.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": 600})
	if err != nil {
		t.Fatal(err)
	}
	rs, code, body := openStream(t, s, url.Values{"client_id": {"revoked"}}, fmt.Sprint(tok))
	if rs == nil {
		t.Fatalf("stream: %d %s", code, body)
	}
	if _, err := root.Manager().Call(ctx, "revoke_token", tok); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := rs.Next(); err != nil {
			break // the stream ended
		}
	}
	if _, code, body := openStream(t, s, url.Values{"client_id": {"revoked2"}}, fmt.Sprint(tok)); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("a stream with a revoked token: %d %s", code, body)
	}
}

// TestHTTPStreamOutlivesReadTimeout: the whole-request read timeout of
// HTTP requests does not end a stream (Go cancels a request whose
// connection read times out; the stream clears that deadline).
func TestHTTPStreamOutlivesReadTimeout(t *testing.T) {
	s := testserver.Start(t, server.Config{HTTPReadTimeout: time.Second})
	rs, code, body := openStream(t, s, url.Values{"client_id": {"long"}}, testserver.RootToken)
	if rs == nil {
		t.Fatalf("stream: %d %s", code, body)
	}
	time.Sleep(2500 * time.Millisecond) // the read timeout must pass
	b, _ := wire.Encode(map[string]any{"type": "ping"})
	if code, body := post(t, s, "ws-user-root", "long", b, testserver.RootToken, nil); code != http.StatusOK {
		t.Fatalf("POST after the read timeout: %d %s", code, body)
	}
	for {
		m, _, err := rs.Next()
		if err != nil {
			t.Fatalf("the stream ended: %v", err)
		}
		if m["type"] == "pong" {
			return
		}
	}
}

// TestHostileHTTPStreamSlowReader: a stream client that stops reading while
// megabytes are sent to it (a write to it blocks) is still closed by the
// idle sweep (4 s here): the close does not wait behind the blocked write,
// which it cuts. Its peers hear of it; the server is not held.
func TestHostileHTTPStreamSlowReader(t *testing.T) {
	s := testserver.Start(t, server.Config{IdleTimeout: 4 * time.Second})
	ctx := testserver.Ctx(t)
	rs, code, body := openStream(t, s, url.Values{"client_id": {"sleeper"}}, testserver.RootToken)
	if rs == nil {
		t.Fatalf("stream: %d %s", code, body)
	}
	watcher := testserver.RootClient(t, s, "watcher")
	gone := make(chan struct{}, 1)
	watcher.On("client_disconnected", func(e rpc.Event) {
		if e.Data["id"] == "sleeper" {
			select {
			case gone <- struct{}{}:
			default:
			}
		}
	})
	if err := watcher.Subscribe(ctx, "client_disconnected"); err != nil {
		t.Fatal(err)
	}
	// The sleeper never reads: frames pile up until the socket buffers are full.
	pusher := rootRaw(t, s, "pusher")
	big := bytes.Repeat([]byte{7}, 1<<20)
	go func() {
		for range 64 {
			if pusher.Send(map[string]any{"type": "junk", "to": "sleeper"}, map[string]any{"p": big}) != nil {
				return
			}
		}
	}()
	select {
	case <-gone:
	case <-time.After(90 * time.Second):
		t.Fatal("a stream that stopped reading was not closed within 90 s")
	}
}

// TestHTTPStreamEndsWithServer: closing the server ends open streams (no
// handler, goroutine or connection is left: goleak in TestMain).
func TestHTTPStreamEndsWithServer(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	rs, code, body := openStream(t, s, url.Values{"client_id": {"x"}}, "")
	if rs == nil {
		t.Fatalf("stream: %d %s", code, body)
	}
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := rs.Next(); err != nil {
				done <- err
				return
			}
		}
	}()
	s.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end with the server")
	}
}
