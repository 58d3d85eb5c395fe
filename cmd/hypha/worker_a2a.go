package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypha-go/hypha/workers/a2aproxy"
)

func newA2AWorkerCmd() *cobra.Command {
	var wf workerFlags
	var opts a2aproxy.Options
	cmd := &cobra.Command{
		Use:   "a2a-proxy",
		Short: "Run a2a-agent apps: remote A2A agents registered as Hypha services",
		Long: `Register the A2A proxy worker (app type a2a-agent) with a Hypha server. Each
session connects to the server as the app (the session's client id and token,
never the worker's), reads the agent card of every agent in the manifest's
a2aAgents ({name: {url, headers}}) and registers a service per agent: a
function per skill, run(message), stream(message) when the agent streams, and
agent_card; then the app's default service. Stop closes the app's connection,
which removes its services. The worker starts no process: keep it protected
(the default) or list the workspaces allowed to use it, since it makes HTTP
requests to the URLs apps name. A token given with --token or HYPHA_TOKEN is
moved out of the command line and environment at start. On SIGINT or SIGTERM
every session is stopped and the worker unregisters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := wf.start(cmd)
			if err != nil {
				return err
			}
			opts.Logger = st.log
			w := a2aproxy.New(opts)
			props, ho, err := st.ho.Check(w)
			if err != nil {
				_ = w.Shutdown(context.Background())
				return err
			}
			out := cmd.OutOrStdout()
			st.banner(out, &wf, "A2A Proxy Worker", ho, props)
			fmt.Fprintf(out, "  Max Sessions: %d\n", w.Options().MaxSessions)
			if opts.DenyPrivateNetworks {
				fmt.Fprintln(out, "  Private Networks: refused")
			}
			return serveWorker(cmd, &wf, "A2A proxy", w, w.Sessions.Len, ho, 30*time.Second)
		},
	}
	wf.add(cmd)
	fs := cmd.Flags()
	envIntVar(fs, &opts.MaxSessions, "max-sessions", "HYPHA_MAX_A2A_SESSIONS", a2aproxy.DefaultMaxSessions, "maximum number of sessions (HYPHA_MAX_A2A_SESSIONS)")
	fs.DurationVar(&opts.Limits.CardTimeout, "card-timeout", 15*time.Second, "how long start waits for an agent card")
	fs.DurationVar(&opts.Limits.CallTimeout, "call-timeout", 5*time.Minute, "how long one message/send may take")
	fs.BoolVar(&opts.DenyPrivateNetworks, "deny-private-networks", false, "refuse agents on loopback and private addresses too (link-local ones are always refused)")
	addSecretsFDFlag(fs)
	return cmd
}
