package server

// Hypha services served as MCP servers (server/mcpserve): this file is the
// seam. The MCP endpoint authenticates, resolves and fetches services with
// exactly the functions of the HTTP service routes (httpUser,
// httpWorkspace, findFor, serviceAs), so both routes keep one set of
// permission and visibility rules and one identity stamping.

import (
	"context"
	"errors"
	"net/http"

	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/server/mcpserve"
)

// mcpBackend is mcpserve.Backend over the server's HTTP route functions.
type mcpBackend struct{ s *Server }

// mcpCaller is the backend's record of a caller.
type mcpCaller struct {
	u  *auth.UserInfo
	ws string // httpWorkspace(u)
}

func (b mcpBackend) Caller(h http.Header, remoteAddr string) (mcpserve.Caller, error) {
	u, err := b.s.httpUser(&http.Request{Header: h})
	if err != nil {
		return mcpserve.Caller{}, err
	}
	key := u.ID
	if u.IsAnonymous {
		key = mcpserve.AnonymousKey(remoteAddr)
	}
	return mcpserve.Caller{Key: key, Auth: mcpCaller{u: u, ws: b.s.httpWorkspace(u)}}, nil
}

func (b mcpBackend) Service(ctx context.Context, c mcpserve.Caller, ws, sid, mode string) (map[string]any, func(), error) {
	mc, ok := c.Auth.(mcpCaller)
	if !ok {
		return nil, nil, errors.New("mcp: caller not authenticated by this server")
	}
	e, code, err := b.s.findFor(mc.u, mc.ws, ws, sid, mode)
	if err != nil {
		return nil, nil, &mcpserve.StatusError{Code: code, Err: err}
	}
	v, release, err := b.s.serviceAs(ctx, mc.u, mc.ws, e)
	if err != nil {
		return nil, nil, &mcpserve.StatusError{Code: http.StatusBadGateway, Err: err}
	}
	m, ok := v.(map[string]any)
	if !ok {
		release()
		return nil, nil, &mcpserve.StatusError{Code: http.StatusBadGateway, Err: errors.New("the service is not a map of members")}
	}
	return m, release, nil
}

func (mcpBackend) JSONValue(v any) any { return jsonable(v) }

// mountMCP serves /{workspace}/mcp/{service_id}/mcp and its info page.
func (s *Server) mountMCP() {
	s.mcp = mcpserve.New(mcpserve.Config{
		Backend: mcpBackend{s}, MaxBodyBytes: s.cfg.MaxHTTPBodyBytes,
		MaxSessionsPerCaller: s.cfg.MaxMCPSessionsPerCaller, IdleTimeout: s.cfg.MCPSessionIdleTimeout,
		Version: Version, Logger: s.log.With("part", "mcp"),
	})
	s.mux.Handle("/{workspace}/mcp/{service_id}/mcp", s.mcp)
	s.mux.HandleFunc("GET /{workspace}/mcp/{service_id}", s.mcp.ServeInfo)
}
