package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// pngBytes is the start of a PNG file: enough for MIME sniffing.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")

// bearer adds an Authorization header to every request.
type bearer struct {
	tok  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.tok != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.tok)
	}
	return b.next.RoundTrip(r)
}

// mcpURL is the MCP endpoint of service sid in workspace ws.
func mcpURL(s *server.Server, ws, sid string) string {
	return s.URL() + "/" + ws + "/mcp/" + sid + "/mcp"
}

// mcpConnect opens an MCP session (Go SDK client, streamable HTTP) with
// token tok ("" for anonymous); the session is closed when the test ends.
func mcpConnect(t *testing.T, ctx context.Context, endpoint, tok string) (*mcp.ClientSession, error) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearer{tok, tr}}, MaxRetries: -1}, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs, nil
}

// mcpService registers the service the MCP tests call.
func mcpService(t *testing.T, c *rpc.Client, id, visibility string, authorized ...string) {
	t.Helper()
	testserver.MustRegister(t, c, rpc.Service{ID: id, Name: "Calculator", Description: "adds numbers",
		Config: rpc.ServiceConfig{Visibility: visibility, AuthorizedWorkspaces: authorized},
		Functions: map[string]any{
			"add": rpc.Doc(rpc.Params(func(a, b int) int { return a + b }, "a", "b"), "Add two integers."),
			"who": rpc.Params(func(cc *rpc.CallContext) map[string]any {
				return map[string]any{"ws": cc.WS, "user": cc.User.ID}
			}),
			"fail":  rpc.Params(func(msg string) (string, error) { return "", errors.New(msg) }, "msg"),
			"png":   rpc.Params(func() []byte { return pngBytes }),
			"greet": rpc.Params(func(name string) string { return "Hello, " + name + "!" }, "name"),
			"math":  map[string]any{"neg": rpc.Params(func(x float64) float64 { return -x }, "x")},
		}})
}

func toolText(r *mcp.CallToolResult) string {
	var sb strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String()
}

// TestMCPServeTools: a Go MCP client lists the tools of a service
// registered by the Go rpc client (names, descriptions, schemas) and calls
// them: values as structured content and JSON text, a tool error with the
// remote message, bytes as an image with its MIME type, nested functions by
// their dotted path.
func TestMCPServeTools(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "prov")
	mcpService(t, root, "calc", "public")
	cs, err := mcpConnect(t, ctx, mcpURL(s, "ws-user-root", "calc"), testserver.RootToken)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.InitializeResult().ServerInfo.Name; got != "Calculator" {
		t.Errorf("server name %q", got)
	}
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var add *mcp.Tool
	for _, tl := range lt.Tools {
		names = append(names, tl.Name)
		if tl.Name == "add" {
			add = tl
		}
	}
	if d := cmp.Diff([]string{"add", "fail", "greet", "math.neg", "png", "who"}, names); d != "" {
		t.Fatalf("tools (-want +got):\n%s", d)
	}
	if add.Description != "Add two integers." {
		t.Errorf("add description %q", add.Description)
	}
	schema, _ := json.Marshal(add.InputSchema)
	var sm map[string]any
	_ = json.Unmarshal(schema, &sm)
	if d := cmp.Diff(map[string]any{"type": "object", "required": []any{"a", "b"}, "properties": map[string]any{
		"a": map[string]any{"type": "integer", "description": ""}, "b": map[string]any{"type": "integer", "description": ""}}}, sm); d != "" {
		t.Errorf("add schema (-want +got):\n%s", d)
	}

	call := func(name string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	r := call("add", map[string]any{"a": 2, "b": 40})
	if r.IsError || toolText(r) != "42" || !cmp.Equal(r.StructuredContent, map[string]any{"result": float64(42)}) {
		t.Errorf("add: error %v, text %q, structured %v", r.IsError, toolText(r), r.StructuredContent)
	}
	r = call("greet", map[string]any{"name": "Ada"})
	if toolText(r) != "Hello, Ada!" {
		t.Errorf("greet: %q", toolText(r))
	}
	r = call("math.neg", map[string]any{"x": 1.5})
	if toolText(r) != "-1.5" {
		t.Errorf("math.neg: %q", toolText(r))
	}
	r = call("who", nil)
	m, _ := r.StructuredContent.(map[string]any)
	if r.IsError || m["ws"] != "ws-user-root" || m["user"] != "root" {
		t.Errorf("who: %v %q", r.StructuredContent, toolText(r))
	}
	r = call("fail", map[string]any{"msg": "the disk is on fire"})
	if !r.IsError || !strings.Contains(toolText(r), "the disk is on fire") {
		t.Errorf("fail: error %v, text %q", r.IsError, toolText(r))
	}
	r = call("add", map[string]any{"a": 1})
	if !r.IsError || !strings.Contains(toolText(r), "b") {
		t.Errorf("add without b: error %v, text %q", r.IsError, toolText(r))
	}
	r = call("png", nil)
	img, ok := r.Content[0].(*mcp.ImageContent)
	if r.IsError || !ok || img.MIMEType != "image/png" || !bytes.Equal(img.Data, pngBytes) {
		t.Errorf("png: %#v", r.Content[0])
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "nope"}); err == nil {
		t.Error("an unknown tool was called")
	}

	// The info page lists the same tools, with the same rules.
	req, _ := http.NewRequest("GET", s.URL()+"/ws-user-root/mcp/calc", nil)
	code, v := testserver.HTTPGetJSON(t, req)
	if code != http.StatusOK || at(v, "endpoints", "streamable_http") != "/ws-user-root/mcp/calc/mcp" ||
		len(at(v, "capabilities", "tools").([]any)) != 6 || at(v, "capabilities", "tools", 0, "name") != "add" {
		t.Errorf("info: %d %v", code, v)
	}
}

// at walks a decoded JSON value by keys and indexes.
func at(v any, path ...any) any {
	for _, k := range path {
		switch key := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[key]
		case int:
			l, _ := v.([]any)
			if key >= len(l) {
				return nil
			}
			v = l[key]
		}
	}
	return v
}

// TestMCPServeSchemaless: a function sent without a schema (as a
// JavaScript or Python client sends an undecorated function; here a raw
// hypha-rpc client answering get_service itself) is a tool with a permissive
// object schema.
func TestMCPServeSchemaless(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	raw := anonRaw(t, s, "rawprov")
	if _, err := raw.CallManager(ctx, "register_service", map[string]any{"id": raw.ID + ":plain", "name": "plain",
		"type": "generic", "config": map[string]any{"visibility": "public"}, "service_schema": map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			fr, err := raw.Read(context.Background())
			if err != nil {
				return // the connection closed at the end of the test
			}
			if fr.Main["method"] != "services.built-in.get_service" {
				continue
			}
			from, _ := fr.Main["from"].(string)
			sid, _ := fr.Main["session"].(string)
			svc := map[string]any{"id": "plain", "name": "plain", "type": "generic", "config": map[string]any{"visibility": "public"},
				"echo": map[string]any{"_rtype": "method", "_rtarget": raw.Workspace() + "/rawprov", "_rmethod": "services.plain.echo", "_rpromise": "*"}}
			_ = raw.Send(map[string]any{"type": "method", "to": from, "method": sid + ".resolve"}, map[string]any{"args": []any{svc}})
		}
	}()
	cs, err := mcpConnect(t, ctx, mcpURL(s, raw.Workspace(), "rawprov:plain"), "")
	if err != nil {
		t.Fatal(err)
	}
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.Tools) != 1 || lt.Tools[0].Name != "echo" {
		t.Fatalf("tools %v", lt.Tools)
	}
	b, _ := json.Marshal(lt.Tools[0].InputSchema)
	if string(b) != `{"additionalProperties":true,"type":"object"}` {
		t.Errorf("schema %s", b)
	}
}

// TestHostileMCPServe: the MCP endpoint applies the rules of the HTTP
// service-call route: a protected service is refused to an anonymous caller
// and to another workspace's token (as not found), is callable with a token
// of an authorized workspace; a public one is callable anonymously, and the
// callee sees each caller in its own workspace; a read-only token gets what
// the HTTP route gives it; a session cannot be used by another caller.
func TestHostileMCPServe(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "prov")
	for _, ws := range []string{"team", "other"} {
		if _, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": ws}); err != nil {
			t.Fatal(err)
		}
	}
	tok := func(ws, perm string) string {
		x, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: ws, Permission: perm})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	teamTok, otherTok, readTok := tok("team", "read_write"), tok("other", "read_write"), tok("team", "read")
	mcpService(t, root, "prot", "protected", "team")
	mcpService(t, root, "pub", "public")

	for _, tc := range []struct {
		name, sid, tok string
		wantWS         string // "" when refused; "anon" for the anonymous caller's own
	}{
		{"anonymous, protected", "prot", "", ""},
		{"other workspace, protected", "prot", otherTok, ""},
		{"team, protected", "prot", teamTok, "team"},
		{"read-only team token, protected", "prot", readTok, "team"},
		{"anonymous, public", "pub", "", "anon"},
		{"other workspace, public", "pub", otherTok, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The HTTP route's answer for the same caller.
			req, _ := http.NewRequest("POST", testserver.ServiceURL(s, "ws-user-root", "prov:"+tc.sid+"/who", nil), strings.NewReader("{}"))
			if tc.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tc.tok)
			}
			code, httpRes := testserver.HTTPGetJSON(t, req)

			cs, err := mcpConnect(t, ctx, mcpURL(s, "ws-user-root", "prov:"+tc.sid), tc.tok)
			info, _ := http.NewRequest("GET", s.URL()+"/ws-user-root/mcp/prov:"+tc.sid, nil)
			if tc.tok != "" {
				info.Header.Set("Authorization", "Bearer "+tc.tok)
			}
			infoCode, infoV := testserver.HTTPGetJSON(t, info)
			if tc.wantWS == "" {
				if err == nil || !strings.Contains(err.Error(), "Not Found") {
					t.Fatalf("connected (err %v)", err)
				}
				if infoCode != http.StatusNotFound || !strings.Contains(fmt.Sprint(infoV), "Service not found") {
					t.Errorf("info page: %d %v", infoCode, infoV)
				}
				if code != http.StatusNotFound {
					t.Fatalf("the HTTP route answered %d %v", code, httpRes)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "who"})
			if err != nil || r.IsError {
				t.Fatalf("who: %v %q", err, toolText(r))
			}
			m := r.StructuredContent.(map[string]any)
			ws, _ := m["ws"].(string)
			if tc.wantWS == "anon" && !strings.HasPrefix(ws, "ws-user-anonymouz-") || tc.wantWS != "anon" && ws != tc.wantWS {
				t.Errorf("the callee saw workspace %q", ws)
			}
			if code != http.StatusOK || httpRes.(map[string]any)["ws"] != m["ws"] && tc.wantWS != "anon" {
				t.Errorf("the HTTP route answered %d %v; MCP %v", code, httpRes, m)
			}
		})
	}

	// Another caller presenting a session id it did not open is refused.
	cs, err := mcpConnect(t, ctx, mcpURL(s, "ws-user-root", "prov:prot"), teamTok)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"who","arguments":{}}}`
	for _, who := range []string{"", otherTok} {
		req, _ := http.NewRequest("POST", mcpURL(s, "ws-user-root", "prov:pub"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", cs.ID())
		if who != "" {
			req.Header.Set("Authorization", "Bearer "+who)
		}
		code, v := testserver.HTTPGetJSON(t, req)
		if code != http.StatusNotFound || !strings.Contains(fmt.Sprint(v), "session not found") {
			t.Errorf("another caller used the session: %d %v", code, v)
		}
	}
}

// TestHostileMCPServeMalformed: a body that is not JSON-RPC gets a JSON-RPC
// error saying what is wrong; an oversized one is refused.
func TestHostileMCPServeMalformed(t *testing.T) {
	s := testserver.Start(t, server.Config{MaxHTTPBodyBytes: 4096})
	root := testserver.RootClient(t, s, "prov")
	mcpService(t, root, "pub", "public")
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"not JSON", `{"jsonrpc": "2.0", "method":`, 400, "not JSON"},
		{"not JSON-RPC", `{"hello": "world"}`, 400, `"jsonrpc" must be "2.0"`},
		{"no method", `{"jsonrpc": "2.0", "id": 1}`, 400, `no "method"`},
		{"empty", ``, 400, "empty request body"},
		{"too large", `{"jsonrpc":"2.0","method":"x","params":{"pad":"` + strings.Repeat("x", 5000) + `"}}`, 413, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", mcpURL(s, "ws-user-root", "prov:pub"), strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var v struct {
				JSONRPC string `json:"jsonrpc"`
				Error   struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if resp.StatusCode != tc.code || json.Unmarshal(b, &v) != nil || v.JSONRPC != "2.0" || !strings.Contains(v.Error.Message, tc.msg) {
				t.Errorf("status %d, body %s", resp.StatusCode, b)
			}
		})
	}
}

// TestHostileMCPServeSessionBound: one caller opens at most
// MaxMCPSessionsPerCaller sessions (anonymous callers per address, other
// users apart); closing one frees its slot, and so does expiry when idle.
func TestHostileMCPServeSessionBound(t *testing.T) {
	s := testserver.Start(t, server.Config{MaxMCPSessionsPerCaller: 2})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "prov")
	mcpService(t, root, "pub", "public")
	u := mcpURL(s, "ws-user-root", "prov:pub")
	a, err := mcpConnect(t, ctx, u, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mcpConnect(t, ctx, u, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := mcpConnect(t, ctx, u, ""); err == nil || !strings.Contains(err.Error(), "Too Many Requests") {
		t.Fatalf("a third anonymous session: %v", err)
	}
	req, _ := http.NewRequest("POST", u, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if code, v := testserver.HTTPGetJSON(t, req); code != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(v), "too many MCP sessions for this caller (at most 2 open)") {
		t.Errorf("a third anonymous session, raw: %d %v", code, v)
	}
	// Another user is bounded apart.
	if _, err := mcpConnect(t, ctx, u, testserver.RootToken); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the closed session's slot", func() bool {
		_, err := mcpConnect(t, ctx, u, "")
		return err == nil
	})

	// Idle sessions expire (after 1 s here), which frees their slots.
	s2 := testserver.Start(t, server.Config{MaxMCPSessionsPerCaller: 1, MCPSessionIdleTimeout: time.Second})
	mcpService(t, testserver.RootClient(t, s2, "prov"), "pub", "public")
	u2 := mcpURL(s2, "ws-user-root", "prov:pub")
	if _, err := mcpConnect(t, ctx, u2, ""); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the idle session's slot", func() bool {
		_, err := mcpConnect(t, ctx, u2, "")
		return err == nil
	})
}

// TestMCPServeMCPTypeService: a service of type "mcp" (the shape an MCP
// proxy registers) offers its `tools` map under their own names, its
// `resources` and `prompts` as MCP resources and prompts, and its docs as
// resource://docs; a generator's items come back as a list.
func TestMCPServeMCPTypeService(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "prov")
	testserver.MustRegister(t, root, rpc.Service{ID: "remote", Type: "mcp", Docs: "How to use the remote server.",
		Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{
			"tools": map[string]any{
				"echo": rpc.Params(func(text string) string { return text }, "text"),
				"count": rpc.Params(func(n int) iter.Seq2[int, error] {
					return func(yield func(int, error) bool) {
						for i := range n {
							if !yield(i, nil) {
								return
							}
						}
					}
				}, "n"),
			},
			"resources": map[string]any{
				"readme": map[string]any{"uri": "file:///readme.md", "name": "README", "description": "the readme",
					"mimeType": "text/markdown", "read": rpc.Params(func() string { return "# Remote" })},
			},
			"prompts": map[string]any{
				"greet": map[string]any{"name": "greet", "description": "a greeting",
					"read": rpc.Params(func(name string) map[string]any {
						return map[string]any{"description": "greeting", "messages": []any{
							map[string]any{"role": "user", "content": map[string]any{"type": "text", "text": "Say hello to " + name}}}}
					}, "name")},
			},
		}})
	cs, err := mcpConnect(t, ctx, mcpURL(s, "ws-user-root", "prov:remote"), "")
	if err != nil {
		t.Fatal(err)
	}
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range lt.Tools {
		names = append(names, tl.Name)
	}
	if d := cmp.Diff([]string{"count", "echo"}, names); d != "" {
		t.Fatalf("tools (-want +got):\n%s", d)
	}
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "count", Arguments: map[string]any{"n": 3}})
	if err != nil || r.IsError || toolText(r) != "[0,1,2]" {
		t.Fatalf("count: %v %q", err, toolText(r))
	}
	lr, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, res := range lr.Resources {
		uris = append(uris, res.URI+" "+res.MIMEType)
	}
	if d := cmp.Diff([]string{"file:///readme.md text/markdown", "resource://docs text/plain"}, uris); d != "" {
		t.Errorf("resources (-want +got):\n%s", d)
	}
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///readme.md"})
	if err != nil || len(rr.Contents) != 1 || rr.Contents[0].Text != "# Remote" {
		t.Errorf("read readme: %v %+v", err, rr)
	}
	rr, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "resource://docs"})
	if err != nil || rr.Contents[0].Text != "How to use the remote server." {
		t.Errorf("read docs: %v %+v", err, rr)
	}
	lp, err := cs.ListPrompts(ctx, nil)
	if err != nil || len(lp.Prompts) != 1 || lp.Prompts[0].Name != "greet" || len(lp.Prompts[0].Arguments) != 1 ||
		lp.Prompts[0].Arguments[0].Name != "name" || !lp.Prompts[0].Arguments[0].Required {
		t.Fatalf("prompts: %v %+v", err, lp)
	}
	gp, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"name": "Ada"}})
	if err != nil || len(gp.Messages) != 1 || gp.Messages[0].Content.(*mcp.TextContent).Text != "Say hello to Ada" {
		t.Errorf("get prompt: %v %+v", err, gp)
	}
}

// TestHostileMCPServeRevokedMidSession: a session grants nothing by itself:
// once its token is revoked, the next tool call of the open session fails.
func TestHostileMCPServeRevokedMidSession(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "prov")
	if _, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": "team"}); err != nil {
		t.Fatal(err)
	}
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "team", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	mcpService(t, root, "prot", "protected", "team")
	cs, err := mcpConnect(t, ctx, mcpURL(s, "ws-user-root", "prov:prot"), tok)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "who"}); err != nil || r.IsError {
		t.Fatalf("who before the revocation: %v %q", err, toolText(r))
	}
	if _, err := rootRaw(t, s, "revoker").CallManager(ctx, "revoke_token", tok); err != nil {
		t.Fatal(err)
	}
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "who"})
	if err == nil && !r.IsError {
		t.Fatalf("who after the revocation: %v", r.StructuredContent)
	}
}

// TestMCPServeBehindProxy: a request through a reverse proxy on the same
// machine (another Host header on a loopback connection) is served, as on
// the HTTP routes.
func TestMCPServeBehindProxy(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	root := testserver.RootClient(t, s, "prov")
	mcpService(t, root, "pub", "public")
	req, _ := http.NewRequest("POST", mcpURL(s, "ws-user-root", "prov:pub"), strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	req.Host = "hypha.example.org"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	code, v := testserver.HTTPGetJSON(t, req)
	if code != http.StatusOK || at(v, "result", "serverInfo", "name") != "Calculator" {
		t.Fatalf("initialize through a proxy: %d %v", code, v)
	}
}

// BenchmarkMCPToolCall measures one tool call through the MCP endpoint
// (Go SDK client, one open session, root token): HTTP request, caller
// authentication, service lookup and fetch as the caller, the RPC call.
func BenchmarkMCPToolCall(b *testing.B) {
	s := testserver.Start(b, server.Config{})
	root := testserver.RootClient(b, s, "prov")
	testserver.MustRegister(b, root, rpc.Service{ID: "calc", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"add": rpc.Params(func(a, b int) int { return a + b }, "a", "b")}})
	ctx := context.Background()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL(s, "ws-user-root", "calc"),
		HTTPClient: &http.Client{Transport: bearer{testserver.RootToken, tr}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	args := map[string]any{"a": 1, "b": 2}
	for b.Loop() {
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: args})
		if err != nil || r.IsError {
			b.Fatalf("%v %v", err, r)
		}
	}
}
