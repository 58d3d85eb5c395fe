package interop

// Hypha services as MCP servers (docs/mcp.md) seen from the npm MCP SDK
// (@modelcontextprotocol/sdk, pinned in interop/js/package-lock.json): its
// client connects over streamable HTTP to the embedded server's MCP endpoint.

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
)

var mcpPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")

// mcpNode runs interop/js/mcp_client.mjs against endpoint and returns its RESULT.
func mcpNode(t *testing.T, endpoint string, args map[string]any) map[string]any {
	t.Helper()
	node, dir := needJS(t)
	return startProc(t, "mcp client", jsTimeout, false, dir, node, "mcp_client.mjs", endpoint, mustJSON(args)).mustResult()
}

// TestJSMCPClientServe: the npm MCP client lists the tools of a service
// registered by the Go client (names, schemas) and calls them: a value as
// structured content and JSON text, a tool error with the remote message,
// bytes as an image with its MIME type, and the callee sees the caller (root
// with its token, an anonymous caller in its own workspace). The tools of a
// service registered by the npm hypha-rpc client, whose functions carry no
// schema, have a permissive object schema.
func TestJSMCPClientServe(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	root := goConnect(t, s.URL(), rpc.Config{Token: testserver.RootToken, ClientID: "prov"})
	testserver.MustRegister(t, root, rpc.Service{ID: "calc", Name: "Calculator", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{
			"add":  rpc.Doc(rpc.Params(func(a, b int) int { return a + b }, "a", "b"), "Add two integers."),
			"fail": rpc.Params(func(msg string) (string, error) { return "", &rpc.RemoteError{Message: msg} }, "msg"),
			"png":  rpc.Params(func() []byte { return mcpPNG }),
			"who":  rpc.Params(func(cc *rpc.CallContext) map[string]any { return map[string]any{"ws": cc.WS, "user": cc.User.ID} }),
		}})
	endpoint := s.URL() + "/ws-user-root/mcp/prov:calc/mcp"
	calls := []any{
		map[string]any{"name": "add", "arguments": map[string]any{"a": 2, "b": 40}},
		map[string]any{"name": "fail", "arguments": map[string]any{"msg": "the disk is on fire"}},
		map[string]any{"name": "png"},
		map[string]any{"name": "who"},
	}
	r := mcpNode(t, endpoint, map[string]any{"token": testserver.RootToken, "calls": calls})
	expect(t, "server name", at(r, "server", "name"), "Calculator")
	var names []string
	for _, tl := range at(r, "tools").([]any) {
		names = append(names, str(tl.(map[string]any), "name"))
	}
	expect(t, "tools", names, []string{"add", "fail", "png", "who"})
	expect(t, "add schema", mustJSON(at(r, "tools", 0, "inputSchema")),
		`{"properties":{"a":{"description":"","type":"integer"},"b":{"description":"","type":"integer"}},"required":["a","b"],"type":"object"}`)
	expect(t, "add description", at(r, "tools", 0, "description"), "Add two integers.")
	expect(t, "add structured", mustJSON(at(r, "calls", 0, "structuredContent")), `{"result":42}`)
	expect(t, "add text", at(r, "calls", 0, "content", 0, "text"), "42")
	expect(t, "fail isError", at(r, "calls", 1, "isError"), true)
	expectContains(t, "fail message", str(at(r, "calls", 1, "content", 0).(map[string]any), "text"), "the disk is on fire")
	expect(t, "png content", []any{at(r, "calls", 2, "content", 0, "type"), at(r, "calls", 2, "content", 0, "mimeType"),
		at(r, "calls", 2, "content", 0, "data")}, []any{"image", "image/png", base64.StdEncoding.EncodeToString(mcpPNG)})
	expect(t, "who (root)", mustJSON(at(r, "calls", 3, "structuredContent")), `{"user":"root","ws":"ws-user-root"}`)

	r = mcpNode(t, endpoint, map[string]any{"calls": []any{map[string]any{"name": "who"}}})
	if ws, _ := at(r, "calls", 0, "structuredContent", "ws").(string); !strings.HasPrefix(ws, "ws-user-anonymouz-") {
		t.Errorf("anonymous who: the callee saw %q", ws)
	}

	// A service of the npm hypha-rpc client: no schemas.
	serve, ready := jsServe(t, s.URL(), map[string]any{"client_id": "js-mcp", "service_id": "js-svc"})
	sid := str(ready, "service_id")
	ws, _, _ := strings.Cut(sid, "/")
	r = mcpNode(t, s.URL()+"/"+ws+"/mcp/js-mcp:js-svc/mcp", map[string]any{})
	found := false
	for _, tl := range at(r, "tools").([]any) {
		m := tl.(map[string]any)
		if m["name"] == "add" {
			found = true
			expect(t, "js add schema", mustJSON(m["inputSchema"]), `{"additionalProperties":true,"type":"object"}`)
		}
	}
	if !found {
		t.Errorf("no add tool in %v%s", at(r, "tools"), serve.diag())
	}
}
