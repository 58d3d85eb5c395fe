package interop

// The npm hypha-rpc client over its HTTP streaming transport
// (transport: "http": GET /rpc streams, POST /rpc sends) against the
// embedded server. Runs in CI like the other JS tests (no peers needed).

import (
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
)

// TestJSHTTPTransport: a JS client over HTTP calls a Go service (bytes,
// objects, errors, its own context, a JS callback, keyword arguments),
// is called back by Go, sends and receives 5 MB (chunked), and serves a
// service that a Go client over HTTP calls.
func TestJSHTTPTransport(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	ctx := ctxTimeout(t, 3*time.Minute)
	url := s.URL()
	goc := goConnect(t, url, rpc.Config{Token: testserver.RootToken, ClientID: "go-svc-client"})
	var n counters
	sid, err := goc.RegisterService(ctx, goService("go-svc", "public", &n))
	if err != nil {
		t.Fatal(err)
	}
	httpArgs := func(m map[string]any) map[string]any {
		m["transport"] = "http"
		m["token"] = testserver.RootToken
		return m
	}
	r := jsRun(t, "call", url, httpArgs(map[string]any{
		"service_id": sid,
		"client_id":  "js-http-caller",
		"calls": []any{
			map[string]any{"fn": "add", "args": []any{2, 3}},
			map[string]any{"fn": "echo", "args": []any{b64([]byte{0, 1, 2, 255})}},
			map[string]any{"fn": "echo", "args": []any{map[string]any{"a": []any{1, 2.5, nil, "s"}}}},
			map[string]any{"fn": "fail", "args": []any{"boom"}},
			map[string]any{"fn": "ctx_who"},
			map[string]any{"fn": "call_back", "args": []any{map[string]any{"$callback": "cb:"}, "x"}},
			map[string]any{"fn": "add", "kwargs": map[string]any{"b": 2, "a": 40}},
		},
	}))
	res := at(r, "results")
	expect(t, "add", at(res, 0), 5)
	expect(t, "echo bytes", at(res, 1), b64([]byte{0, 1, 2, 255}))
	expect(t, "echo object", at(res, 2), map[string]any{"a": []any{1, 2.5, nil, "s"}})
	expectContains(t, "fail error", str(res, 3, "$error"), "boom")
	expect(t, "ctx_who", at(res, 4), map[string]any{"ws": "ws-user-root", "from": "ws-user-root/js-http-caller", "user": "root"})
	expect(t, "call_back", at(res, 5), "cb:x")
	expect(t, "add by name", at(res, 6), 42)

	r = jsRun(t, "callback_to_go", url, httpArgs(map[string]any{"service_id": sid}))
	expect(t, "callback_to_go result", at(r, "result"), "js:hello")

	r = jsRun(t, "big", url, httpArgs(map[string]any{"service_id": sid, "size": bigSize}))
	expect(t, "big equal", at(r, "equal"), true)
	t.Logf("5 MB echo JS (http) -> Go -> JS (http): %v ms", at(r, "ms"))

	// A JS service over HTTP, called by a Go client over HTTP.
	serve, ready := jsServe(t, url, httpArgs(map[string]any{"client_id": "js-http-serve", "service_id": "js-svc"}))
	jsSid := str(ready, "service_id")
	goHTTP := goConnect(t, url, rpc.Config{Token: testserver.RootToken, ClientID: "go-http", Transport: rpc.TransportHTTP})
	svc, err := goHTTP.GetService(ctx, jsSid)
	if err != nil {
		t.Fatalf("get the JS service: %v%s", err, serve.diag())
	}
	if v, err := svc.Call(ctx, "add", 2, 3); err != nil || v != int64(5) {
		t.Errorf("add over http both ends = %v, %v", v, err)
	}
	v, err := svc.Call(ctx, "echo", pattern(bigSize))
	if err != nil {
		t.Fatalf("echo 5 MB: %v%s", err, serve.diag())
	}
	if err := checkPatternBytes(v, bigSize); err != nil {
		t.Errorf("echo 5 MB: %v", err)
	}
	if n.get("call_back") != 2 || n.get("add") != 2 {
		t.Errorf("Go service call counts = %v", n.n)
	}
}

// TestJSHTTPTransportAnonymousNode: Node's fetch keeps no cookies, so an
// anonymous npm client over HTTP cannot prove that its POSTs come from its
// stream: they are refused with a message saying so (a token, or a client
// that keeps cookies such as a browser or Python's httpx, is needed).
func TestJSHTTPTransportAnonymousNode(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	p := jsStart(t, "connect", s.URL(), map[string]any{"transport": "http", "method_timeout": 5, "timeout": 40}, false)
	res, msg := p.finish()
	if res != nil {
		t.Fatalf("an anonymous Node client over HTTP connected: %v", res)
	}
	// The client's last word is its own timeout; the server's answer, in
	// its log, says why.
	if d := p.diag(); !strings.Contains(d, "403") || !strings.Contains(d, "credentials of the RPC stream") {
		t.Fatalf("anonymous Node client over HTTP: %q%s", msg, d)
	}
	t.Logf("refused as expected: %s", msg)
}
