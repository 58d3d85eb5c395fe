package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// helloService is the service an HTTP user calls in these tests: greet
// declares its parameters with rpc.Params, add_pos does not.
func helloService(ran *atomic.Int64) rpc.Service {
	return rpc.Service{ID: "hello", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: map[string]any{
		"greet": rpc.Params(func(name, greeting string) string {
			ran.Add(1)
			if greeting == "" {
				greeting = "hello"
			}
			return greeting + ", " + name
		}, "name", "greeting?"),
		"add":     rpc.Params(func(a, b int) int { ran.Add(1); return a + b }, "a", "b"),
		"add_pos": func(a, b int) int { ran.Add(1); return a + b },
		"typed": rpc.Params(func(n int, x float64, flag bool, tags []string, opts map[string]any, s string) map[string]any {
			ran.Add(1)
			return map[string]any{"n": n, "x": x, "flag": flag, "tags": tags, "opts": opts, "s": s}
		}, "n?", "x?", "flag?", "tags?", "opts?", "s?"),
		"bytes": func() []byte { return []byte{0, 1, 255} },
	}}
}

// TestHTTPKwargs: HTTP calls pass keyword arguments by name to Go
// functions declared with rpc.Params, from the query string (typed by the
// declared parameter types) and from a JSON or msgpack object body; missing,
// unknown and badly typed arguments are answered 400 with a message naming
// the parameter, and the function does not run; the service info lists the
// parameters.
func TestHTTPKwargs(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	prov := testserver.RootClient(t, s, "prov")
	var ran atomic.Int64
	testserver.MustRegister(t, prov, helloService(&ran))
	u := func(rest string, q url.Values) string { return testserver.ServiceURL(s, "ws-user-root", rest, q) }
	for _, tc := range []struct {
		name       string
		method     string
		url        string
		body       string
		wantCode   int
		want       any    // the JSON result for 200
		wantDetail string // part of the detail otherwise
	}{
		{"query by name", "GET", u("hello/greet", url.Values{"name": {"Carol"}}), "", 200, "hello, Carol", ""},
		{"query, optional too", "GET", u("hello/greet", url.Values{"name": {"Carol"}, "greeting": {"hi"}}), "", 200, "hi, Carol", ""},
		{"a declared string stays a string", "GET", u("hello/greet", url.Values{"name": {"007"}}), "", 200, "hello, 007", ""},
		{"a repeated parameter takes its last value", "GET", u("hello/greet", url.Values{"name": {"A", "B"}}), "", 200, "hello, B", ""},
		{"query typed by the schema", "GET", u("hello/typed", url.Values{"n": {"3"}, "x": {"2"}, "flag": {"1"},
			"tags": {`["a","b"]`}, "opts": {`{"k":1}`}, "s": {"true"}}), "", 200,
			map[string]any{"n": 3.0, "x": 2.0, "flag": true, "tags": []any{"a", "b"}, "opts": map[string]any{"k": 1.0}, "s": "true"}, ""},
		{"JSON object by name", "POST", u("hello/greet", nil), `{"name": "Carol"}`, 200, "hello, Carol", ""},
		{"JSON array by position", "POST", u("hello/add", nil), `[40, 2]`, 200, 42.0, ""},
		{"JSON single value", "POST", u("hello/greet", nil), `"Ada"`, 200, "hello, Ada", ""},
		{"bytes come as base64", "GET", u("hello/bytes", nil), "", 200, "AAH/", ""},
		{"query: missing argument", "GET", u("hello/greet", nil), "", 400, nil, `missing argument "name"`},
		{"query: unknown argument", "GET", u("hello/greet", url.Values{"name": {"x"}, "nmae": {"y"}}), "", 400, nil,
			`unexpected keyword argument "nmae" (parameters: name, greeting?)`},
		{"JSON: missing argument", "POST", u("hello/add", nil), `{"a": 1}`, 400, nil, `missing argument "b"`},
		{"JSON array: missing argument", "POST", u("hello/add", nil), `[1]`, 400, nil, `missing argument "b"`},
		{"JSON: extra argument", "POST", u("hello/add", nil), `{"a": 1, "b": 2, "c": 3}`, 400, nil, `unexpected keyword argument "c"`},
		{"JSON: wrong type", "POST", u("hello/add", nil), `{"a": "one", "b": 2}`, 400, nil, `argument "a"`},
		{"query: not an integer", "GET", u("hello/typed", url.Values{"n": {"abc"}}), "", 400, nil, `query parameter "n": "abc" is not an integer`},
		{"query: not a boolean", "GET", u("hello/typed", url.Values{"flag": {"maybe"}}), "", 400, nil, `query parameter "flag": "maybe" is not a boolean`},
		{"query: not JSON", "GET", u("hello/typed", url.Values{"tags": {"[1,"}}), "", 400, nil, `query parameter "tags"`},
		{"undeclared names: positional works", "POST", u("hello/add_pos", nil), `[1, 2]`, 200, 3.0, ""},
		{"undeclared names: one missing", "POST", u("hello/add_pos", nil), `[1]`, 400, nil, "add_pos takes 2 arguments, 1 given"},
		{"undeclared names: keywords refused", "GET", u("hello/add_pos", url.Values{"a": {"1"}, "b": {"2"}}), "", 400, nil,
			"its parameters can be named with rpc.Params"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			before := ran.Load()
			code, v := testserver.HTTPGetJSON(t, req)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d (body %v)", code, tc.wantCode, v)
			}
			if tc.wantCode == 200 {
				if diff := cmp.Diff(tc.want, v); diff != "" {
					t.Errorf("body (-want +got)\n%s", diff)
				}
				return
			}
			if d, _ := v.(map[string]any)["detail"].(string); !strings.Contains(d, tc.wantDetail) {
				t.Errorf("detail %q, want it to contain %q", d, tc.wantDetail)
			}
			if ran.Load() != before {
				t.Errorf("the function ran despite the bad arguments")
			}
		})
	}

	t.Run("msgpack body and result", func(t *testing.T) {
		body, _ := msgpack.Marshal(map[string]any{"name": "Carol"})
		req, _ := http.NewRequest("POST", u("hello/greet", nil), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/msgpack")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var got any
		if err := msgpack.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 ||
			resp.Header.Get("Content-Type") != "application/msgpack" || got != "hello, Carol" {
			t.Errorf("status %d, type %q, result %v (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), got, err)
		}
	})

	t.Run("service info lists the parameters", func(t *testing.T) {
		req, _ := http.NewRequest("GET", u("hello", nil), nil)
		code, v := testserver.HTTPGetJSON(t, req)
		if code != 200 {
			t.Fatalf("status %d: %v", code, v)
		}
		schema, _ := v.(map[string]any)["service_schema"].(map[string]any)
		greet, _ := schema["greet"].(map[string]any)
		fn, _ := greet["function"].(map[string]any)
		want := map[string]any{"type": "object", "required": []any{"name"}, "properties": map[string]any{
			"name":     map[string]any{"type": "string", "description": ""},
			"greeting": map[string]any{"type": "string", "description": ""},
		}}
		if diff := cmp.Diff(want, fn["parameters"]); diff != "" {
			t.Errorf("greet's parameters (-want +got)\n%s", diff)
		}
	})
}

// TestHTTPGenerator: a function returning a generator is streamed to the
// HTTP caller as server-sent events (JSON) or concatenated msgpack values,
// as upstream does, ending with [DONE]; an error of the producer ends the
// stream with an error event; and the producer is released when the HTTP
// client goes away in the middle.
func TestHTTPGenerator(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	prov := testserver.RootClient(t, s, "prov")
	released := make(chan struct{})
	testserver.MustRegister(t, prov, rpc.Service{ID: "gen", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: map[string]any{
		"count": rpc.Params(func(n int) iter.Seq2[map[string]any, error] {
			return func(yield func(map[string]any, error) bool) {
				for i := range n {
					if !yield(map[string]any{"i": i}, nil) {
						return
					}
				}
			}
		}, "n"),
		"fail_after": rpc.Params(func(n int) iter.Seq2[int, error] {
			return func(yield func(int, error) bool) {
				for i := range n {
					if !yield(i, nil) {
						return
					}
				}
				yield(0, errors.New("producer broke"))
			}
		}, "n"),
		// forever yields one item, then waits until it is released.
		"forever": func(ctx context.Context) iter.Seq2[int, error] {
			return func(yield func(int, error) bool) {
				defer close(released)
				if !yield(1, nil) {
					return
				}
				<-ctx.Done()
			}
		},
	}})
	u := func(rest string, q url.Values) string { return testserver.ServiceURL(s, "ws-user-root", rest, q) }
	sse := func(t *testing.T, url string) []string {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d, type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		b, _ := io.ReadAll(resp.Body)
		var events []string
		for ev := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n\n"), "\n\n") {
			events = append(events, ev)
		}
		return events
	}

	t.Run("server-sent events", func(t *testing.T) {
		got := sse(t, u("gen/count", url.Values{"n": {"3"}}))
		want := []string{`data: {"i":0}`, `data: {"i":1}`, `data: {"i":2}`, `data: [DONE]`}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("events (-want +got)\n%s", diff)
		}
	})
	t.Run("an error ends the stream", func(t *testing.T) {
		got := sse(t, u("gen/fail_after", url.Values{"n": {"1"}}))
		if len(got) != 3 || got[0] != "data: 0" || !strings.Contains(got[1], `"error"`) ||
			!strings.Contains(got[1], "producer broke") || got[2] != "data: [DONE]" {
			t.Errorf("events %q", got)
		}
	})
	t.Run("msgpack", func(t *testing.T) {
		body, _ := msgpack.Marshal(map[string]any{"n": 2})
		req, _ := http.NewRequest("POST", u("gen/count", nil), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/msgpack")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		dec := msgpack.NewDecoder(resp.Body)
		var items []any
		for {
			v, err := dec.DecodeInterface()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, v)
		}
		if len(items) != 2 || !cmp.Equal(items[1], map[string]any{"i": int8(1)}) {
			t.Errorf("items %#v", items)
		}
	})
	t.Run("the producer is released when the client goes away", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testserver.Ctx(t))
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", u("gen/forever", nil), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: 1\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		cancel() // the HTTP client goes away
		select {
		case <-released:
		case <-time.After(30 * time.Second):
			t.Fatal("the producer was not released after the HTTP client left")
		}
	})
}

// TestHostileHTTPCalls: keyword arguments do not open doors. Anonymous
// callers and callers holding a token of another workspace are still
// refused a protected service, by query string and by JSON body; a huge
// query string or one with too many parameters is refused before anything
// is called.
func TestHostileHTTPCalls(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	var ran atomic.Int64
	svc := helloService(&ran)
	svc.ID, svc.Config.Visibility = "private-hello", "protected"
	testserver.MustRegister(t, prov, svc)
	pub := helloService(&ran)
	testserver.MustRegister(t, prov, pub)
	if _, err := prov.Manager().Call(ctx, "create_workspace", map[string]any{"id": "other"}); err != nil {
		t.Fatal(err)
	}
	otherTok, err := prov.GenerateToken(ctx, rpc.TokenConfig{Workspace: "other", Permission: "read"})
	if err != nil {
		t.Fatal(err)
	}
	u := func(rest string, q url.Values) string { return testserver.ServiceURL(s, "ws-user-root", rest, q) }
	do := func(t *testing.T, method, url, auth, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, who, method, url, body string
	}{
		{"anonymous, query", "", "GET", u("private-hello/greet", url.Values{"name": {"x"}}), ""},
		{"anonymous, JSON", "", "POST", u("private-hello/greet", nil), `{"name": "x"}`},
		{"other workspace, query", otherTok, "GET", u("private-hello/greet", url.Values{"name": {"x"}}), ""},
		{"other workspace, JSON", otherTok, "POST", u("prov:private-hello/add", nil), `{"a": 1, "b": 2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, tc.url, tc.who, tc.body)
			if code != http.StatusNotFound || !strings.Contains(body, "Service not found") {
				t.Errorf("status %d, body %s; want 404 Service not found", code, body)
			}
			if ran.Load() != 0 {
				t.Errorf("the protected function ran")
			}
		})
	}

	t.Run("huge query string", func(t *testing.T) {
		q := "name=" + strings.Repeat("x", 2<<20)
		code, _ := do(t, "GET", u("hello/greet", nil)+"?"+q, "", "")
		if code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", code)
		}
		if ran.Load() != 0 {
			t.Errorf("the function ran")
		}
	})
	t.Run("too many query parameters", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("name=x")
		for i := range 20000 {
			fmt.Fprintf(&b, "&p%d=1", i)
		}
		code, body := do(t, "GET", u("hello/greet", nil)+"?"+b.String(), "", "")
		if code != http.StatusBadRequest || !strings.Contains(body, "query string") {
			t.Errorf("status %d, body %.200s; want 400 naming the query string", code, body)
		}
		if ran.Load() != 0 {
			t.Errorf("the function ran")
		}
	})
	// The public twin answers the same calls, so the refusals above are
	// about visibility, not about the arguments.
	if code, body := do(t, "GET", u("hello/greet", url.Values{"name": {"x"}}), otherTok, ""); code != 200 || body != `"hello, x"` {
		t.Errorf("public twin: status %d, body %s", code, body)
	}
}
