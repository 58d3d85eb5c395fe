package embedded

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/mcpproxy"
)

// mcpProxyOptions are o.MCPProxy with stdio servers allowed when the
// system does not run as root (its process worker then runs apps as this
// same user); as root they stay off unless o.MCPProxy.AllowStdio says
// otherwise. Stdio servers are confined exactly as process sessions are
// (the process worker's user and working directory settings where
// o.MCPProxy leaves them empty), and a message from an MCP server is
// bounded as one to the server is.
func mcpProxyOptions(o Options) mcpproxy.Options {
	mo, po := o.MCPProxy, o.Process
	mo.AllowStdio = mo.AllowStdio || os.Geteuid() != 0
	if mo.AppUser == "" && mo.AppUIDBase == 0 && mo.AppUIDCount == 0 && !mo.RunAsWorkerUser {
		mo.AppUser, mo.AppUIDBase, mo.AppUIDCount, mo.RunAsWorkerUser = po.AppUser, po.AppUIDBase, po.AppUIDCount, po.RunAsWorkerUser
	}
	if mo.WorkDir == "" {
		mo.WorkDir = po.WorkDir
	}
	mo.NoSupervisor = mo.NoSupervisor || po.NoSupervisor
	mo.NoPIDNamespace = mo.NoPIDNamespace || po.NoPIDNamespace
	if mo.MaxMessageBytes == 0 {
		mo.MaxMessageBytes = int(o.Server.MaxMessageSize)
	}
	if mo.Logger == nil {
		mo.Logger = o.Server.Logger.With("component", "mcp-proxy-worker")
	}
	return mo
}

// registerMCPProxy registers the built-in MCP proxy worker (app type
// mcp-server) in public.
func (s *System) registerMCPProxy(ctx context.Context, o Options) error {
	mw := mcpproxy.New(mcpProxyOptions(o))
	tok, err := s.RootToken(365 * 24 * time.Hour)
	if err != nil {
		_ = mw.Shutdown(ctx)
		return err
	}
	c, err := s.Server.Connect(ctx, rpc.Config{Workspace: "public", ClientID: "builtin-mcp-proxy-worker", Token: tok,
		Logger: s.log.With("component", "mcp-proxy-worker")})
	if err != nil {
		_ = mw.Shutdown(ctx)
		return fmt.Errorf("connect the MCP proxy worker: %w", err)
	}
	s.clients = append(s.clients, c)
	h, err := hyphaworker.Host(ctx, c, mw, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true, Logger: mw.Options().Logger})
	if err != nil {
		_ = mw.Shutdown(ctx)
		return fmt.Errorf("register the MCP proxy worker: %w", err)
	}
	s.workers = append(s.workers, h)
	s.mcpProxy = mw
	s.log.Info("MCP proxy worker registered", "stdio", mw.Options().AllowStdio)
	return nil
}

// MCPProxyWorker is the built-in MCP proxy worker, nil when it is not
// running.
func (s *System) MCPProxyWorker() *mcpproxy.Worker { return s.mcpProxy }
