package interop

// Apps over HTTP (/{workspace}/apps/{service_id}/...) and get_service's
// case_conversion with the real hypha-rpc JavaScript client
// (interop/js/apps.mjs) against the embedded server.

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
)

func httpDo(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestJSAppsOverHTTP: a JS client registers an asgi service (the call
// shape serve({scope, receive, send})) and a functions service; anonymous
// HTTP GET, POST and a streamed response go through the server to them.
func TestJSAppsOverHTTP(t *testing.T) {
	t.Parallel()
	node, dir := needJS(t)
	s := startServer(t)
	p := startProc(t, "js apps serve", jsServeLife, true, dir, node, "apps.mjs", "serve", s.URL(), "{}")
	ready := p.waitReady()
	base := s.URL() + "/" + str(ready, "workspace") + "/apps/"

	code, _, body := httpDo(t, http.MethodPost, base+"js-asgi/echo/x?a=1", "hello body")
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("POST: %d %s%s", code, body, p.diag())
	}
	expect(t, "asgi echo", got, map[string]any{"method": "POST", "path": "/echo/x", "query": "a=1", "body": "hello body",
		"has_authorization": false})

	resp, err := http.Get(base + "js-asgi/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			break
		}
		if l != "\n" {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	resp.Body.Close()
	expect(t, "stream content type", resp.Header.Get("Content-Type"), "text/event-stream")
	expect(t, "stream", lines, []string{"data: 0", "data: 1", "data: 2", "data: [DONE]"})

	code, _, body = httpDo(t, http.MethodGet, base+"js-fns/", "")
	expect(t, "functions index", []any{code, body}, []any{200, "index of js-fns"})
	code, hdr, body := httpDo(t, http.MethodPost, base+"js-fns/hello?q=2", "payload")
	got = nil
	_ = json.Unmarshal([]byte(body), &got)
	if code != 201 || hdr.Get("Content-Type") != "application/json" || got["query"] != "q=2" || got["body"] != "payload" ||
		!strings.HasPrefix(str(got, "user"), "anonymouz-") {
		t.Errorf("functions hello: %d %v %s", code, hdr, body)
	}
	code, _, body = httpDo(t, http.MethodGet, base+"js-fns/nope", "")
	expect(t, "functions missing", []any{code, body}, []any{404, "Function not found: nope"})
}

// TestJSGetServiceCaseConversion: the JS client asks get_service for camel
// and snake names of a Go service and calls through them.
func TestJSGetServiceCaseConversion(t *testing.T) {
	t.Parallel()
	node, dir := needJS(t)
	s := startServer(t)
	prov := goConnect(t, s.URL(), rpc.Config{ClientID: "prov", Token: testserver.RootToken})
	hello := func(name string) string { return "Hello " + name }
	ctx := ctxTimeout(t, time.Minute)
	if _, err := prov.RegisterService(ctx, rpc.Service{ID: "hello-world", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"HelloWorld": hello}}); err != nil {
		t.Fatal(err)
	}
	r := startProc(t, "js case_conversion", jsTimeout, false, dir, node, "apps.mjs", "case_conversion", s.URL(),
		mustJSON(map[string]any{"service_id": "ws-user-root/prov:hello-world"})).mustResult()
	expect(t, "camel call", r["camel"], "Hello world")
	expect(t, "snake call", r["snake"], "Hello world")
	expectContains(t, "camel keys", mustJSON(r["camel_keys"]), `"helloWorld"`)
	expectContains(t, "snake keys", mustJSON(r["snake_keys"]), `"hello_world"`)
}
