package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hypha-go/hypha/internal/bench"
	"github.com/hypha-go/hypha/server"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure a Hypha server"}
	var o bench.Options
	var serverProcess bool
	rpcCmd := &cobra.Command{
		Use:   "rpc",
		Short: "Echo calls between two clients through a server: calls/s and latency percentiles",
		Long: "Registers an echo service on one connection and calls it from another.\n" +
			"Without --server-url it starts the embedded server in-process on a loopback port.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			target := o.ServerURL
			if serverProcess {
				if o.ServerURL != "" || o.ServerPID != 0 {
					return fmt.Errorf("--server-process starts its own server: leave out --server-url and --server-pid")
				}
				ulimitNoFile(4 * (o.Clients + 16))
				url, pid, stop, err := startServerProcess(cmd.Context())
				if err != nil {
					return err
				}
				defer stop()
				o.ServerURL, o.ServerPID, o.Token = url, pid, benchRootToken
				target = fmt.Sprintf("hypha server process %d at %s", pid, url)
			}
			if o.ServerPID != 0 && o.ServerURL == "" {
				return fmt.Errorf("--server-pid %d: give the --server-url of that server too", o.ServerPID)
			}
			embedded := o.ServerURL == ""
			if embedded {
				srv, err := server.New(server.Config{JWTSecret: "bench", RootToken: "bench-root-token", Logger: o.Logger,
					MsgRateLimit: 1e9, MsgBurstLimit: 1e9})
				if err != nil {
					return err
				}
				if err := srv.Start("127.0.0.1:0"); err != nil {
					return err
				}
				defer srv.Close()
				o.ServerURL = srv.URL()
				o.Token = "bench-root-token"
				target = "embedded " + srv.URL()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bench rpc: server=%s clients=%d concurrency=%d payload=%dB duration=%s anonymous-callers=%v\n",
				target, max(o.Clients, 1), o.Concurrency, o.Payload, o.Duration, o.AnonymousCallers)
			r, err := bench.RPC(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "calls/s: %.0f\np50: %s\np90: %s\np99: %s\ncalls: %d errors: %d\n",
				r.PerSec, r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Calls, r.Errors)
			scope := "clients only"
			if embedded {
				scope = "clients and server"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cpu per call (this process: %s): %s\n", scope, r.CPUPerCall.Round(100*time.Nanosecond))
			if o.ServerPID != 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "server cpu per call (process %d): %s\n", o.ServerPID, r.ServerCPUPerCall.Round(100*time.Nanosecond))
				if r.ServerReadsPerCall > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "server system calls per call: %.2f reads, %.2f writes\n", r.ServerReadsPerCall, r.ServerWritesPerCall)
				}
			}
			if r.FirstErr != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "first error: %v\n", r.FirstErr)
			}
			return nil
		},
	}
	fs := rpcCmd.Flags()
	fs.StringVar(&o.ServerURL, "server-url", envOr("HYPHA_SERVER_URL", ""), "server to measure; empty starts the embedded one (HYPHA_SERVER_URL)")
	secretStringVar(fs, &o.Token, "token", "HYPHA_TOKEN", "token (HYPHA_TOKEN)")
	fs.StringVar(&o.Workspace, "workspace", envOr("HYPHA_WORKSPACE", ""), "workspace (HYPHA_WORKSPACE)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to call")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "concurrent callers")
	fs.IntVar(&o.Payload, "payload", 0, "bytes sent in each call (0 sends a short string)")
	fs.IntVar(&o.Clients, "clients", 1, "caller connections; the --concurrency callers are spread over them")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "pid of the server at --server-url: its CPU time per call is reported (Linux /proc)")
	fs.BoolVar(&o.AnonymousCallers, "anonymous-callers", false, "callers connect without a token, each an anonymous user (the echo service is public): for servers that limit connections per user")
	fs.BoolVar(&serverProcess, "server-process", false, "start 'hypha server' from this binary as a separate process and report its CPU time per call")
	cmd.AddCommand(rpcCmd, newBenchConnsCmd(), newBenchSessionsCmd())
	return cmd
}

func newBenchConnsCmd() *cobra.Command {
	var o bench.ConnsOptions
	cmd := &cobra.Command{
		Use:   "conns",
		Short: "Open idle connections and report the server's resident memory",
		Long: "Opens --connections full client connections (handshake, built-in service, subscription)\n" +
			"and reports the server process's RSS before and after. Without --server-url it runs\n" +
			"'hypha server' from this binary as a child process on a free port.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			if o.ServerURL == "" {
				url, pid, stop, err := startServerProcess(cmd.Context())
				if err != nil {
					return err
				}
				defer stop()
				o.ServerURL, o.ServerPID, o.Token = url, pid, benchRootToken
			}
			if o.ServerPID == 0 {
				return fmt.Errorf("--server-pid is required with --server-url")
			}
			ulimitNoFile(o.Connections*2 + 100)
			o.Measured = func(r bench.ConnsResult) {
				fmt.Fprintf(cmd.OutOrStdout(), "%s (holding the connections for %s)\n", r, o.Hold)
			}
			r, err := bench.Conns(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), r)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.ServerURL, "server-url", "", "server to measure (with --server-pid); empty runs a child 'hypha server'")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "pid of the server process whose RSS is measured")
	secretStringVar(fs, &o.Token, "token", "HYPHA_TOKEN", "token (HYPHA_TOKEN)")
	fs.IntVar(&o.Connections, "connections", 1000, "idle connections to open")
	fs.DurationVar(&o.Hold, "hold", 0, "keep the connections open this long after measuring (to profile the server)")
	return cmd
}

func newBenchSessionsCmd() *cobra.Command {
	var o bench.SessionsOptions
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "Measure python-eval session start overhead and many concurrent app sessions",
		Long: "Starts the embedded server, apps controller and process worker in this process (temporary\n" +
			"data directory) and measures (a) start(wait_for_service=False) of a python-eval app running\n" +
			"'pass' against a bare '<python> -c pass' (--samples pairs), and (b) --sessions concurrent\n" +
			"sleeping sessions: time to start and stop them all, this process's RSS, and that no app\n" +
			"process is left afterwards.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = cmd.ErrOrStderr()
			ulimitNoFile(o.Sessions*8 + 256)
			r, err := bench.Sessions(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), r.Report())
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Sessions, "sessions", 200, "concurrent sleeping sessions in part (b)")
	fs.IntVar(&o.Samples, "samples", 20, "timed starts in part (a), each paired with a bare interpreter run")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "concurrent start and stop calls in part (b)")
	fs.StringVar(&o.Python, "python", envOr("HYPHA_PYTHON", "python3"), "interpreter for the worker and the bare baseline (HYPHA_PYTHON)")
	fs.IntVar(&o.MaxSessions, "max-sessions", 0, "the process worker's session cap (0: enough for --sessions)")
	return cmd
}
