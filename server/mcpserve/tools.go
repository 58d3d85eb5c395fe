package mcpserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/rpc"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// validJSONRPC checks that body is a JSON-RPC 2.0 message (or a batch of
// them) before the SDK sees it, so a malformed body gets an error saying
// what is wrong.
func validJSONRPC(body []byte) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return errors.New("empty request body: expected a JSON-RPC 2.0 message")
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("request body is not JSON: %w", err)
	}
	msgs, ok := v.([]any)
	if !ok {
		msgs = []any{v}
	}
	if len(msgs) == 0 {
		return errors.New("empty JSON-RPC batch")
	}
	for _, m := range msgs {
		o, ok := m.(map[string]any)
		if !ok {
			return fmt.Errorf("a JSON-RPC message must be an object, got %T", m)
		}
		if o["jsonrpc"] != "2.0" {
			return errors.New(`not a JSON-RPC 2.0 message: "jsonrpc" must be "2.0"`)
		}
		_, hasMethod := o["method"].(string)
		_, hasResult := o["result"]
		_, hasError := o["error"]
		if !hasMethod && !hasResult && !hasError {
			return errors.New(`not a JSON-RPC 2.0 message: no "method" (or "result"/"error" for a response)`)
		}
	}
	return nil
}

// metaKeys are the members of a service that describe it rather than
// being callable (they never become tools).
var metaKeys = map[string]bool{"id": true, "name": true, "type": true, "config": true, "description": true,
	"docs": true, "app_id": true, "service_schema": true}

// tool is one function of the service offered as an MCP tool.
type tool struct {
	name string
	path []string // member path in the service
	fn   *rpc.RemoteFunc
}

// collectTools lists the functions of svc: nested ones are named by their
// dotted path ("math.add"), as the HTTP route addresses them. A service of
// type "mcp" (what the MCP proxy registers) keeps the names of its `tools`
// map, as upstream does.
func collectTools(svc map[string]any) []tool {
	var out []tool
	var walk func(m map[string]any, path []string)
	walk = func(m map[string]any, path []string) {
		for k, v := range m {
			if strings.HasPrefix(k, "_") || (len(path) == 0 && metaKeys[k]) {
				continue
			}
			p := append(append([]string(nil), path...), k)
			switch x := v.(type) {
			case *rpc.RemoteFunc:
				out = append(out, tool{name: strings.Join(p, "."), path: p, fn: x})
			case map[string]any:
				walk(x, p)
			}
		}
	}
	if svc["type"] == "mcp" {
		if tools, ok := svc["tools"].(map[string]any); ok {
			for k, v := range tools {
				if f, ok := v.(*rpc.RemoteFunc); ok {
					out = append(out, tool{name: k, path: []string{"tools", k}, fn: f})
				}
			}
			sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
			return out
		}
	}
	walk(svc, nil)
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// inputSchema is the tool's input schema: the function's parameters when
// they are a JSON-schema object, else a permissive object (a function
// without a schema takes any keyword arguments).
func inputSchema(f *rpc.RemoteFunc) (schema map[string]any, desc string) {
	s := f.Schema()
	desc, _ = s["description"].(string)
	if desc == "" {
		desc = f.Doc()
	}
	if p, ok := s["parameters"].(map[string]any); ok && p["type"] == "object" {
		return p, desc
	}
	return map[string]any{"type": "object", "additionalProperties": true}, desc
}

// newServer builds the MCP server of one session: the service's functions
// as tools. The service as fetched here only names the tools; each call
// fetches it again as the caller of that call.
func (h *Handler) newServer(ws, sid, mode string, svc map[string]any) *mcp.Server {
	name, _ := svc["name"].(string)
	if name == "" {
		name, _ = svc["id"].(string)
	}
	desc, _ := svc["description"].(string)
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Title: name, Version: h.cfg.Version},
		&mcp.ServerOptions{Instructions: desc, Logger: h.cfg.Logger})
	for _, t := range collectTools(svc) {
		schema, d := inputSchema(t.fn)
		srv.AddTool(&mcp.Tool{Name: t.name, Description: d, InputSchema: schema}, h.toolHandler(ws, sid, mode, t))
	}
	h.addResourcesAndPrompts(srv, ws, sid, mode, svc)
	return srv
}

// toolHandler relays a tool call to the service as the caller of that call.
func (h *Handler) toolHandler(ws, sid, mode string, t tool) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var kwargs map[string]any
		if raw := bytes.TrimSpace(req.Params.Arguments); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&kwargs); err != nil {
				return errorResult(fmt.Errorf("tool %s: arguments must be a JSON object: %w", t.name, err)), nil
			}
		}
		res, err := h.callAs(ctx, req.Extra, ws, sid, mode, t.path, numbers(kwargs))
		if err != nil {
			return errorResult(err), nil
		}
		return h.result(res), nil
	}
}

// callAs calls the member at path of the service as the caller of the MCP
// request (its HTTP request's token), resolving the service again with the
// backend's rules, within CallTimeout. A generator's items are collected.
// kwargs may be nil.
func (h *Handler) callAs(ctx context.Context, extra *mcp.RequestExtra, ws, sid, mode string, path []string, kwargs any) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	var hdr http.Header
	if extra != nil {
		hdr = extra.Header
	}
	c, err := h.cfg.Backend.Caller(hdr, "")
	if err != nil {
		return nil, err
	}
	svc, release, err := h.cfg.Backend.Service(ctx, c, ws, sid, mode)
	if err != nil {
		return nil, err
	}
	defer release()
	var member any = svc
	for _, k := range path {
		m, _ := member.(map[string]any)
		member = m[k]
	}
	f, ok := member.(*rpc.RemoteFunc)
	if !ok {
		return nil, errNotFunction(ws, sid, path)
	}
	var args []any
	if m, _ := kwargs.(map[string]any); len(m) > 0 {
		args = append(args, rpc.Kwargs(m))
	}
	res, err := f.Call(ctx, args...)
	if err != nil {
		return nil, err
	}
	if g, ok := res.(*rpc.RemoteGenerator); ok {
		return collect(ctx, g)
	}
	return res, nil
}

// collect gathers a generator's items (MCP has no streamed tool results).
func collect(ctx context.Context, g *rpc.RemoteGenerator) ([]any, error) {
	items := []any{}
	for item, err := range g.All(ctx) {
		if err != nil {
			return nil, err
		}
		if len(items) == maxGeneratorItems {
			return nil, fmt.Errorf("the function's generator gave more than %d items; MCP tool results are not streamed", maxGeneratorItems)
		}
		items = append(items, item)
	}
	return items, nil
}

// numbers turns json.Number into int64 (when integral) or float64, as a
// msgpack peer would send them.
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// errorResult is a tool error (isError) carrying the remote message.
func errorResult(err error) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}
}

// result turns a function's return value into a tool result: bytes as an
// image, audio or blob with the MIME type sniffed from them; any other value
// as structured content (an object as itself, anything else wrapped as
// {"result": value}, since MCP clients expect an object) plus its JSON text
// (a string as itself).
func (h *Handler) result(v any) *mcp.CallToolResult {
	if b, ok := v.([]byte); ok {
		mt := http.DetectContentType(b)
		switch {
		case strings.HasPrefix(mt, "image/"):
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: b, MIMEType: mt}}}
		case strings.HasPrefix(mt, "audio/"):
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: b, MIMEType: mt}}}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{
			Resource: &mcp.ResourceContents{URI: "hypha://result", MIMEType: mt, Blob: b}}}}
	}
	jv := h.cfg.Backend.JSONValue(v)
	text, err := json.Marshal(jv)
	if err != nil {
		return errorResult(fmt.Errorf("the result is not JSON-serialisable: %w", err))
	}
	if s, ok := jv.(string); ok {
		text = []byte(s)
	}
	structured := jv
	if _, ok := jv.(map[string]any); !ok {
		structured = map[string]any{"result": jv}
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}, StructuredContent: structured}
}
