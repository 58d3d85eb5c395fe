package embedded

import (
	"context"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/a2aproxy"
)

// registerA2A registers the built-in A2A proxy worker (app type a2a-agent)
// in public. It needs nothing the host may lack, so a failure is logged and
// the system runs without it. Its sessions connect back to this server in
// process, as the app (the session's client id and token).
func (s *System) registerA2A(ctx context.Context) {
	log := s.log.With("component", "a2a-worker")
	aw := a2aproxy.New(a2aproxy.Options{Logger: log, DialServer: s.Server.Connect})
	tok, err := s.RootToken(365 * 24 * time.Hour)
	if err == nil {
		var c *rpc.Client
		c, err = s.Server.Connect(ctx, rpc.Config{Workspace: "public", ClientID: "builtin-a2a-worker", Token: tok, Logger: log})
		if err == nil {
			s.clients = append(s.clients, c)
			var h *hyphaworker.Hosted
			if h, err = hyphaworker.Host(ctx, c, aw, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true, Logger: log}); err == nil {
				s.workers = append(s.workers, h)
				log.Info("A2A proxy worker registered")
				return
			}
		}
	}
	_ = aw.Shutdown(ctx)
	log.Warn("a2a-agent apps are unavailable", "reason", err.Error())
}
