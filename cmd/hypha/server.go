package main

import (
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/spf13/cobra"
)

func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".hypha")
	}
	return ".hypha"
}

// parseLifetime reads a duration ("720h", "90m") or a number of seconds.
func parseLifetime(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("%d seconds is out of range", n)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is neither a duration (720h) nor a number of seconds", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s must be positive", d)
	}
	return d, nil
}

func newServerCmd() *cobra.Command {
	var host, publicURL, rootToken, jwtSecret, dataDir string
	var port, rate, burst, maxRevoked, maxWorkspaces int
	var maxTokenLife string
	var noWorkers, pprof bool
	var po process.Options
	var limits server.Config // the resource limits; addLimitFlags binds them
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the embedded Hypha-compatible server with its apps controller and built-in workers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := logger(cmd)
			tokenLife, err := parseLifetime(maxTokenLife)
			if err != nil {
				return fmt.Errorf("--max-token-lifetime: %w", err)
			}
			cfg := limits
			cfg.PublicBaseURL, cfg.JWTSecret, cfg.RootToken, cfg.Logger = publicURL, jwtSecret, rootToken, log
			cfg.MsgRateLimit, cfg.MsgBurstLimit, cfg.DataDir, cfg.Pprof = float64(rate), float64(burst), dataDir, pprof
			cfg.MaxTokenLifetime, cfg.MaxRevokedTokens, cfg.MaxWorkspacesPerUser = tokenLife, maxRevoked, maxWorkspaces
			sys, err := embedded.Start(cmd.Context(), embedded.Options{
				Server:    cfg,
				Addr:      net.JoinHostPort(host, strconv.Itoa(port)),
				NoWorkers: noWorkers,
				Process:   po,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Hypha server listening on http://%s (public URL %s, data %s)\n",
				sys.Server.Addr(), sys.Server.URL(), dataDir)
			if !noWorkers {
				fmt.Fprintln(cmd.OutOrStdout(), "Built-in workers: process (python-eval, node-eval) in workspace public")
			}
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.OutOrStdout(), "shutting down")
			return sys.Close()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&host, "host", envOr("HYPHA_HOST", "127.0.0.1"), "address to listen on (HYPHA_HOST)")
	fs.IntVar(&port, "port", envInt("HYPHA_PORT", 9527), "port to listen on, 0 for any (HYPHA_PORT)")
	fs.StringVar(&publicURL, "public-base-url", envOr("HYPHA_PUBLIC_BASE_URL", ""), "URL clients use to reach the server (HYPHA_PUBLIC_BASE_URL)")
	fs.StringVar(&rootToken, "root-token", envOr("HYPHA_ROOT_TOKEN", ""), "token that authenticates as root (HYPHA_ROOT_TOKEN)")
	fs.StringVar(&jwtSecret, "jwt-secret", envOr("HYPHA_JWT_SECRET", ""), "HS256 secret for tokens; random when empty (HYPHA_JWT_SECRET)")
	fs.StringVar(&dataDir, "data-dir", envOr("HYPHA_DATA_DIR", defaultDataDir()), "where installed apps are stored (HYPHA_DATA_DIR)")
	fs.IntVar(&rate, "ws-msg-rate-limit", envInt("HYPHA_WS_MSG_RATE_LIMIT", 2000), "binary messages per second per connection (HYPHA_WS_MSG_RATE_LIMIT)")
	fs.IntVar(&burst, "ws-msg-burst-limit", envInt("HYPHA_WS_MSG_BURST_LIMIT", 20000), "burst of binary messages per connection (HYPHA_WS_MSG_BURST_LIMIT)")
	fs.StringVar(&maxTokenLife, "max-token-lifetime", envOr("HYPHA_MAX_TOKEN_LIFETIME", server.DefaultMaxTokenLifetime.String()),
		"longest expires_in a user may ask of generate_token: a duration (720h) or seconds (HYPHA_MAX_TOKEN_LIFETIME)")
	fs.IntVar(&maxRevoked, "max-revoked-tokens", envInt("HYPHA_MAX_REVOKED_TOKENS", 100000), "live entries of the token revocation list; root may always revoke (HYPHA_MAX_REVOKED_TOKENS)")
	fs.IntVar(&maxWorkspaces, "max-workspaces-per-user", envInt("HYPHA_MAX_WORKSPACES_PER_USER", 100), "workspaces one user may create (HYPHA_MAX_WORKSPACES_PER_USER)")
	fs.BoolVar(&noWorkers, "no-workers", false, "do not register the built-in workers")
	fs.BoolVar(&pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ (for measurements only)")
	fs.StringVar(&po.Python, "python", envOr("HYPHA_PYTHON", "python3"), "interpreter for python-eval apps (HYPHA_PYTHON)")
	fs.StringVar(&po.Node, "node", envOr("HYPHA_NODE", "node"), "interpreter for node-eval apps (HYPHA_NODE)")
	fs.StringVar(&po.NodePath, "node-path", envOr("NODE_PATH", ""), "NODE_PATH for node-eval apps")
	fs.IntVar(&po.MaxSessions, "max-sessions", envInt("HYPHA_MAX_SESSIONS", 100), "maximum concurrent app sessions of the built-in process worker")
	addLimitFlags(fs, &limits)
	return cmd
}
