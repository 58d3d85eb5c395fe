package mcpserve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/rpc"
)

// docsURI is the resource holding a service's docs, as upstream names it.
const docsURI = "resource://docs"

// addResourcesAndPrompts offers what an MCP proxy registers for an MCP
// server's resources and prompts (a service of type "mcp" with
// `resources: {key: {uri, name, description, mimeType, read}}` and
// `prompts: {key: {name, description, read}}`), and any service's `docs`
// text as the resource resource://docs.
func (h *Handler) addResourcesAndPrompts(srv *mcp.Server, ws, sid, mode string, svc map[string]any) {
	if docs, ok := svc["docs"].(string); ok && docs != "" {
		srv.AddResource(&mcp.Resource{URI: docsURI, Name: "docs", Description: "the service's documentation", MIMEType: "text/plain"},
			func(_ context.Context, _ *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: docsURI, MIMEType: "text/plain", Text: docs}}}, nil
			})
	}
	if svc["type"] != "mcp" {
		return
	}
	resources, _ := svc["resources"].(map[string]any)
	for _, k := range sortedKeys(resources) {
		r, _ := resources[k].(map[string]any)
		if _, ok := r["read"].(*rpc.RemoteFunc); !ok {
			continue
		}
		uri := stringOr(r["uri"], k)
		if u, err := url.Parse(uri); err != nil || u.Scheme == "" {
			h.cfg.Logger.Warn("MCP endpoint: resource skipped, its uri is not an absolute URI", "service", ws+"/"+sid, "uri", uri)
			continue
		}
		mime := stringOr(r["mimeType"], stringOr(r["mime_type"], "text/plain"))
		path := []string{"resources", k, "read"}
		srv.AddResource(&mcp.Resource{URI: uri, Name: stringOr(r["name"], k), Description: stringOr(r["description"], ""), MIMEType: mime},
			func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				v, err := h.callAs(ctx, req.Extra, ws, sid, mode, path, nil)
				if err != nil {
					return nil, err
				}
				return &mcp.ReadResourceResult{Contents: h.resourceContents(uri, mime, v)}, nil
			})
	}
	prompts, _ := svc["prompts"].(map[string]any)
	for _, k := range sortedKeys(prompts) {
		p, _ := prompts[k].(map[string]any)
		read, ok := p["read"].(*rpc.RemoteFunc)
		if !ok {
			continue
		}
		name := stringOr(p["name"], k)
		path := []string{"prompts", k, "read"}
		srv.AddPrompt(&mcp.Prompt{Name: name, Description: stringOr(p["description"], ""), Arguments: promptArguments(read)},
			func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				kwargs := map[string]any{}
				for a, v := range req.Params.Arguments {
					kwargs[a] = v
				}
				v, err := h.callAs(ctx, req.Extra, ws, sid, mode, path, kwargs)
				if err != nil {
					return nil, err
				}
				return h.promptResult(name, v), nil
			})
	}
}

// promptArguments are a prompt's arguments, read from its read function's
// parameters.
func promptArguments(f *rpc.RemoteFunc) []*mcp.PromptArgument {
	params, _ := f.Schema()["parameters"].(map[string]any)
	props, _ := params["properties"].(map[string]any)
	required := map[string]bool{}
	if req, ok := params["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	var out []*mcp.PromptArgument
	for _, k := range sortedKeys(props) {
		p, _ := props[k].(map[string]any)
		out = append(out, &mcp.PromptArgument{Name: k, Description: stringOr(p["description"], ""), Required: required[k]})
	}
	return out
}

// resourceContents is a read function's value as resource contents: text,
// bytes as a blob, a list as several contents, any other value as JSON.
func (h *Handler) resourceContents(uri, mime string, v any) []*mcp.ResourceContents {
	switch x := v.(type) {
	case string:
		return []*mcp.ResourceContents{{URI: uri, MIMEType: mime, Text: x}}
	case []byte:
		if mime == "" || mime == "text/plain" {
			mime = http.DetectContentType(x)
		}
		return []*mcp.ResourceContents{{URI: uri, MIMEType: mime, Blob: x}}
	case []any:
		var out []*mcp.ResourceContents
		for _, e := range x {
			out = append(out, h.resourceContents(uri, mime, e)...)
		}
		return out
	}
	b, _ := json.Marshal(h.cfg.Backend.JSONValue(v))
	return []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}
}

// promptResult is a prompt function's value as a prompt result:
// {description, messages: [{role, content: {type: "text", text}}]} as the
// MCP proxy returns it, or any other value as one user message.
func (h *Handler) promptResult(name string, v any) *mcp.GetPromptResult {
	if m, ok := v.(map[string]any); ok {
		if msgs, ok := m["messages"].([]any); ok {
			out := &mcp.GetPromptResult{Description: stringOr(m["description"], "")}
			for _, e := range msgs {
				msg, _ := e.(map[string]any)
				role := stringOr(msg["role"], "user")
				var text string
				switch c := msg["content"].(type) {
				case map[string]any:
					text = stringOr(c["text"], "")
				case string:
					text = c
				}
				out.Messages = append(out.Messages, &mcp.PromptMessage{Role: mcp.Role(role), Content: &mcp.TextContent{Text: text}})
			}
			return out
		}
	}
	text, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(h.cfg.Backend.JSONValue(v))
		text = string(b)
	}
	return &mcp.GetPromptResult{Description: "prompt " + name,
		Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: text}}}}
}

func stringOr(v any, def string) string {
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	return def
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// errNotFunction says a member named at session start is gone.
func errNotFunction(ws, sid string, path []string) error {
	return fmt.Errorf("%v is no longer a function of service %s/%s", path, ws, sid)
}
