package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestHTTPEndpoints covers health checks, service listing and HTTP calls
// of service functions (GET query parameters, POST JSON kwargs and
// positional arguments), with and without a Bearer token.
func TestHTTPEndpoints(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	prov := testserver.RootClient(t, s, "prov")
	testserver.MustRegister(t, prov, rpc.Service{ID: "calc", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: map[string]any{
		"add": rpc.Params(func(a, b int) int { return a + b }, "a", "b"),
		"echo_kw": rpc.HandlerFunc(func(_ context.Context, c *rpc.Call) (any, error) {
			return map[string]any{"args": c.Args, "kwargs": c.Kwargs}, nil
		}),
		"who":     func(cc *rpc.CallContext) string { return cc.User.ID },
		"fail":    func() error { return errFail },
		"version": "1.2",
		"ns":      map[string]any{"twice": rpc.Params(func(s string) string { return s + s }, "s")},
	}})
	testserver.MustRegister(t, prov, rpc.Service{ID: "secret", Config: rpc.ServiceConfig{Visibility: "protected"}, Functions: map[string]any{
		"get": func() string { return "s3cret" },
	}})
	const root = "Bearer " + testserver.RootToken
	svcURL := func(rest string, q url.Values) string { return testserver.ServiceURL(s, "ws-user-root", rest, q) }
	for _, tc := range []struct {
		name     string
		method   string
		url      string
		auth     string
		body     string
		wantCode int
		want     any                // exact JSON value, when check is nil
		check    func(v any) string // "" if fine
	}{
		{name: "readiness", method: "GET", url: s.URL() + "/health/readiness", wantCode: 200, want: map[string]any{"status": "OK"}},
		{name: "liveness", method: "GET", url: s.URL() + "/health/liveness", wantCode: 200, want: map[string]any{"status": "OK"}},
		{name: "list, anonymous: public only", method: "GET", url: s.URL() + "/ws-user-root/services", wantCode: 200,
			check: listCheck([]string{"prov:calc"}, []string{"prov:secret"})},
		{name: "list, root", method: "GET", url: s.URL() + "/ws-user-root/services", auth: root, wantCode: 200,
			check: listCheck([]string{"prov:calc", "prov:secret"}, nil)},
		{name: "service info", method: "GET", url: svcURL("prov:calc", nil), wantCode: 200,
			check: func(v any) string {
				if m, _ := v.(map[string]any); m["id"] != "ws-user-root/prov:calc" {
					return "wrong info"
				}
				return ""
			}},
		{name: "GET with query kwargs", method: "GET", url: svcURL("prov:calc/add", url.Values{"a": {"2"}, "b": {"3"}}), wantCode: 200, want: 5.0},
		{name: "GET by short service id", method: "GET", url: svcURL("calc/add", url.Values{"a": {"2"}, "b": {"40"}}), wantCode: 200, want: 42.0},
		{name: "POST JSON kwargs", method: "POST", url: svcURL("prov:calc/add", nil), body: `{"a": 2, "b": 3}`, wantCode: 200, want: 5.0},
		{name: "POST JSON positional", method: "POST", url: svcURL("prov:calc/add", nil), body: `[20, 3]`, wantCode: 200, want: 23.0},
		{name: "POST dotted function", method: "POST", url: svcURL("prov:calc/ns.twice", nil), body: `{"s": "ab"}`, wantCode: 200, want: "abab"},
		{name: "query values are typed", method: "GET",
			url:      svcURL("prov:calc/echo_kw", url.Values{"i": {"1"}, "s": {"hi"}, "f": {"1.5"}, "t": {"true"}, "j": {`{"k":[1,"x"]}`}}),
			wantCode: 200, want: map[string]any{"args": []any{}, "kwargs": map[string]any{"i": 1.0, "s": "hi", "f": 1.5, "t": true,
				"j": map[string]any{"k": []any{1.0, "x"}}}}},
		{name: "value member", method: "GET", url: svcURL("prov:calc/version", nil), wantCode: 200, want: "1.2"},
		{name: "context of an anonymous HTTP caller", method: "GET", url: svcURL("prov:calc/who", nil), wantCode: 200,
			check: func(v any) string {
				if s, _ := v.(string); !strings.HasPrefix(s, "anonymouz-") {
					return "handler saw user " + s + ", want the anonymous HTTP user"
				}
				return ""
			}},
		{name: "context of a root HTTP caller", method: "GET", url: svcURL("prov:calc/who", nil), auth: root, wantCode: 200, want: "root"},
		{name: "protected without token", method: "GET", url: svcURL("prov:secret/get", nil), wantCode: 404, check: detailCheck},
		{name: "protected with token", method: "GET", url: svcURL("prov:secret/get", nil), auth: root, wantCode: 200, want: "s3cret"},
		{name: "protected, POST without token", method: "POST", url: svcURL("prov:secret/get", nil), body: `{}`, wantCode: 404, check: detailCheck},
		{name: "unknown function", method: "GET", url: svcURL("prov:calc/nope", nil), wantCode: 404, check: detailCheck},
		{name: "unknown service", method: "GET", url: svcURL("prov:nope/x", nil), wantCode: 404, check: detailCheck},
		{name: "remote error", method: "GET", url: svcURL("prov:calc/fail", nil), wantCode: 500, check: func(v any) string {
			if d, _ := v.(map[string]any)["detail"].(string); !strings.Contains(d, errFail.Error()) {
				return "detail does not carry the error"
			}
			return ""
		}},
		{name: "bad JSON body", method: "POST", url: svcURL("prov:calc/add", nil), body: `{"a":`, wantCode: 400, check: detailCheck},
		{name: "bad token", method: "GET", url: svcURL("prov:calc/add", nil), auth: "Bearer not-a-token", wantCode: 401, check: detailCheck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			code, v := testserver.HTTPGetJSON(t, req)
			if code != tc.wantCode {
				t.Errorf("status %d, want %d (body %v)", code, tc.wantCode, v)
			}
			if tc.check != nil {
				if msg := tc.check(v); msg != "" {
					t.Errorf("%s: %v", msg, v)
				}
				return
			}
			if diff := cmp.Diff(tc.want, v); diff != "" {
				t.Errorf("body (-want +got)\n%s", diff)
			}
		})
	}
}

type httpErr string

func (e httpErr) Error() string { return string(e) }

const errFail = httpErr("deliberate failure")

func detailCheck(v any) string {
	m, _ := v.(map[string]any)
	if d, _ := m["detail"].(string); d == "" {
		return "no JSON detail"
	}
	return ""
}

func listCheck(want, notWant []string) func(any) string {
	return func(v any) string {
		l, _ := v.([]any)
		var ids []string
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				ids = append(ids, m["id"].(string))
			}
		}
		for _, w := range want {
			if !slices.Contains(ids, w) {
				return "missing " + w
			}
		}
		for _, w := range notWant {
			if slices.Contains(ids, w) {
				return "lists " + w
			}
		}
		return ""
	}
}
