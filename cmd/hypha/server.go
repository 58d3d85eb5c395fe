package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/workers/browser"
	"github.com/hypha-go/hypha/workers/conda"
	"github.com/hypha-go/hypha/workers/mcpproxy"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	var host, publicURL, dataDir string
	var appUser appUserFlags
	var port, rate, burst, maxRevoked, maxWorkspaces int
	var maxTokenLife string
	var noWorkers, pprof bool
	var po process.Options
	var co conda.Options
	var bo browser.Options
	var noBrowser, allowMCPStdio bool
	var limits server.Config  // the resource limits; addLimitFlags binds them
	var appLimits apps.Limits // and the apps controller's
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the embedded Hypha-compatible server with its apps controller and built-in workers",
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := logger(cmd)
			secrets, visible, err := loadSecrets(cmd, serverSecrets)
			if err != nil {
				return err
			}
			if visible {
				// Does not return when it works: the process goes on as
				// the same command without the secrets in argv/environ.
				if err := reexecWithoutSecrets(cmd, serverSecrets, secrets); !errors.Is(err, errNoReexec) {
					return err
				}
				log.Warn("the root token or JWT secret stays visible to local users in this process's command line or environment: give them in files (--root-token-file, --jwt-secret-file)")
			}
			harden(log)
			rootToken, jwtSecret := secrets["root-token"], secrets["jwt-secret"]
			if err := appUserOption(cmd, &po, appUser); err != nil {
				return err
			}
			tokenLife, err := parseLifetime(maxTokenLife)
			if err != nil {
				return fmt.Errorf("--max-token-lifetime: %w", err)
			}
			cfg := limits
			cfg.PublicBaseURL, cfg.JWTSecret, cfg.RootToken, cfg.Logger = publicURL, jwtSecret, rootToken, log
			cfg.MsgRateLimit, cfg.MsgBurstLimit, cfg.DataDir, cfg.Pprof = float64(rate), float64(burst), dataDir, pprof
			cfg.MaxTokenLifetime, cfg.MaxRevokedTokens, cfg.MaxWorkspacesPerUser = tokenLife, maxRevoked, maxWorkspaces
			k8sOpts, err := k8sFromEnv()
			if err != nil {
				return err
			}
			sys, err := embedded.Start(cmd.Context(), embedded.Options{
				Server:    cfg,
				Apps:      appLimits,
				Addr:      net.JoinHostPort(host, strconv.Itoa(port)),
				NoWorkers: noWorkers,
				Process:   po,
				Conda:     co,
				Browser:   bo,
				NoBrowser: noBrowser,
				K8s:       k8sOpts,
				MCPProxy:  mcpproxy.Options{AllowStdio: allowMCPStdio},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Hypha server listening on http://%s (public URL %s, data %s)\n",
				sys.Server.Addr(), sys.Server.URL(), dataDir)
			if pw := sys.ProcessWorker(); pw != nil {
				who, _ := pw.AppUser(cmd.Context())
				fmt.Fprintf(cmd.OutOrStdout(), "Built-in workers: process (python-eval, node-eval) in workspace public; apps run as %s\n", who)
				fmt.Fprintf(cmd.OutOrStdout(), "Built-in conda worker: %s\n", sys.CondaStatus())
				fmt.Fprintf(cmd.OutOrStdout(), "Built-in browser worker: %s\n", sys.BrowserStatus())
				fmt.Fprintf(cmd.OutOrStdout(), "Built-in Kubernetes worker: %s\n", sys.K8sStatus())
				if tw := sys.TerminalWorker(); tw != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "Built-in terminal worker: terminal apps, default shell %s\n", tw.Options().Shell)
				}
				if mw := sys.MCPProxyWorker(); mw != nil {
					stdio := "off (as root: --allow-mcp-stdio)"
					if mw.Options().AllowStdio {
						stdio = "allowed"
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Built-in MCP proxy worker: mcp-server apps; stdio servers %s\n", stdio)
				}
			}
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.OutOrStdout(), "shutting down")
			return sys.Close()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&host, "host", envOr("HYPHA_HOST", "127.0.0.1"), "address to listen on (HYPHA_HOST)")
	envIntVar(fs, &port, "port", "HYPHA_PORT", 9527, "port to listen on, 0 for any (HYPHA_PORT)")
	fs.StringVar(&publicURL, "public-base-url", envOr("HYPHA_PUBLIC_BASE_URL", ""), "URL clients use to reach the server (HYPHA_PUBLIC_BASE_URL)")
	// The secrets have no environment default here (it would show in
	// --help); loadSecrets reads the variables.
	fs.String("root-token", "", "token that authenticates as root (HYPHA_ROOT_TOKEN); moved out of the command line at start, prefer --root-token-file")
	fs.String("root-token-file", "", "file holding the root token, mode 0600 or stricter (HYPHA_ROOT_TOKEN_FILE)")
	fs.String("jwt-secret", "", "HS256 secret for tokens; random when empty (HYPHA_JWT_SECRET); moved out of the command line at start, prefer --jwt-secret-file")
	fs.String("jwt-secret-file", "", "file holding the JWT secret, mode 0600 or stricter (HYPHA_JWT_SECRET_FILE)")
	addSecretsFDFlag(fs)
	fs.StringVar(&dataDir, "data-dir", envOr("HYPHA_DATA_DIR", defaultDataDir()), "where installed apps are stored (HYPHA_DATA_DIR)")
	envIntVar(fs, &rate, "ws-msg-rate-limit", "HYPHA_WS_MSG_RATE_LIMIT", 2000, "binary messages per second per connection (HYPHA_WS_MSG_RATE_LIMIT)")
	envIntVar(fs, &burst, "ws-msg-burst-limit", "HYPHA_WS_MSG_BURST_LIMIT", 20000, "burst of binary messages per connection (HYPHA_WS_MSG_BURST_LIMIT)")
	fs.StringVar(&maxTokenLife, "max-token-lifetime", envOr("HYPHA_MAX_TOKEN_LIFETIME", server.DefaultMaxTokenLifetime.String()),
		"longest expires_in a user may ask of generate_token: a duration (720h) or seconds (HYPHA_MAX_TOKEN_LIFETIME)")
	envIntVar(fs, &maxRevoked, "max-revoked-tokens", "HYPHA_MAX_REVOKED_TOKENS", 100000, "live entries of the token revocation list; root may always revoke (HYPHA_MAX_REVOKED_TOKENS)")
	envIntVar(fs, &maxWorkspaces, "max-workspaces-per-user", "HYPHA_MAX_WORKSPACES_PER_USER", 100, "workspaces one user may create (HYPHA_MAX_WORKSPACES_PER_USER)")
	fs.BoolVar(&noWorkers, "no-workers", false, "do not register the built-in workers")
	fs.BoolVar(&pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ (for measurements only)")
	fs.StringVar(&po.Python, "python", envOr("HYPHA_PYTHON", "python3"), "interpreter for python-eval apps (HYPHA_PYTHON)")
	fs.StringVar(&po.Node, "node", envOr("HYPHA_NODE", "node"), "interpreter for node-eval apps (HYPHA_NODE)")
	fs.StringVar(&po.NodePath, "node-path", envOr("NODE_PATH", ""), "NODE_PATH for node-eval apps")
	addAppUserFlag(fs, &appUser)
	addAppFilesFlags(fs, &po)
	envIntVar(fs, &po.MaxSessions, "max-sessions", "HYPHA_MAX_SESSIONS", 100, "maximum concurrent app sessions of the built-in process worker")
	addLimitFlags(fs, &limits, &appLimits)
	addLogFlags(fs, &po)
	addCondaFlags(fs, &co)
	addBrowserFlags(fs, &bo, &noBrowser)
	fs.BoolVar(&allowMCPStdio, "allow-mcp-stdio", envOr("HYPHA_ALLOW_MCP_STDIO", "") == "1" || envOr("HYPHA_ALLOW_MCP_STDIO", "") == "true", "let mcp-server apps start local stdio MCP servers even when the server runs as root (each runs as a supervised session with its own uid, as python-eval apps; always allowed otherwise) (HYPHA_ALLOW_MCP_STDIO)")
	return cmd
}

// appUserFlags are --app-user and --app-uids.
type appUserFlags struct{ user, uids string }

// addAppUserFlag declares --app-user (HYPHA_APP_USER) and --app-uids
// (HYPHA_APP_UIDS).
func addAppUserFlag(fs *pflag.FlagSet, v *appUserFlags) {
	fs.StringVar(&v.user, "app-user", envOr("HYPHA_APP_USER", ""), "when this process runs as root, run every app session as this one user (HYPHA_APP_USER); sessions can then read, signal and trace each other. "+
		"Default: each session runs as its own uid from --app-uids. --app-user=root or --app-user= runs apps as root: unsafe, app code can then read every secret")
	fs.StringVar(&v.uids, "app-uids", envOr("HYPHA_APP_UIDS", fmt.Sprintf("%d-%d", process.DefaultAppUIDBase, process.DefaultAppUIDBase+process.DefaultAppUIDCount-1)),
		"when this process runs as root, the range START-END of unused uids app sessions run as, one per live session; it must hold no account and at least --max-sessions uids (HYPHA_APP_UIDS)")
}

// appUserOption sets the process worker's app user from --app-user and
// --app-uids: an explicitly empty --app-user (flag or HYPHA_APP_USER) or
// "root" is the opt-out.
func appUserOption(cmd *cobra.Command, po *process.Options, v appUserFlags) error {
	env, envSet := os.LookupEnv("HYPHA_APP_USER")
	explicitEmpty := v.user == "" && (cmd.Flags().Changed("app-user") || (envSet && env == ""))
	if explicitEmpty || v.user == "root" {
		po.RunAsWorkerUser = true
		return nil
	}
	po.AppUser = v.user
	if os.Getenv("HYPHA_APP_UIDS") == "" && !cmd.Flags().Changed("app-uids") {
		return nil // the worker's default, and no "ignored" warning next to --app-user
	}
	base, count, err := process.ParseUIDRange(v.uids)
	if err != nil {
		return fmt.Errorf("--app-uids: %w", err)
	}
	po.AppUIDBase, po.AppUIDCount = base, count
	return nil
}
