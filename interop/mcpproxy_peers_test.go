package interop

// The same mcp-server app through upstream's MCP proxy and ours
// (HYPHA_PEERS=1): the service shapes they register are compared. See
// docs/compatibility.md, "MCP proxy: the same app on upstream and here".

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

type shapesAddIn struct {
	A int `json:"a" jsonschema:"first addend"`
	B int `json:"b" jsonschema:"second addend"`
}

type shapesGreetIn struct {
	Name     string `json:"name" jsonschema:"who to greet"`
	Language string `json:"language,omitempty" jsonschema:"a language code"`
}

// startShapesMCP serves, over streamable HTTP on loopback, an MCP server
// with two tools with schemas, a resource and a prompt; it returns its URL.
func startShapesMCP(t *testing.T) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "shapes", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two integers."},
		func(ctx context.Context, req *mcp.CallToolRequest, in shapesAddIn) (*mcp.CallToolResult, struct {
			Sum int `json:"sum"`
		}, error) {
			return nil, struct {
				Sum int `json:"sum"`
			}{in.A + in.B}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "greet", Description: "Greet someone."},
		func(ctx context.Context, req *mcp.CallToolRequest, in shapesGreetIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + in.Name}}}, nil, nil
		})
	s.AddResource(&mcp.Resource{URI: "file:///notes.txt", Name: "notes", MIMEType: "text/plain", Description: "Some notes."},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "notes"}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "review", Description: "Review a text.", Arguments: []*mcp.PromptArgument{{Name: "text", Required: true}}},
		func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "Review: " + req.Params.Arguments["text"]}}}}, nil
		})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
		for ss := range s.Sessions() {
			_ = ss.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/mcp"
}

// mcpShape is what an MCP proxy registered for the app.
type mcpShape struct {
	Services  []string            // short ids of the app's services
	ID, Type  string              // of the server's service
	Tools     map[string]any      // tool -> its function's schema parameters
	ToolDocs  map[string]string   // tool -> its function's schema description
	Resources map[string][]string // key -> the entry's fields
	Prompts   map[string][]string // key -> the entry's fields
	// ResourceURIs and PromptNames are the uri / name fields of the entries.
	ResourceURIs, PromptNames []string
}

// installShapes installs and starts the mcp-server app on the server at
// url through its apps controller, as root, and reads what the proxy
// registered.
func installShapes(t *testing.T, url, rootToken, mcpURL string) mcpShape {
	t.Helper()
	ctx := ctxTimeout(t, 3*time.Minute)
	root := goConnect(t, url, rpc.Config{Token: rootToken, ClientID: "mcp-shapes-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)})
	apps, err := root.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatalf("server-apps: %v", err)
	}
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id": "mcp-shapes",
		"manifest": map[string]any{"type": "mcp-server", "name": "MCP shapes",
			"mcpServers": map[string]any{"shapes": map[string]any{"type": "streamable-http", "url": mcpURL}}},
		"overwrite": true, "wait_for_service": "default", "timeout": 60.0,
	}); err != nil {
		t.Fatalf("install: %v", err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = apps.Call(cctx, "uninstall", "mcp-shapes")
	})
	v, err := apps.Call(ctx, "start", "mcp-shapes", rpc.Kwargs{"wait_for_service": "default", "timeout": 60.0})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := str(v, "id")
	if sid == "" {
		t.Fatalf("start: %s", mustJSON(v))
	}
	defer func() { _, _ = apps.Call(ctx, "stop", sid) }()
	ws, client, _ := strings.Cut(sid, "/")
	var shape mcpShape
	list, err := root.ListServices(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range list {
		if strings.Contains(si.ID, "/"+client+":") && !strings.HasSuffix(si.ID, ":built-in") {
			shape.Services = append(shape.Services, si.ID[strings.LastIndex(si.ID, ":")+1:])
		}
	}
	slices.Sort(shape.Services)
	rs, err := root.GetService(ctx, sid+":shapes")
	if err != nil {
		t.Fatalf("the app's service: %v", err)
	}
	shape.ID, shape.Type = rs.ID[strings.LastIndex(rs.ID, ":")+1:], rs.Type
	shape.Tools, shape.ToolDocs = map[string]any{}, map[string]string{}
	if tools, ok := rs.Get("tools").(map[string]any); ok {
		for name := range tools {
			f := rs.Func("tools." + name)
			if f == nil {
				shape.Tools[name] = "not a function"
				continue
			}
			shape.Tools[name] = f.Schema()["parameters"]
			shape.ToolDocs[name], _ = f.Schema()["description"].(string)
		}
	}
	entries := func(group, field string) (map[string][]string, []string) {
		out, vals := map[string][]string{}, []string(nil)
		m, _ := rs.Get(group).(map[string]any)
		for k, e := range m {
			em, _ := e.(map[string]any)
			out[k] = slices.Sorted(maps.Keys(em))
			vals = append(vals, str(em, field))
		}
		slices.Sort(vals)
		return out, vals
	}
	shape.Resources, shape.ResourceURIs = entries("resources", "uri")
	shape.Prompts, shape.PromptNames = entries("prompts", "name")
	// The tools answer on both.
	sum, err := rs.Call(ctx, "tools.add", rpc.Kwargs{"a": 2, "b": 40})
	if err != nil {
		t.Fatalf("tools.add: %v", err)
	}
	t.Logf("tools.add(2, 40) = %s", mustJSON(sum))
	return shape
}

// ourMCPSystem starts the embedded system (server, apps controller, the
// built-in MCP proxy worker).
func ourMCPSystem(t *testing.T) string {
	t.Helper()
	sys, err := embedded.Start(ctxTimeout(t, time.Minute), embedded.Options{
		Server: server.Config{JWTSecret: "mcp-shapes-secret", RootToken: testserver.RootToken, DataDir: t.TempDir(),
			Logger: slog.New(slog.DiscardHandler)},
		Addr: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys.Server.URL()
}

// upstreamMCPUnusable says why upstream's MCP proxy cannot run in the
// peers harness ("" when it can): it needs the Python MCP SDK.
func upstreamMCPUnusable(t *testing.T, dir string) string {
	t.Helper()
	r := startProc(t, "python mcp probe", time.Minute, false, ".", filepath.Join(dir, "run-py.sh"), testdata(t, "mcp_sdk_probe.py")).mustResult()
	if ok, _ := r["ok"].(bool); ok {
		return ""
	}
	return "upstream's MCP proxy (hypha/workers/mcp_proxy.py) needs the Python MCP SDK (PyPI package `mcp`), which Debian does not package and the peers harness cannot install (no PyPI): " +
		"its `mcp` is an import-only stand-in (" + str(r, "module") + ") that fails on use: " + str(r, "error")
}

// TestUpstreamMCPProxyShapes installs the same mcp-server app (a Go SDK
// MCP server with two tools, a resource and a prompt) on upstream (with
// --enable-mcp) and on our embedded server, and compares what each proxy
// registers.
func TestUpstreamMCPProxyShapes(t *testing.T) {
	dir := needPeers(t)
	mcpURL := startShapesMCP(t)
	ours := installShapes(t, ourMCPSystem(t), testserver.RootToken, mcpURL)
	t.Logf("ours: %s", mustJSON(ours))
	if why := upstreamMCPUnusable(t, dir); why != "" {
		t.Skip("skipping the comparison: " + why)
	}
	up := &upstream{dir: dir, port: freePort(t), env: []string{"PEERS_S3=1"}, args: []string{"--enable-mcp"}}
	up.url = "http://127.0.0.1:" + strconv.Itoa(up.port)
	t.Cleanup(func() { up.stop(t) })
	up.start(t)
	theirs := installShapes(t, up.url, peersRootToken(), mcpURL)
	t.Logf("upstream: %s", mustJSON(theirs))

	// What must match.
	expect(t, "services", ours.Services, theirs.Services)
	expect(t, "service id", ours.ID, theirs.ID)
	expect(t, "service type", ours.Type, theirs.Type)
	expect(t, "tool names", slices.Sorted(maps.Keys(ours.Tools)), slices.Sorted(maps.Keys(theirs.Tools)))
	for name, schema := range theirs.Tools {
		if !reflect.DeepEqual(ours.Tools[name], schema) {
			t.Errorf("tool %s schema: ours %s, upstream %s", name, mustJSON(ours.Tools[name]), mustJSON(schema))
		}
	}
	expect(t, "tool descriptions", ours.ToolDocs, theirs.ToolDocs)
	expect(t, "resource uris", ours.ResourceURIs, theirs.ResourceURIs)
	expect(t, "prompt names", ours.PromptNames, theirs.PromptNames)
	expect(t, "prompt keys and fields", ours.Prompts, theirs.Prompts)
	// The known difference (docs/compatibility.md): upstream keys
	// resources by URI, we by a member-safe name; the fields match.
	for _, k := range slices.Sorted(maps.Keys(theirs.Resources)) {
		t.Logf("upstream resource key %q, fields %v", k, theirs.Resources[k])
	}
	for _, k := range slices.Sorted(maps.Keys(ours.Resources)) {
		t.Logf("our resource key %q, fields %v", k, ours.Resources[k])
	}
	fields := func(m map[string][]string) [][]string {
		var out [][]string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, m[k])
		}
		return out
	}
	expect(t, "resource fields", fields(ours.Resources), fields(theirs.Resources))
}
