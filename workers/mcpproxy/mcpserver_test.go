package mcpproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The MCP servers the tests talk to: real Go SDK servers, over streamable
// HTTP and SSE (on loopback listeners) and stdio (this test binary run
// again with MCPPROXY_TEST_STDIO=1).

// pngBytes: the start of a PNG file.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

type addIn struct {
	A int `json:"a" jsonschema:"first addend"`
	B int `json:"b" jsonschema:"second addend"`
}

type addOut struct {
	Sum int `json:"sum"`
}

type echoIn struct {
	Text string `json:"text"`
}

// newTestServer is the MCP server every transport serves. seen, when not
// nil, receives the value of header X-Api-Key of each HTTP request.
func newTestServer(label string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test-" + label, Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two integers."},
		func(ctx context.Context, req *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
			return nil, addOut{Sum: in.A + in.B}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text."},
		func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: label + ":" + in.Text}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "image", Description: "A PNG image."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: pngBytes, MIMEType: "image/png"}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "fail", Description: "Always fails."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
			return nil, nil, errors.New("it broke")
		})
	mcp.AddTool(s, &mcp.Tool{Name: "spawn", Description: "Start a long-lived child process; its pid."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, addOut, error) {
			cmd := exec.Command("sleep", "600")
			if err := cmd.Start(); err != nil {
				return nil, addOut{}, err
			}
			go func() { _ = cmd.Wait() }()
			return nil, addOut{Sum: cmd.Process.Pid}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "stubborn", Description: "Start a grandchild that ignores SIGTERM and leaves the process group."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, addOut, error) {
			cmd := exec.Command("sh", "-c", "trap '' TERM; exec sleep 600")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				return nil, addOut{}, err
			}
			go func() { _ = cmd.Wait() }()
			return nil, addOut{Sum: cmd.Process.Pid}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "huge", Description: "A text result of n bytes."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct {
			N int `json:"n"`
		}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", in.N)}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "The server's pid."},
		func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, addOut, error) {
			return nil, addOut{Sum: os.Getpid()}, nil
		})
	s.AddResource(&mcp.Resource{URI: "file:///greeting.txt", Name: "greeting", MIMEType: "text/plain", Description: "A greeting."},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "hello from " + label}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "greet", Description: "Greet someone.", Arguments: []*mcp.PromptArgument{{Name: "name", Required: true}}},
		func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Description: "a greeting", Messages: []*mcp.PromptMessage{
				{Role: "user", Content: &mcp.TextContent{Text: "Say hello to " + req.Params.Arguments["name"]}}}}, nil
		})
	return s
}

// httpMCP is an MCP server over HTTP on a loopback port that can be
// stopped and started again on the same address (a server that drops).
type httpMCP struct {
	t     testing.TB
	addr  string
	sse   bool
	label string

	mu      sync.Mutex
	srv     *http.Server
	mcpSrv  *mcp.Server
	done    chan struct{}
	headers []string // X-Api-Key of every request
}

func startHTTPMCP(t testing.TB, label string, sse bool) *httpMCP {
	h := &httpMCP{t: t, sse: sse, label: label, addr: "127.0.0.1:0"}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *httpMCP) url() string {
	if h.sse {
		return "http://" + h.addr + "/sse"
	}
	return "http://" + h.addr + "/mcp"
}

func (h *httpMCP) start() {
	h.t.Helper()
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	srv := newTestServer(h.label)
	var handler http.Handler
	if h.sse {
		handler = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	} else {
		handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.headers = append(h.headers, r.Header.Get("X-Api-Key"))
		h.mu.Unlock()
		handler.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	h.mu.Lock()
	h.srv, h.done, h.mcpSrv = hs, done, srv
	h.mu.Unlock()
}

func (h *httpMCP) stop() {
	h.mu.Lock()
	hs, done, ms := h.srv, h.done, h.mcpSrv
	h.srv, h.mcpSrv = nil, nil
	h.mu.Unlock()
	if hs != nil {
		_ = hs.Close()
		<-done
	}
	if ms != nil {
		// The SDK keeps a server session until it is closed.
		for ss := range ms.Sessions() {
			_ = ss.Close()
		}
	}
}

func (h *httpMCP) seenHeaders() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.headers...)
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	_ = ln.Close()
	return a
}

// runStdioServer serves the test server on stdin/stdout (the child side).
func runStdioServer() {
	// The conformance suite's numbered lines, on stderr (the proxy logs a
	// stdio server's stderr).
	n, _ := strconv.Atoi(os.Getenv("MCPPROXY_TEST_LINES"))
	for i := 1; i <= n; i++ {
		fmt.Fprintf(os.Stderr, "line %d\n", i)
	}
	if err := newTestServer("stdio").Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
