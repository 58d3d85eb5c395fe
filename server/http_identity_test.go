package server_test

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestHostileHTTPIdentity: an HTTP call acts from the caller's own
// workspace (the token's current workspace, else the user's own; anonymous
// users their anonymous workspace), never from the workspace of the service
// in the URL. Upstream placed the HTTP caller inside the service's
// workspace, so a public worker saw an anonymous caller as a member and
// listed, read and closed that workspace's sessions. Every HTTP service
// route is checked: list, info, GET call and POST call.
func TestHostileHTTPIdentity(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "prov")
	if _, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": "team"}); err != nil {
		t.Fatal(err)
	}
	teamTok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "team", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}

	// A naive worker: it trusts the stamped workspace to decide what the
	// caller may see or close (what the built-in workers do).
	var mu sync.Mutex
	var seenWS []string
	var closed atomic.Int64
	record := func(cc *rpc.CallContext) {
		mu.Lock()
		seenWS = append(seenWS, cc.WS)
		mu.Unlock()
	}
	naive := map[string]any{
		"who": func(cc *rpc.CallContext) map[string]any {
			record(cc)
			return map[string]any{"ws": cc.WS, "from": cc.From, "user": cc.User.ID}
		},
		"list_sessions": func(cc *rpc.CallContext) []string {
			record(cc)
			if cc.WS == "ws-user-root" {
				return []string{"ws-user-root/secret-session"}
			}
			return []string{}
		},
		"close_workspace": func(cc *rpc.CallContext) string {
			record(cc)
			if cc.WS == "ws-user-root" {
				closed.Add(1)
				return "closed"
			}
			return "nothing to close in " + cc.WS
		},
	}
	testserver.MustRegister(t, root, rpc.Service{ID: "worker", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: naive})
	testserver.MustRegister(t, root, rpc.Service{ID: "prot", Config: rpc.ServiceConfig{Visibility: "protected",
		AuthorizedWorkspaces: []string{"team"}}, Functions: naive})
	pubTok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "public", Permission: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	pub := testserver.Connect(t, s, rpc.Config{Token: pubTok, Workspace: "public", ClientID: "builtin-process-worker"})
	var starts atomic.Int64
	testserver.MustRegister(t, pub, rpc.Service{ID: "process-worker", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"start": rpc.Params(func(cc *rpc.CallContext, cfg map[string]any) (string, error) {
			record(cc)
			if cc.WS == "public" {
				starts.Add(1) // the worker would take this for the controller's workspace
			}
			return "refused for " + cc.WS, nil
		}, "config")}})

	const rootAuth = "Bearer " + testserver.RootToken
	teamAuth := "Bearer " + teamTok
	u := func(ws, rest string) string { return testserver.ServiceURL(s, ws, rest, nil) }
	anonWS := func(v any) string {
		ws, _ := v.(map[string]any)["ws"].(string)
		if !strings.HasPrefix(ws, "ws-user-anonymouz-") {
			return "the callee saw workspace " + ws + ", want the anonymous caller's own"
		}
		return ""
	}
	wsIs := func(want string) func(any) string {
		return func(v any) string {
			m, _ := v.(map[string]any)
			if m["ws"] != want || !strings.HasPrefix(m["from"].(string), want+"/http-") {
				return "the callee saw " + m["ws"].(string) + " / " + m["from"].(string) + ", want " + want
			}
			return ""
		}
	}
	is := func(want any) func(any) string {
		return func(v any) string {
			if d := cmp.Diff(want, v); d != "" {
				return d
			}
			return ""
		}
	}
	noAuthorizedList := func(v any) string {
		cfg, _ := v.(map[string]any)["config"].(map[string]any)
		if _, ok := cfg["authorized_workspaces"]; ok {
			return "authorized_workspaces shown to a caller admitted through it"
		}
		return ""
	}
	for _, tc := range []struct {
		name, method, url, auth, body string
		wantCode                      int
		check                         func(any) string
	}{
		{"anonymous GET who", "GET", u("ws-user-root", "prov:worker/who"), "", "", 200, anonWS},
		{"anonymous POST who", "POST", u("ws-user-root", "prov:worker/who"), "", "{}", 200, anonWS},
		{"anonymous list_sessions", "GET", u("ws-user-root", "prov:worker/list_sessions"), "", "", 200, is([]any{})},
		{"anonymous close_workspace", "POST", u("ws-user-root", "prov:worker/close_workspace"), "", "{}", 200,
			func(v any) string {
				if s, _ := v.(string); !strings.HasPrefix(s, "nothing to close in ws-user-anonymouz-") {
					return "closed as a member"
				}
				return ""
			}},
		{"anonymous start on the public process worker", "POST", u("public", "builtin-process-worker:process-worker/start"), "",
			`{"config": {"app_files_base_url": "http://attacker.invalid"}}`, 200,
			func(v any) string {
				if s, _ := v.(string); !strings.HasPrefix(s, "refused for ws-user-anonymouz-") {
					return "the worker saw the caller in public"
				}
				return ""
			}},
		{"team token GET who", "GET", u("ws-user-root", "prov:worker/who"), teamAuth, "", 200, wsIs("team")},
		{"team token: protected service authorized for team", "GET", u("ws-user-root", "prov:prot/who"), teamAuth, "", 200, wsIs("team")},
		{"anonymous: protected service", "GET", u("ws-user-root", "prov:prot/who"), "", "", 404, detailCheck},
		{"anonymous: protected service, POST", "POST", u("ws-user-root", "prov:prot/close_workspace"), "", "{}", 404, detailCheck},
		{"root token GET who (a member)", "GET", u("ws-user-root", "prov:worker/who"), rootAuth, "", 200, wsIs("ws-user-root")},
		{"anonymous list", "GET", s.URL() + "/ws-user-root/services", "", "", 200,
			listCheck([]string{"prov:worker"}, []string{"prov:prot"})},
		{"team token list", "GET", s.URL() + "/ws-user-root/services", teamAuth, "", 200,
			func(v any) string {
				if m := listCheck([]string{"prov:worker", "prov:prot"}, nil)(v); m != "" {
					return m
				}
				for _, e := range v.([]any) {
					if e.(map[string]any)["id"] == "prov:prot" {
						return noAuthorizedList(e)
					}
				}
				return ""
			}},
		{"anonymous info of a protected service", "GET", u("ws-user-root", "prov:prot"), "", "", 404, detailCheck},
		{"team token info of an authorized service", "GET", u("ws-user-root", "prov:prot"), teamAuth, "", 200, noAuthorizedList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			code, v := testserver.HTTPGetJSON(t, req)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d (body %v)", code, tc.wantCode, v)
			}
			if msg := tc.check(v); msg != "" {
				t.Errorf("%s: %v", msg, v)
			}
		})
	}
	if n := closed.Load(); n != 0 {
		t.Errorf("close_workspace ran as a member of ws-user-root %d times", n)
	}
	if n := starts.Load(); n != 0 {
		t.Errorf("start ran as a member of public %d times", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ws := range seenWS {
		if ws == "public" {
			t.Errorf("a callee saw an HTTP caller in workspace public: %v", seenWS)
		}
	}
}
