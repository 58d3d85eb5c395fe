package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/spf13/cobra"
)

func newWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a standalone server-app worker that registers with a Hypha server",
	}
	cmd.AddCommand(newProcessWorkerCmd(), newCondaWorkerCmd(), newBrowserWorkerCmd(), newK8sWorkerCmd(), newTerminalWorkerCmd(), newA2AWorkerCmd(), newMCPProxyWorkerCmd())
	return cmd
}

// workerFlags are the flags every standalone worker shares (upstream's
// python -m hypha.workers.<x> CLIs, worker-contract §4).
type workerFlags struct {
	clientFlags
	clientID, serviceID, visibility, authorized, useLocalURL string
	disableSSL                                               bool
}

func (f *workerFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	f.clientFlags.add(fs)
	fs.StringVar(&f.clientID, "client-id", envOr("HYPHA_CLIENT_ID", ""), "client id of the worker's connection; random when empty (HYPHA_CLIENT_ID)")
	fs.StringVar(&f.serviceID, "service-id", envOr("HYPHA_SERVICE_ID", ""), "service id of the worker (HYPHA_SERVICE_ID)")
	fs.StringVar(&f.visibility, "visibility", envOr("HYPHA_VISIBILITY", "protected"), "service visibility: protected, public or unlisted (HYPHA_VISIBILITY)")
	fs.StringVar(&f.authorized, "authorized-workspaces", envOr("HYPHA_AUTHORIZED_WORKSPACES", ""), "comma-separated workspaces allowed to use a protected worker (HYPHA_AUTHORIZED_WORKSPACES)")
	fs.BoolVar(&f.disableSSL, "disable-ssl", false, "do not verify TLS certificates (server connection and app file downloads)")
	fs.StringVar(&f.useLocalURL, "use-local-url", "false", "ask the server for its local URL in start configs: true (the flag alone), false, or --use-local-url=URL")
	fs.Lookup("use-local-url").NoOptDefVal = "true"
}

// registration turns the flags into hyphaworker options and the
// use_local_url value (bool or URL).
func (f *workerFlags) registration() (hyphaworker.Options, bool, string, error) {
	var ho hyphaworker.Options
	vis := hyphaworker.Visibility(strings.ToLower(f.visibility))
	switch vis {
	case hyphaworker.Public, hyphaworker.Protected, hyphaworker.Unlisted:
	default:
		return ho, false, "", fmt.Errorf("--visibility %q: want protected, public or unlisted", f.visibility)
	}
	ho.ServiceID, ho.Visibility = f.serviceID, vis
	for _, w := range strings.Split(f.authorized, ",") {
		if w = strings.TrimSpace(w); w != "" {
			ho.AuthorizedWorkspaces = append(ho.AuthorizedWorkspaces, w)
		}
	}
	switch v := strings.TrimSpace(f.useLocalURL); strings.ToLower(v) {
	case "", "false", "0", "no":
		return ho, false, "", nil
	case "true", "1", "yes":
		ho.UseLocalURL = true
		return ho, true, "", nil
	default:
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return ho, false, "", fmt.Errorf("--use-local-url %q: want true, false or an http(s) URL", v)
		}
		ho.LocalURL = v
		return ho, false, v, nil
	}
}

// connect opens a reconnecting connection for a long-running worker.
func (f *workerFlags) connect(cmd *cobra.Command) (*rpc.Client, error) {
	if f.serverURL == "" {
		return nil, errors.New("--server-url is required (or set HYPHA_SERVER_URL)")
	}
	cfg := rpc.Config{
		ServerURL: f.serverURL, Token: f.token, Workspace: f.workspace, ClientID: f.clientID,
		Logger: logger(cmd), InsecureSkipVerify: f.disableSSL,
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	return rpc.Connect(ctx, cfg)
}

// workerStart is the start every `hypha worker <kind>` shares, before it
// makes its worker: the registration options from the flags, the logger,
// the token moved out of the command line and environment (the process
// starts again without them, since apps could read them in
// /proc/<pid>/cmdline and environ), and the process hardened.
type workerStart struct {
	ho       hyphaworker.Options
	useLocal bool
	localURL string
	log      *slog.Logger
}

func (f *workerFlags) start(cmd *cobra.Command) (*workerStart, error) {
	ho, useLocal, localURL, err := f.registration()
	if err != nil {
		return nil, err
	}
	log := logger(cmd)
	secrets, visible, err := loadSecrets(cmd, workerSecrets)
	if err != nil {
		return nil, err
	}
	if visible {
		if err := reexecWithoutSecrets(cmd, workerSecrets, secrets); !errors.Is(err, errNoReexec) {
			return nil, err
		}
		log.Warn("the token stays visible to local users in this process's command line or environment")
	}
	harden(log)
	f.token = secrets["token"]
	return &workerStart{ho: ho, useLocal: useLocal, localURL: localURL, log: log}, nil
}

// banner prints the lines every worker prints as it starts (upstream's
// workers print the same); the worker's own lines follow.
// head are "Name: value" lines the worker puts first, as upstream's do.
func (st *workerStart) banner(out io.Writer, f *workerFlags, title string, ho hyphaworker.Options, props worker.Properties, head ...string) {
	local := fmt.Sprint(st.useLocal)
	if st.localURL != "" {
		local = st.localURL
	}
	fmt.Fprintf(out, "Starting Hypha %s...\n", title)
	for _, l := range head {
		fmt.Fprintf(out, "  %s\n", l)
	}
	fmt.Fprintf(out, "  Server URL: %s\n", f.serverURL)
	fmt.Fprintf(out, "  Workspace: %s\n", orDefault(f.workspace, "(the token's)"))
	fmt.Fprintf(out, "  Client ID: %s\n", orDefault(f.clientID, "(random)"))
	fmt.Fprintf(out, "  Service ID: %s\n", ho.ServiceID)
	fmt.Fprintf(out, "  Visibility: %s\n", ho.Visibility)
	if len(ho.AuthorizedWorkspaces) > 0 {
		fmt.Fprintf(out, "  Authorized Workspaces: %s\n", strings.Join(ho.AuthorizedWorkspaces, ", "))
	}
	fmt.Fprintf(out, "  Use Local URL: %s\n", local)
	fmt.Fprintf(out, "  Supported Types: %s\n", strings.Join(props.SupportedTypes, ", "))
}

func newProcessWorkerCmd() *cobra.Command {
	var wf workerFlags
	var opts process.Options
	var appUser appUserFlags
	cmd := &cobra.Command{
		Use:   "process",
		Short: "Run python-eval and node-eval apps as local interpreter processes",
		Long: `Register a process worker (app types python-eval and node-eval) with a Hypha
server and run the apps it is asked to start as local processes: the app's files
are downloaded into a temporary working directory and the entry point runs with
the Python or Node interpreter, in its own process group, with only the HYPHA_*
connection variables, PATH, HOME, LANG, NODE_PATH and the manifest's env.

When the worker runs as root, each session runs as its own unprivileged uid
from --app-uids (or all as one --app-user); otherwise apps run as the
worker's user and can read what it can. Keep the
worker protected (the default) or list the workspaces allowed to use it. A
token given with --token or HYPHA_TOKEN is moved out of the command line and
environment at start.

A lost connection stops nothing: the client reconnects with the same client id
and registers the worker again, and a restarted server re-adopts the sessions
that still run. On SIGINT or SIGTERM every session is stopped and the worker
unregisters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := wf.start(cmd)
			if err != nil {
				return err
			}
			ho, log := st.ho, st.log
			if err := appUserOption(cmd, &opts, appUser); err != nil {
				return err
			}
			opts.DisableSSL = wf.disableSSL
			opts.Logger = log
			w := process.New(opts)
			eff := w.Options()
			props, ho, err := ho.Check(w)
			if err != nil {
				_ = w.Shutdown(context.Background())
				return err
			}

			out := cmd.OutOrStdout()
			st.banner(out, &wf, "Process Worker", ho, props)
			fmt.Fprintf(out, "  Python: %s\n", interpreterNote(cmd.Context(), w, process.TypePython, eff.Python))
			fmt.Fprintf(out, "  Node: %s\n", interpreterNote(cmd.Context(), w, process.TypeNode, eff.Node))
			if who, err := w.AppUser(cmd.Context()); err == nil {
				fmt.Fprintf(out, "  Apps run as: %s\n", who)
			} else {
				_ = w.Shutdown(context.Background())
				return err
			}
			if eff.NodePath != "" {
				fmt.Fprintf(out, "  Node Path: %s\n", eff.NodePath)
			}
			fmt.Fprintf(out, "  Max Sessions: %d\n", eff.MaxSessions)

			return serveWorker(cmd, &wf, "Process", w, w.Sessions.Len, ho, eff.StopGrace+30*time.Second)
		},
	}
	wf.add(cmd)
	fs := cmd.Flags()
	envIntVar(fs, &opts.MaxSessions, "max-sessions", "HYPHA_MAX_SESSIONS", process.DefaultMaxSessions, "maximum number of sessions (HYPHA_MAX_SESSIONS)")
	addLogFlags(fs, &opts)
	fs.StringVar(&opts.Python, "python", envOr("HYPHA_PYTHON", "python3"), "Python interpreter for python-eval apps (HYPHA_PYTHON)")
	fs.StringVar(&opts.Node, "node", envOr("HYPHA_NODE", "node"), "Node.js interpreter for node-eval apps (HYPHA_NODE)")
	fs.StringVar(&opts.NodePath, "node-path", envOr("HYPHA_NODE_PATH", ""), "NODE_PATH given to node-eval apps (HYPHA_NODE_PATH)")
	fs.DurationVar(&opts.StopGrace, "stop-grace", process.DefaultStopGrace, "how long stop waits after SIGTERM before SIGKILL")
	addAppUserFlag(fs, &appUser)
	addAppFilesFlags(fs, &opts)
	addSecretsFDFlag(fs)
	fs.StringVar(&opts.WorkDir, "work-dir", envOr("HYPHA_WORK_DIR", ""), "parent directory of the per-session working directories (HYPHA_WORK_DIR; default: the system temp dir)")
	return cmd
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// interpreterNote shows where an interpreter resolves (for apps run as the
// app user, one that user can run), or why its apps cannot start.
func interpreterNote(ctx context.Context, w *process.Worker, appType, name string) string {
	p, err := w.Interpreter(ctx, appType)
	if err != nil {
		return name + " (" + err.Error() + ")"
	}
	if p == name {
		return name
	}
	return name + " (" + p + ")"
}

// shutdownWorker is what serveWorker needs of a built-in worker.
type shutdownWorker interface {
	worker.Worker
	Shutdown(ctx context.Context) error
}

// serveWorker connects, registers w with ho, says so, and serves until
// Ctrl-C (or SIGTERM) or until the server closes the connection; then it
// stops every session within stopBudget (hyphaworker.Shutdown). Every
// `hypha worker <kind>` ends this way.
func serveWorker(cmd *cobra.Command, wf *workerFlags, kind string, w shutdownWorker, sessions func() int,
	ho hyphaworker.Options, stopBudget time.Duration) error {
	out := cmd.OutOrStdout()
	c, err := wf.connect(cmd)
	if err != nil {
		_ = w.Shutdown(context.Background())
		return err
	}
	defer c.Close()
	info := c.Info()
	fmt.Fprintf(out, "Connected to %s as %s/%s\n", wf.serverURL, info.Workspace, info.ClientID)
	ctx := cmd.Context()
	id, err := hyphaworker.Register(ctx, c, w, ho)
	if err != nil {
		_ = w.Shutdown(context.Background())
		return err
	}
	fmt.Fprintf(out, "Registered service id: %s\n", id)
	fmt.Fprintf(out, "%s worker ready; press Ctrl+C to stop.\n", kind)
	var cause error
	select {
	case <-ctx.Done():
	case <-c.Done():
		cause = errors.New("the connection to the server was closed")
	}
	fmt.Fprintf(out, "Stopping the worker (%d session(s))...\n", sessions())
	sctx, cancel := context.WithTimeout(context.Background(), stopBudget)
	defer cancel()
	if err := hyphaworker.Shutdown(sctx, c, w, id); err != nil {
		cause = errors.Join(cause, err)
	}
	fmt.Fprintln(out, "Worker stopped.")
	return cause
}
