package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/workers/mcpproxy"
	"github.com/hypha-go/hypha/workers/process"
)

func newMCPProxyWorkerCmd() *cobra.Command {
	var wf workerFlags
	var opts mcpproxy.Options
	var appUser appUserFlags
	cmd := &cobra.Command{
		Use:   "mcp-proxy",
		Short: "Run MCP server apps: MCP servers' tools, resources and prompts as Hypha services",
		Long: `Register an MCP proxy worker (app type mcp-server) with a Hypha server. An app's
manifest lists MCP servers under mcpServers: {name: {type: "streamable-http" or
"sse", url, headers}} or {type: "stdio", command, args, env}. Each session
connects to the Hypha server as the app (the session's client id and token),
keeps one MCP session per server (reopened when it drops) and registers per
server a service {id: name, type: "mcp", tools, resources, prompts}, then
"default". Stop closes the MCP sessions, kills stdio servers and disconnects
the app, so its services are gone.

stdio servers are refused unless --allow-stdio is given: allow them only where
whoever may start an app may run a program on this host. Each runs as a
session of the process supervisor, as the process worker's apps do (its own
uid from --app-uids when this worker is root, a supervisor in a PID namespace
that ends every process of it, a private working directory under --work-dir,
SIGTERM then SIGKILL after --stop-grace on stop). One message from an MCP
server is bounded by --max-message-bytes. A token given with --token or
HYPHA_TOKEN is moved out of the command line and environment at start. On
SIGINT or SIGTERM every session is stopped and the worker unregisters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := wf.start(cmd)
			if err != nil {
				return err
			}
			ho, log := st.ho, st.log
			var po process.Options
			if err := appUserOption(cmd, &po, appUser); err != nil {
				return err
			}
			opts.AppUser, opts.AppUIDBase, opts.AppUIDCount, opts.RunAsWorkerUser = po.AppUser, po.AppUIDBase, po.AppUIDCount, po.RunAsWorkerUser
			opts.Logger = log
			w := mcpproxy.New(opts)
			props, ho, err := ho.Check(w)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			st.banner(out, &wf, "MCP Proxy Worker", ho, props)
			fmt.Fprintf(out, "  Max Sessions: %d\n", w.Options().MaxSessions)
			fmt.Fprintf(out, "  stdio servers: %v\n", w.Options().AllowStdio)
			return serveWorker(cmd, &wf, "MCP Proxy", w, w.Sessions.Len, ho, 30*time.Second)
		},
	}
	wf.add(cmd)
	fs := cmd.Flags()
	envIntVar(fs, &opts.MaxSessions, "max-sessions", "HYPHA_MAX_MCP_PROXY_SESSIONS", mcpproxy.DefaultMaxSessions, "maximum number of sessions (HYPHA_MAX_MCP_PROXY_SESSIONS)")
	fs.BoolVar(&opts.AllowStdio, "allow-stdio", false, "let manifests start local stdio MCP servers (each runs as a supervised session, as the process worker's apps)")
	envIntVar(fs, &opts.MaxMessageBytes, "max-message-bytes", "HYPHA_MCP_MAX_MESSAGE_BYTES", mcpproxy.DefaultMaxMessageBytes, "bound on one message from an MCP server: a stdio line, an HTTP response body, an event-stream event (HYPHA_MCP_MAX_MESSAGE_BYTES)")
	fs.DurationVar(&opts.StopGrace, "stop-grace", localproc.DefaultStopGrace, "how long stop waits after SIGTERM before SIGKILL for a stdio server's processes")
	fs.StringVar(&opts.WorkDir, "work-dir", envOr("HYPHA_WORK_DIR", ""), "parent directory of the stdio servers' working directories (HYPHA_WORK_DIR; default: the system temp dir)")
	addAppUserFlag(fs, &appUser)
	addSecretsFDFlag(fs)
	return cmd
}
