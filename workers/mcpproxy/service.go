package mcpproxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// Bounds on what a server lists (a server is not trusted to be small).
const (
	MaxTools     = 1000
	MaxResources = 1000
	MaxPrompts   = 1000
)

// LogDebug is the log type of per-call lines.
const LogDebug worker.LogType = "debug"

// ErrToolFailed is wrapped by the error of a tool whose result is an
// error (isError).
var ErrToolFailed = errors.New("MCP tool failed")

// buildService opens the server's session, lists what it offers and
// returns the service to register: {id: name, type: "mcp", tools,
// resources, prompts}.
func buildService(ctx context.Context, l *link, appID string, logf func(worker.LogType, string, ...any)) (rpc.Service, error) {
	cs, err := l.session(ctx)
	if err != nil {
		return rpc.Service{}, err
	}
	caps := cs.InitializeResult().Capabilities
	tools, resources, prompts := map[string]any{}, map[string]any{}, map[string]any{}
	if caps == nil || caps.Tools != nil {
		n := 0
		for t, err := range cs.Tools(ctx, nil) {
			if err != nil {
				return rpc.Service{}, fmt.Errorf("list tools: %w", err)
			}
			if n++; n > MaxTools {
				logf(worker.LogError, "MCP server %s lists more than %d tools; the rest are left out", l.spec.Name, MaxTools)
				break
			}
			if !memberName.MatchString(t.Name) {
				logf(worker.LogError, "MCP server %s: tool %q is left out: its name is not a service member name", l.spec.Name, t.Name)
				continue
			}
			tools[t.Name] = toolFunc(l, t, logf)
		}
	}
	if caps != nil && caps.Resources != nil {
		n := 0
		for r, err := range cs.Resources(ctx, nil) {
			if err != nil {
				return rpc.Service{}, fmt.Errorf("list resources: %w", err)
			}
			if n++; n > MaxResources {
				logf(worker.LogError, "MCP server %s lists more than %d resources; the rest are left out", l.spec.Name, MaxResources)
				break
			}
			key := uniqueKey(resources, keyOf(r.Name, r.URI))
			resources[key] = map[string]any{"uri": r.URI, "name": r.Name, "description": r.Description,
				"mimeType": r.MIMEType, "read": resourceFunc(l, r.URI, logf)}
		}
	}
	if caps != nil && caps.Prompts != nil {
		n := 0
		for p, err := range cs.Prompts(ctx, nil) {
			if err != nil {
				return rpc.Service{}, fmt.Errorf("list prompts: %w", err)
			}
			if n++; n > MaxPrompts {
				logf(worker.LogError, "MCP server %s lists more than %d prompts; the rest are left out", l.spec.Name, MaxPrompts)
				break
			}
			key := uniqueKey(prompts, keyOf(p.Name, p.Name))
			prompts[key] = map[string]any{"name": p.Name, "description": p.Description, "read": promptFunc(l, p, logf)}
		}
	}
	return rpc.Service{ID: l.spec.Name, Name: "MCP Server for " + l.spec.Name, Type: "mcp", AppID: appID,
		Description: "Tools, resources, and prompts from MCP server " + l.spec.Name, // upstream's wording
		Functions:   map[string]any{"tools": tools, "resources": resources, "prompts": prompts}}, nil
}

// memberName: a name usable as a member of a service (no '.', which
// separates a member path).
var memberName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$`)

var notMember = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func keyOf(name, fallback string) string {
	k := strings.Trim(notMember.ReplaceAllString(name, "_"), "_")
	if k == "" {
		k = strings.Trim(notMember.ReplaceAllString(fallback, "_"), "_")
	}
	if k == "" {
		k = "item"
	}
	if len(k) > 100 {
		k = k[:100]
	}
	return k
}

func uniqueKey(m map[string]any, k string) string {
	if _, ok := m[k]; !ok {
		return k
	}
	for i := 2; ; i++ {
		if c := fmt.Sprintf("%s_%d", k, i); m[c] == nil {
			return c
		}
	}
}

// arguments are the call's keyword arguments; positional ones take the
// schema's required names in order, then its other properties sorted.
func arguments(c *rpc.Call, schema map[string]any) (map[string]any, error) {
	args := maps.Clone(c.Kwargs)
	if args == nil {
		args = map[string]any{}
	}
	delete(args, "context")
	if len(c.Args) == 0 {
		return args, nil
	}
	var names []string
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok {
				names = append(names, s)
			}
		}
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		for _, k := range slices.Sorted(maps.Keys(props)) {
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	if len(c.Args) > len(names) {
		return nil, fmt.Errorf("%w: %d positional arguments for %d parameters", rpc.ErrArguments, len(c.Args), len(names))
	}
	for i, v := range c.Args {
		if _, dup := args[names[i]]; dup {
			return nil, fmt.Errorf("%w: %q given twice", rpc.ErrArguments, names[i])
		}
		args[names[i]] = v
	}
	return args, nil
}

func toolFunc(l *link, t *mcp.Tool, logf func(worker.LogType, string, ...any)) any {
	schema, _ := t.InputSchema.(map[string]any)
	if schema == nil {
		schema = map[string]any{"type": "object"}
	}
	name := t.Name
	h := rpc.HandlerFunc(func(ctx context.Context, c *rpc.Call) (any, error) {
		args, err := arguments(c, schema)
		if err != nil {
			return nil, err
		}
		logf(LogDebug, "call %s.%s", l.spec.Name, name)
		var res *mcp.CallToolResult
		err = l.do(ctx, func(cs *mcp.ClientSession) (err error) {
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
			return err
		})
		if err != nil {
			logf(worker.LogError, "%s.%s: %v", l.spec.Name, name, err)
			return nil, err
		}
		if res.IsError {
			return nil, fmt.Errorf("%w: %s.%s: %s", ErrToolFailed, l.spec.Name, name, textOf(res.Content))
		}
		return toolValue(res), nil
	})
	return rpc.Doc(rpc.Schema(h, schema), t.Description)
}

func resourceFunc(l *link, uri string, logf func(worker.LogType, string, ...any)) any {
	return rpc.Doc(func(ctx context.Context) (any, error) {
		logf(LogDebug, "read %s %s", l.spec.Name, uri)
		var res *mcp.ReadResourceResult
		err := l.do(ctx, func(cs *mcp.ClientSession) (err error) {
			res, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
			return err
		})
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, len(res.Contents))
		for _, c := range res.Contents {
			if c.Blob != nil {
				out = append(out, c.Blob)
			} else {
				out = append(out, c.Text)
			}
		}
		if len(out) == 1 {
			return out[0], nil
		}
		return out, nil
	}, "Read the resource "+uri)
}

func promptFunc(l *link, p *mcp.Prompt, logf func(worker.LogType, string, ...any)) any {
	props, required := map[string]any{}, []any{}
	for _, a := range p.Arguments {
		props[a.Name] = map[string]any{"type": "string", "description": a.Description}
		if a.Required {
			required = append(required, a.Name)
		}
	}
	schema := map[string]any{"type": "object", "properties": props, "required": required}
	name := p.Name
	h := rpc.HandlerFunc(func(ctx context.Context, c *rpc.Call) (any, error) {
		args, err := arguments(c, schema)
		if err != nil {
			return nil, err
		}
		sargs := make(map[string]string, len(args))
		for k, v := range args {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%w: prompt argument %q must be a string, got %T", rpc.ErrArguments, k, v)
			}
			sargs[k] = s
		}
		logf(LogDebug, "get prompt %s.%s", l.spec.Name, name)
		var res *mcp.GetPromptResult
		err = l.do(ctx, func(cs *mcp.ClientSession) (err error) {
			res, err = cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: name, Arguments: sargs})
			return err
		})
		if err != nil {
			return nil, err
		}
		msgs := make([]any, 0, len(res.Messages))
		for _, m := range res.Messages {
			msgs = append(msgs, map[string]any{"role": string(m.Role), "content": contentValue(m.Content)})
		}
		return map[string]any{"description": res.Description, "messages": msgs}, nil
	})
	return rpc.Doc(rpc.Schema(h, schema), p.Description)
}

// toolValue keeps a result's structure: structured content as itself;
// else one content as its value, several as a list.
func toolValue(res *mcp.CallToolResult) any {
	if res.StructuredContent != nil {
		return res.StructuredContent
	}
	switch len(res.Content) {
	case 0:
		return nil
	case 1:
		if t, ok := res.Content[0].(*mcp.TextContent); ok {
			return t.Text
		}
		return contentValue(res.Content[0])
	}
	out := make([]any, 0, len(res.Content))
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			out = append(out, t.Text)
			continue
		}
		out = append(out, contentValue(c))
	}
	return out
}

// contentValue is an MCP content as a Hypha value: text as {type, text},
// images and audio as bytes with their MIME type.
func contentValue(c mcp.Content) any {
	switch x := c.(type) {
	case *mcp.TextContent:
		return map[string]any{"type": "text", "text": x.Text}
	case *mcp.ImageContent:
		return map[string]any{"type": "image", "data": x.Data, "mimeType": x.MIMEType}
	case *mcp.AudioContent:
		return map[string]any{"type": "audio", "data": x.Data, "mimeType": x.MIMEType}
	case *mcp.ResourceLink:
		return map[string]any{"type": "resource_link", "uri": x.URI, "name": x.Name, "mimeType": x.MIMEType}
	case *mcp.EmbeddedResource:
		m := map[string]any{"type": "resource"}
		if r := x.Resource; r != nil {
			m["uri"], m["mimeType"] = r.URI, r.MIMEType
			if r.Blob != nil {
				m["blob"] = r.Blob
			} else {
				m["text"] = r.Text
			}
		}
		return m
	}
	return nil
}

func textOf(cs []mcp.Content) string {
	var b strings.Builder
	for _, c := range cs {
		if t, ok := c.(*mcp.TextContent); ok {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(t.Text)
		}
	}
	if b.Len() > 4096 {
		return b.String()[:4096] + "…"
	}
	return b.String()
}
