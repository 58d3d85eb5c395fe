package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hypha-go/hypha/workers/conda"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// addCondaFlags declares the conda worker's environment flags that the
// embedded server (hypha server, hypha run) shares: --conda-path and
// --conda-cache-dir.
func addCondaFlags(fs *pflag.FlagSet, co *conda.Options) {
	fs.StringVar(&co.CondaPath, "conda-path", envOr("HYPHA_CONDA_PATH", ""),
		"environment manager for conda-jupyter-kernel apps (micromamba, mamba or conda; default: the first found on PATH) (HYPHA_CONDA_PATH)")
	fs.StringVar(&co.CacheDir, "conda-cache-dir", envOr("HYPHA_CONDA_CACHE_DIR", ""),
		"folder of the cached conda environments (HYPHA_CONDA_CACHE_DIR; default: the user's cache folder, /var/cache/hypha/conda-envs as root)")
	noPip, _ := strconv.ParseBool(os.Getenv("HYPHA_CONDA_NO_PIP_VENV"))
	fs.BoolVar(&co.NoPipVenv, "conda-no-pip-venv", noPip,
		"build every conda environment with the manager, never as a pip-only virtual environment (HYPHA_CONDA_NO_PIP_VENV)")
}

func newCondaWorkerCmd() *cobra.Command {
	var wf workerFlags
	var opts conda.Options
	var appUser appUserFlags
	cmd := &cobra.Command{
		Use:   "conda",
		Short: "Run conda-jupyter-kernel apps: Python in cached conda environments with a Jupyter kernel",
		Long: `Register a conda worker (app type conda-jupyter-kernel, upstream's) with a Hypha
server. Each session gets the conda environment its manifest asks for
(dependencies, channels; built once with micromamba, mamba or conda and cached
by the spec's hash, or as a pip-only virtual environment), the entry point and
files_to_stage in a fresh working directory, and an ipykernel from that
environment that runs the entry point with the HYPHA_* variables set. execute
runs more code in the same kernel (hypha apps execute).

When the worker runs as root, each session runs as its own unprivileged uid
from --app-uids (or all as one --app-user); otherwise apps run as the worker's
user. Keep the worker protected (the default) or list the workspaces allowed
to use it. A token given with --token or HYPHA_TOKEN is moved out of the
command line and environment at start. On SIGINT or SIGTERM every session is
stopped and the worker unregisters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wf.authorized == "" {
				wf.authorized = os.Getenv("HYPHA_CONDA_AUTHORIZED_WORKSPACES") // upstream's name
			}
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
			opts.DisableSSL = wf.disableSSL
			opts.Logger = log
			w := conda.New(opts)
			if err := w.Check(cmd.Context()); err != nil {
				_ = w.Shutdown(context.Background())
				return fmt.Errorf("%w\n  install micromamba, mamba or conda, or pass --conda-path", err)
			}
			eff := w.Options()
			props, ho, err := ho.Check(w)
			if err != nil {
				_ = w.Shutdown(context.Background())
				return err
			}
			out := cmd.OutOrStdout()
			m := w.Manager()
			who, _ := w.AppUser(cmd.Context())
			st.banner(out, &wf, "Conda Environment Worker", ho, props,
				fmt.Sprintf("Package Manager: %s (%s, %s)", m.Name, m.Path, m.Version),
			)
			fmt.Fprintf(out, "  Cache Dir: %s\n", w.CacheDir())
			fmt.Fprintf(out, "  Working Dir: %s\n", orDefault(eff.WorkDir, os.TempDir()))
			fmt.Fprintf(out, "  Apps run as: %s\n", who)

			return serveWorker(cmd, &wf, "Conda", w, w.Sessions.Len, ho, eff.StopGrace*2+30*time.Second)
		},
	}
	wf.add(cmd)
	fs := cmd.Flags()
	fs.StringVar(&opts.CondaPath, "conda-path", envOr("HYPHA_CONDA_PATH", ""),
		"environment manager: micromamba, mamba or conda, by path or name (HYPHA_CONDA_PATH; default: the first found on PATH)")
	fs.StringVar(&opts.CacheDir, "cache-dir", envOr("HYPHA_CONDA_CACHE_DIR", ""),
		"folder of the cached environments (HYPHA_CONDA_CACHE_DIR; default: the user's cache folder, /var/cache/hypha/conda-envs as root)")
	fs.StringVar(&opts.WorkDir, "working-dir", envOr("HYPHA_CONDA_WORKING_DIR", ""),
		"parent of the per-session working directories (HYPHA_CONDA_WORKING_DIR; default: the system temp dir)")
	envIntVar(fs, &opts.MaxEnvs, "max-envs", "HYPHA_CONDA_MAX_ENVS", 10, "cached environments kept, least recently used evicted first (HYPHA_CONDA_MAX_ENVS)")
	fs.BoolVar(&opts.NoPipVenv, "no-pip-venv", false, "build every environment with the manager, never as a pip-only virtual environment")
	envIntVar(fs, &opts.MaxSessions, "max-sessions", "HYPHA_MAX_SESSIONS", conda.DefaultMaxSessions, "maximum number of sessions (HYPHA_MAX_SESSIONS)")
	fs.DurationVar(&opts.StopGrace, "stop-grace", conda.DefaultStopGrace, "how long stop waits for the kernel to shut down, and after SIGTERM, before SIGKILL")
	addAppUserFlag(fs, &appUser)
	addSecretsFDFlag(fs)
	return cmd
}
