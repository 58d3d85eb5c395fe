package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/rpc/asgi"
	"github.com/hypha-go/hypha/server"
)

// appMux is the Go app the tests serve through /{ws}/apps/{id}/.
func appMux(t *testing.T, step chan struct{}) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"message":"Hello, World!"}`)
	})
	mux.HandleFunc("GET /api/v1/test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"message":"Hello, it works!"}`)
	})
	// /echo answers what the app saw: method, path, query, body, headers
	// and the caller the server stamped.
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		cc := asgi.Caller(r)
		hdr := map[string]string{}
		for k := range r.Header {
			hdr[strings.ToLower(k)] = r.Header.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-App", "yes")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
			"len": len(b), "sum": fmt.Sprint(sum(b)), "headers": hdr, "host": r.Host,
			"caller_user": cc.User.ID, "caller_ws": cc.WS})
	})
	// /stream sends one line per step, flushed, waiting for the test to ask
	// for the next: the client must see each line before the next exists.
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush() // the headers go out now
		for i := range 3 {
			select {
			case <-step:
			case <-r.Context().Done():
				return
			case <-time.After(30 * time.Second):
				t.Errorf("stream step %d never asked for", i)
				return
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	return mux
}

func sum(b []byte) uint64 {
	var s uint64
	for i, c := range b {
		s += uint64(c) * uint64(i%251+1)
	}
	return s
}

func appURL(s *server.Server, ws, id, rest string) string {
	return s.URL() + "/" + ws + "/apps/" + id + rest
}

func doReq(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	code, _, b := doReq(t, req)
	return code, b
}

// TestAppsASGI: a Go http.Handler registered as an asgi service (rpc/asgi)
// answers GET and POST at /{ws}/apps/{id}/..., as upstream's
// test_serve_fastapi_app does with a FastAPI app; a big body crosses in
// several receive() calls; the app sees the HTTP caller as its caller; once
// the provider is gone the route answers 404.
func TestAppsASGI(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.Connect(t, s, rpc.Config{})
	ws := prov.Info().Workspace
	testserver.MustRegister(t, prov, asgi.Service("test-service", appMux(t, nil)))

	code, b := get(t, appURL(s, ws, "test-service", "/"))
	if code != 200 || string(b) != `{"message":"Hello, World!"}` {
		t.Fatalf("GET /: %d %s", code, b)
	}
	code, b = get(t, appURL(s, ws, "test-service", "/api/v1/test"))
	if code != 200 || string(b) != `{"message":"Hello, it works!"}` {
		t.Fatalf("GET /api/v1/test: %d %s", code, b)
	}
	// Without the trailing slash: redirected, as upstream.
	code, b = get(t, appURL(s, ws, "test-service", ""))
	if code != 200 || string(b) != `{"message":"Hello, World!"}` {
		t.Fatalf("GET without slash: %d %s", code, b)
	}

	// A POST of 1 MiB as a logged-in user.
	root := testserver.RootClient(t, s, "root-caller")
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "ws-user-root", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	req, _ := http.NewRequest(http.MethodPost, appURL(s, ws, "test-service", "/echo?x=1&y=two"), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Cookie", "theme=dark; access_token="+tok)
	req.Header.Set("X-Custom", "kept")
	code, hdr, b := doReq(t, req)
	if code != http.StatusCreated || hdr.Get("X-App") != "yes" {
		t.Fatalf("POST /echo: %d %v %s", code, hdr, b)
	}
	var got struct {
		Method, Path, Query, Sum, Host string
		Len                            int
		Headers                        map[string]string
		CallerUser                     string `json:"caller_user"`
		CallerWS                       string `json:"caller_ws"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if got.Method != "POST" || got.Path != "/echo" || got.Query != "x=1&y=two" || got.Len != len(body) || got.Sum != fmt.Sprint(sum(body)) {
		t.Errorf("the app saw %+v", got)
	}
	if got.Headers["x-custom"] != "kept" || got.Headers["cookie"] != "theme=dark" || got.Headers["authorization"] != "" ||
		!strings.HasPrefix(got.Host, "127.0.0.1:") {
		t.Errorf("headers the app saw: %v (host %q): want x-custom, the theme cookie only, no authorization", got.Headers, got.Host)
	}
	pt, err := root.Manager().Call(ctx, "parse_token", tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := pt.(map[string]any)["id"]; got.CallerUser != want || got.CallerWS != "ws-user-root" {
		t.Errorf("the app's caller is %s in %s, want the HTTP caller (%v in ws-user-root)", got.CallerUser, got.CallerWS, want)
	}

	prov.Close()
	testserver.WaitFor(t, 10*time.Second, "the app route to answer 404", func() bool {
		code, _ := get(t, appURL(s, ws, "test-service", "/"))
		return code == http.StatusNotFound
	})
}

// TestAppsASGIStreaming: a response flushed in pieces reaches the client
// piece by piece (each line is read before the app writes the next).
func TestAppsASGIStreaming(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	prov := testserver.Connect(t, s, rpc.Config{})
	step := make(chan struct{})
	testserver.MustRegister(t, prov, asgi.Service("streamer", appMux(t, step)))
	resp, err := http.Get(appURL(s, prov.Info().Workspace, "streamer", "/stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		step <- struct{}{}
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("line %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("after the stream: %q", rest)
	}
}

// TestAppsFunctions: a functions service: the path picks the function
// (nested, index, default), which gets the request as a scope and answers
// status, headers and body.
func TestAppsFunctions(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	prov := testserver.Connect(t, s, rpc.Config{})
	reply := func(name string) func(scope map[string]any) map[string]any {
		return func(scope map[string]any) map[string]any {
			hdrs, _ := scope["headers"].(map[string]any)
			user, _ := scope["user"].(map[string]any)
			b, _ := json.Marshal(map[string]any{"fn": name, "path": scope["path"], "function_path": scope["function_path"],
				"query": scope["query_string"], "body": fmt.Sprint(scope["body"] != nil), "method": scope["method"],
				"authorization": hdrs["authorization"], "user": user["id"]})
			return map[string]any{"status": 202, "headers": map[string]any{"Content-Type": "application/json", "X-Fn": name}, "body": string(b)}
		}
	}
	testserver.MustRegister(t, prov, rpc.Service{ID: "fns", Type: "functions", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{
			"index": reply("index"),
			"hello": reply("hello"),
			"api":   map[string]any{"users": reply("api.users"), "v1": map[string]any{"index": reply("api.v1.index")}},
			"bytes": func(scope map[string]any) map[string]any {
				return map[string]any{"body": []byte{0, 1, 2}, "headers": map[string]any{"Content-Type": "application/octet-stream"}}
			},
			"default": reply("default"),
		}})
	ws := prov.Info().Workspace
	cases := []struct{ path, fn, fpath string }{
		{"/", "index", ""},
		{"/hello", "hello", ""},
		{"/api/users", "api.users", ""},
		{"/api/v1/", "api.v1.index", ""},
		{"/api/", "default", "/api"}, // a folder of one part has no index, as upstream
		{"/nothing/here", "default", "/nothing/here"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, appURL(s, ws, "fns", c.path+"?q=1"), strings.NewReader("payload"))
		code, hdr, b := doReq(t, req)
		var got map[string]any
		_ = json.Unmarshal(b, &got)
		if code != 202 || hdr.Get("X-Fn") != c.fn || got["fn"] != c.fn || got["query"] != "q=1" || got["body"] != "true" ||
			got["method"] != "POST" || (c.fpath != "" && got["function_path"] != c.fpath) || hdr.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %d %v %s", c.path, code, hdr, b)
		}
		if u, _ := got["user"].(string); !strings.HasPrefix(u, "anonymouz-") {
			t.Errorf("%s: the function saw user %v, want the anonymous HTTP caller", c.path, got["user"])
		}
	}
	code, b := get(t, appURL(s, ws, "fns", "/bytes"))
	if code != 200 || !bytes.Equal(b, []byte{0, 1, 2}) {
		t.Errorf("/bytes: %d %v", code, b)
	}

	// Without a default: 404 naming the function.
	testserver.MustRegister(t, prov, rpc.Service{ID: "fns2", Type: "functions", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"index": reply("index")}})
	code, b = get(t, appURL(s, ws, "fns2", "/missing"))
	if code != 404 || !strings.Contains(string(b), "Function not found: missing") {
		t.Errorf("missing function: %d %s", code, b)
	}
	// A generic service is not an app.
	testserver.MustRegister(t, prov, rpc.Service{ID: "plain", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"index": reply("index")}})
	code, b = get(t, appURL(s, ws, "plain", "/"))
	if code != 500 || !strings.Contains(string(b), "Invalid service type: generic") {
		t.Errorf("generic service: %d %s", code, b)
	}
}

// TestGetServiceCaseConversion: get_service with case_conversion renames
// the service's keys (nested ones too) and calls through the new names
// reach the provider's functions, as upstream's test_case_conversion.
func TestGetServiceCaseConversion(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.Connect(t, s, rpc.Config{ClientID: "prov"})
	hello := func(name string) string { return "Hello " + name }
	testserver.MustRegister(t, prov, rpc.Service{ID: "hello-world", Name: "Hello World",
		Functions: map[string]any{"HelloWorld": hello, "sub_space": map[string]any{"do_it": hello}}})
	caller := testserver.Connect(t, s, rpc.Config{Token: mustToken(t, prov)})
	for _, c := range []struct {
		kind    string
		fn, sub string
	}{{"", "HelloWorld", "sub_space.do_it"}, {"camel", "helloWorld", "subSpace.doIt"}, {"snake", "hello_world", "sub_space.do_it"}} {
		var opts []rpc.GetServiceOption
		if c.kind != "" {
			opts = append(opts, rpc.CaseConversion(c.kind))
		}
		svc, err := caller.GetService(ctx, "prov:hello-world", opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		for _, fn := range []string{c.fn, c.sub} {
			f, ok := svc.Get(fn).(*rpc.RemoteFunc)
			if !ok {
				t.Fatalf("%s: no function %s in %v", c.kind, fn, svc.Members())
			}
			if got, err := f.Call(ctx, "world"); err != nil || got != "Hello world" {
				t.Errorf("%s: %s(world) = %v, %v", c.kind, fn, got, err)
			}
		}
		if svc.Config["workspace"] != prov.Info().Workspace {
			t.Errorf("%s: config %v", c.kind, svc.Config)
		}
	}
	if _, err := caller.GetService(ctx, "prov:hello-world", rpc.CaseConversion("kebab")); err == nil || !strings.Contains(err.Error(), "case_conversion") {
		t.Errorf("case_conversion kebab: %v", err)
	}
}

func mustToken(t *testing.T, c *rpc.Client) string {
	t.Helper()
	tok, err := c.GenerateToken(testserver.Ctx(t), rpc.TokenConfig{Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawServe is an asgi service whose serve function is fn (for tests that
// send events a well-behaved app never would).
func rawServe(id, visibility string, fn func(ctx context.Context, scope map[string]any, receive, send *rpc.RemoteFunc) error) rpc.Service {
	return rpc.Service{ID: id, Type: "asgi", Config: rpc.ServiceConfig{Visibility: visibility},
		Functions: map[string]any{"serve": rpc.HandlerFunc(func(ctx context.Context, c *rpc.Call) (any, error) {
			arg, _ := c.Arg(0, "args").(map[string]any)
			scope, _ := arg["scope"].(map[string]any)
			recv, _ := arg["receive"].(*rpc.RemoteFunc)
			send, _ := arg["send"].(*rpc.RemoteFunc)
			return nil, fn(ctx, scope, recv, send)
		})}}
}

// TestHostileApps attacks the app routes.
func TestHostileApps(t *testing.T) {
	s := testserver.Start(t, server.Config{AppResponseTimeout: 2 * time.Second, MaxAppRequestsPerCaller: 2, MaxHTTPBodyBytes: 1 << 20})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	var calls atomic.Int64
	counted := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1); h.ServeHTTP(w, r) })
	}
	testserver.MustRegister(t, prov, asgi.Service("secret", counted(appMux(t, nil)), asgi.Visibility("protected")))

	t.Run("anonymous caller to a protected app", func(t *testing.T) {
		code, b := get(t, appURL(s, "ws-user-root", "secret", "/"))
		if code != http.StatusNotFound || calls.Load() != 0 {
			t.Errorf("%d %s, app called %d times", code, b, calls.Load())
		}
	})
	t.Run("caller of another workspace", func(t *testing.T) {
		other := testserver.Connect(t, s, rpc.Config{})
		tok := mustToken(t, other)
		req, _ := http.NewRequest(http.MethodGet, appURL(s, "ws-user-root", "secret", "/"), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		code, _, b := doReq(t, req)
		if code != http.StatusNotFound || calls.Load() != 0 {
			t.Errorf("%d %s, app called %d times", code, b, calls.Load())
		}
		// A forged or foreign token is refused outright.
		req.Header.Set("Authorization", "Bearer not-a-token")
		if code, _, _ := doReq(t, req); code != http.StatusUnauthorized {
			t.Errorf("bad token: %d", code)
		}
		// The workspace's own members are served.
		rtok, err := prov.GenerateToken(ctx, rpc.TokenConfig{Workspace: "ws-user-root", Permission: "read"})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+rtok)
		if code, _, b := doReq(t, req); code != 200 || calls.Load() != 1 {
			t.Errorf("member: %d %s", code, b)
		}
	})

	testserver.MustRegister(t, prov, asgi.Service("pub", counted(appMux(t, nil))))
	t.Run("oversize body", func(t *testing.T) {
		before := calls.Load()
		req, _ := http.NewRequest(http.MethodPost, appURL(s, "ws-user-root", "pub", "/echo"), bytes.NewReader(make([]byte, 2<<20)))
		code, _, b := doReq(t, req)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "max HTTP body bytes") || calls.Load() != before {
			t.Errorf("declared length: %d %s (app called %d)", code, b, calls.Load()-before)
		}
		// Without a declared length the app starts reading and is cut off.
		req, _ = http.NewRequest(http.MethodPost, appURL(s, "ws-user-root", "pub", "/echo"), io.MultiReader(bytes.NewReader(make([]byte, 2<<20))))
		req.ContentLength = -1
		code, _, b = doReq(t, req)
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked: %d %s", code, b)
		}
	})

	t.Run("header smuggling", func(t *testing.T) {
		var seen []any
		testserver.MustRegister(t, prov, rawServe("smuggle", "public", func(ctx context.Context, scope map[string]any, recv, send *rpc.RemoteFunc) error {
			seen, _ = scope["headers"].([]any)
			if _, err := send.Call(ctx, map[string]any{"type": "http.response.start", "status": int64(200), "headers": []any{
				[]any{[]byte("x-ok"), []byte("1")},
				[]any{[]byte("x-bad"), []byte("a\r\nInjected: yes")},
				[]any{[]byte("bad name"), []byte("1")},
				[]any{[]byte("transfer-encoding"), []byte("chunked")},
				[]any{[]byte("connection"), []byte("close")},
				[]any{[]byte("content-length"), []byte("-5")},
				[]any{[]byte("set-cookie"), []byte("access_token=attacker; Path=/")},
				[]any{[]byte("set-cookie"), []byte("pref=1; Path=/")},
			}}); err != nil {
				return err
			}
			_, err := send.Call(ctx, map[string]any{"type": "http.response.body", "body": []byte("ok")})
			return err
		}))
		req, _ := http.NewRequest(http.MethodGet, appURL(s, "ws-user-root", "smuggle", "/"), nil)
		req.Header.Set("Connection", "keep-alive, X-Hop")
		req.Header.Set("X-Hop", "secret")
		req.Header.Set("Proxy-Authorization", "Basic x")
		req.Header.Set("Te", "trailers")
		req.Header.Set("Cookie", "access_token="+mustToken(t, prov))
		code, hdr, b := doReq(t, req)
		if code != 200 || string(b) != "ok" || hdr.Get("X-Ok") != "1" {
			t.Fatalf("%d %v %q", code, hdr, b)
		}
		for _, h := range []string{"X-Bad", "Injected", "Connection", "Content-Length"} {
			if hdr.Get(h) != "" && !(h == "Content-Length" && hdr.Get(h) == "2") {
				t.Errorf("response header %s reached the client: %q", h, hdr.Get(h))
			}
		}
		if c := hdr.Values("Set-Cookie"); len(c) != 1 || c[0] != "pref=1; Path=/" {
			t.Errorf("cookies set: %v", c)
		}
		for _, p := range seen {
			pair, _ := p.([]any)
			name := string(pair[0].([]byte))
			switch name {
			case "connection", "x-hop", "proxy-authorization", "te", "cookie", "authorization":
				t.Errorf("request header %s reached the app: %s", name, pair[1])
			}
		}
	})

	t.Run("app that never answers", func(t *testing.T) {
		stuck := make(chan struct{})
		defer close(stuck)
		testserver.MustRegister(t, prov, rawServe("silent", "public", func(ctx context.Context, _ map[string]any, _, _ *rpc.RemoteFunc) error {
			<-stuck
			return nil
		}))
		start := time.Now()
		code, b := get(t, appURL(s, "ws-user-root", "silent", "/"))
		if code != http.StatusGatewayTimeout || !strings.Contains(string(b), "did not answer within 2s") {
			t.Errorf("%d %s after %s", code, b, time.Since(start))
		}
	})

	t.Run("app that fails", func(t *testing.T) {
		testserver.MustRegister(t, prov, rawServe("failing", "public", func(context.Context, map[string]any, *rpc.RemoteFunc, *rpc.RemoteFunc) error {
			return fmt.Errorf("boom")
		}))
		code, b := get(t, appURL(s, "ws-user-root", "failing", "/"))
		if code != http.StatusBadGateway || !strings.Contains(string(b), "boom") {
			t.Errorf("%d %s", code, b)
		}
	})

	t.Run("requests in flight per caller", func(t *testing.T) {
		hold := make(chan struct{})
		entered := make(chan struct{}, 4)
		testserver.MustRegister(t, prov, asgi.Service("slowapp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-hold
			_, _ = io.WriteString(w, "done")
		})))
		results := make(chan int, 2)
		for range 2 {
			go func() {
				code, _ := get(t, appURL(s, "ws-user-root", "slowapp", "/"))
				results <- code
			}()
		}
		<-entered
		<-entered
		code, b := get(t, appURL(s, "ws-user-root", "slowapp", "/"))
		if code != http.StatusTooManyRequests || !strings.Contains(string(b), "max app requests per caller") {
			t.Errorf("third request: %d %s", code, b)
		}
		close(hold)
		for range 2 {
			if c := <-results; c != 200 {
				t.Errorf("held request: %d", c)
			}
		}
		if code, b := get(t, appURL(s, "ws-user-root", "slowapp", "/")); code != 200 {
			t.Errorf("after the others ended: %d %s", code, b)
		}
	})

	t.Run("slow caller", func(t *testing.T) {
		sendErr := make(chan error, 1)
		testserver.MustRegister(t, prov, rawServe("firehose", "public", func(ctx context.Context, _ map[string]any, _, send *rpc.RemoteFunc) error {
			if _, err := send.Call(ctx, map[string]any{"type": "http.response.start", "status": int64(200), "headers": []any{}}); err != nil {
				sendErr <- err
				return err
			}
			chunk := make([]byte, 200<<10)
			for range 2000 { // 400 MB: far more than any socket buffers
				if _, err := send.Call(ctx, map[string]any{"type": "http.response.body", "body": chunk, "more_body": true}); err != nil {
					sendErr <- err
					return err
				}
			}
			sendErr <- nil
			return nil
		}))
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /ws-user-root/apps/firehose/ HTTP/1.1\r\nHost: x\r\n\r\n")
		// Never read: the server's writes stall, its write deadline fails
		// them, and the app's send fails.
		select {
		case err := <-sendErr:
			if err == nil {
				t.Fatal("the whole response was sent to a client that reads nothing")
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the app is still sending to a client that reads nothing")
		}
	})
}

// BenchmarkAppRequest: one GET through /{ws}/apps/{id}/ to a Go handler
// registered with rpc/asgi (lookup, get_service as the caller, serve with
// one receive and two sends) and a functions-service GET, on loopback.
func BenchmarkAppRequest(b *testing.B) {
	s := testserver.Start(b, server.Config{})
	prov := testserver.Connect(b, s, rpc.Config{})
	testserver.MustRegister(b, prov, asgi.Service("bench", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))
	testserver.MustRegister(b, prov, rpc.Service{ID: "benchfn", Type: "functions", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"index": func(map[string]any) map[string]any { return map[string]any{"body": "ok"} }}})
	for _, id := range []string{"bench", "benchfn"} {
		b.Run(id, func(b *testing.B) {
			url := appURL(s, prov.Info().Workspace, id, "/")
			for b.Loop() {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}
