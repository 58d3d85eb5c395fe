package mcpproxy

import (
	"context"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// addNamedTool adds a tool that answers its own name.
func addNamedTool(s *mcp.Server, name string) {
	mcp.AddTool(s, &mcp.Tool{Name: name, Description: "Say " + name + "."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
		})
}

// serveMCP serves s over streamable HTTP on addr ("127.0.0.1:0" for any
// port); the returned function stops it.
func serveMCP(t *testing.T, addr string, s *mcp.Server) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = hs.Close()
		<-done
		for ss := range s.Sessions() {
			_ = ss.Close()
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// TestToolsRefreshed: a server that adds and removes tools (and a prompt)
// at runtime sends list_changed; the app's service follows it, with no
// function left of a removed tool. After a reconnect to a server that
// changed meanwhile, the service is listed again too.
func TestToolsRefreshed(t *testing.T) {
	h := newHarness(t)
	srv := mcp.NewServer(&mcp.Implementation{Name: "dyn", Version: "1"}, &mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{
		Tools: &mcp.ToolCapabilities{ListChanged: true}, Prompts: &mcp.PromptCapabilities{ListChanged: true}}})
	addNamedTool(srv, "alpha")
	addr, stop := serveMCP(t, "127.0.0.1:0", srv)
	cfg := h.start(map[string]any{"mcpServers": map[string]any{"dyn": map[string]any{"url": "http://" + addr + "/mcp"}}})
	id := cfg.Workspace + "/" + cfg.ClientID + ":dyn"
	members := func() []string {
		rs, err := h.root.GetService(testserver.Ctx(t), id)
		if err != nil {
			return nil
		}
		var out []string
		for _, group := range []string{"tools", "prompts"} {
			if m, ok := rs.Get(group).(map[string]any); ok {
				for _, k := range slices.Sorted(maps.Keys(m)) {
					out = append(out, group+"."+k)
				}
			}
		}
		return out
	}
	want := func(what string, names ...string) {
		t.Helper()
		testserver.WaitFor(t, 30*time.Second, what, func() bool { return slices.Equal(members(), names) })
	}
	want("alpha registered", "tools.alpha")

	addNamedTool(srv, "beta")
	want("beta added", "tools.alpha", "tools.beta")
	if got := h.mustCall(cfg, "dyn", "tools.beta"); got != "beta" {
		t.Fatalf("beta: %v", got)
	}
	srv.RemoveTools("alpha")
	want("alpha removed", "tools.beta")
	srv.AddPrompt(&mcp.Prompt{Name: "hint"}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hint"}}}}, nil
	})
	want("prompt added", "tools.beta", "prompts.hint")

	// The server restarts as another one (gamma only): the call that
	// finds the session gone reconnects, and the service follows.
	stop()
	srv2 := mcp.NewServer(&mcp.Implementation{Name: "dyn", Version: "2"}, nil)
	addNamedTool(srv2, "gamma")
	serveMCP(t, addr, srv2)
	if _, err := h.call(cfg, "dyn", "tools.beta"); err == nil || !strings.Contains(err.Error(), "beta") {
		t.Fatalf("beta on the new server: %v", err)
	}
	want("service re-listed after the reconnect", "tools.gamma")
	if got := h.mustCall(cfg, "dyn", "tools.gamma"); got != "gamma" {
		t.Fatalf("gamma: %v", got)
	}
	page, err := h.w.GetLogs(testserver.Ctx(t), cfg.ID, worker.LogQuery{Type: worker.LogInfo})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range page.Items {
		found = found || strings.Contains(e.Content, "re-registered service")
	}
	if !found {
		t.Fatal("no re-registration in the log")
	}
}

// TestHostileHugeToolResult: a server whose tool result is larger than
// the proxy's bound on one message, over each transport: the call fails
// with an error naming the bound (the proxy does not read on), and the
// next call works on a new session.
func TestHostileHugeToolResult(t *testing.T) {
	const bound = 1 << 20
	h := newHarness(t)
	w := New(Options{AllowStdio: true, MaxMessageBytes: bound, Logger: testserver.Logger(t)})
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	h.w = w
	web := startHTTPMCP(t, "web", false)
	sse := startHTTPMCP(t, "sse", true)
	// And streamable HTTP answering with an event stream.
	stream := mcp.NewServer(&mcp.Implementation{Name: "stream", Version: "1"}, nil)
	mcp.AddTool(stream, &mcp.Tool{Name: "huge"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		N int `json:"n"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("y", in.N)}}}, nil, nil
	})
	addNamedTool(stream, "echo")
	streamAddr, _ := serveMCP(t, "127.0.0.1:0", stream)
	cfg := h.start(map[string]any{"mcpServers": map[string]any{
		"web":    map[string]any{"url": web.url()},
		"stream": map[string]any{"url": "http://" + streamAddr + "/mcp"},
		"old":    map[string]any{"type": "sse", "url": sse.url()},
		"local":  stdioSpec(),
	}})
	for _, svc := range []string{"web", "stream", "old", "local"} {
		// Under the bound: fine.
		if got, _ := h.mustCall(cfg, svc, "tools.huge", rpc.Kwargs{"n": bound / 2}).(string); len(got) != bound/2 {
			t.Fatalf("%s: a result of %d bytes", svc, len(got))
		}
		_, err := h.call(cfg, svc, "tools.huge", rpc.Kwargs{"n": 4 * bound})
		if err == nil || !strings.Contains(err.Error(), "over 1048576 bytes") || !strings.Contains(err.Error(), "MaxMessageBytes") {
			t.Fatalf("%s: a result over the bound: %v", svc, err)
		}
		if got, _ := h.mustCall(cfg, svc, "tools.huge", rpc.Kwargs{"n": 10}).(string); len(got) != 10 {
			t.Fatalf("%s after the huge result: %q", svc, got)
		}
	}
}
