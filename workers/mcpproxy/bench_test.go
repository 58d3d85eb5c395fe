package mcpproxy

import (
	"context"
	"testing"
	"time"

	"github.com/hypha-go/hypha/rpc"
)

// BenchmarkProxyToolCall: one tool call from a Go client through the
// embedded server and the proxy's kept session to an MCP server (Go SDK)
// over streamable HTTP and over stdio, and back.
func BenchmarkProxyToolCall(b *testing.B) {
	for _, transport := range []string{"streamable-http", "stdio"} {
		b.Run(transport, func(b *testing.B) {
			h := newHarness(b)
			spec := stdioSpec()
			if transport == "streamable-http" {
				web := startHTTPMCP(b, "web", false)
				spec = map[string]any{"url": web.url()}
			}
			cfg := h.config(map[string]any{"mcpServers": map[string]any{"s": spec}})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := h.w.Start(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			rs, err := h.root.GetService(ctx, cfg.Workspace+"/"+cfg.ClientID+":s")
			if err != nil {
				b.Fatal(err)
			}
			f := rs.Func("tools.add")
			b.ResetTimer()
			for b.Loop() {
				if _, err := f.Call(ctx, rpc.Kwargs{"a": 1, "b": 2}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
