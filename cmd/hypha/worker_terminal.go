package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypha-go/hypha/workers/process"
	"github.com/hypha-go/hypha/workers/terminal"
)

func newTerminalWorkerCmd() *cobra.Command {
	var wf workerFlags
	var opts terminal.Options
	var appUser appUserFlags
	cmd := &cobra.Command{
		Use:   "terminal",
		Short: "Run terminal apps: a shell or another program on a pseudo-terminal per session",
		Long: `Register a terminal worker (app type terminal) with a Hypha server. Each session
runs the manifest's startup_command (default: --shell) on a pseudo-terminal of
its own, in a private working directory holding the app's entry point and
files_to_stage, with the session's HYPHA_* variables and the manifest's env.
Clients drive it with execute, write_terminal, read_terminal, resize_terminal,
get_screen_content and attach.

When the worker runs as root, each session runs as its own unprivileged uid
from --app-uids (or all as one --app-user), under a supervisor that ends every
process of the session on stop. Keep the worker protected (the default) or list
the workspaces allowed to use it: whoever may call it may type into its
terminals. A token given with --token or HYPHA_TOKEN is moved out of the
command line and environment at start. On SIGINT or SIGTERM every session is
stopped and the worker unregisters.`,
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
			opts.DisableSSL = wf.disableSSL
			opts.Logger = log
			w := terminal.New(opts)
			eff := w.Options()
			props, ho, err := ho.Check(w)
			if err != nil {
				_ = w.Shutdown(context.Background())
				return err
			}
			out := cmd.OutOrStdout()
			st.banner(out, &wf, "Terminal Worker", ho, props)
			fmt.Fprintf(out, "  Shell: %s\n", eff.Shell)
			fmt.Fprintf(out, "  Max Sessions: %d\n", eff.MaxSessions)
			return serveWorker(cmd, &wf, "Terminal", w, w.Sessions.Len, ho, eff.StopGrace+30*time.Second)
		},
	}
	wf.add(cmd)
	fs := cmd.Flags()
	envIntVar(fs, &opts.MaxSessions, "max-sessions", "HYPHA_MAX_TERMINAL_SESSIONS", terminal.DefaultMaxSessions, "maximum number of sessions (HYPHA_MAX_TERMINAL_SESSIONS)")
	fs.StringVar(&opts.Shell, "shell", envOr("HYPHA_TERMINAL_SHELL", ""), "program a session runs when its manifest has no startup_command (HYPHA_TERMINAL_SHELL; default: $SHELL, else /bin/bash, else /bin/sh)")
	fs.DurationVar(&opts.StopGrace, "stop-grace", terminal.DefaultStopGrace, "how long stop waits after the hang-up and SIGTERM before SIGKILL")
	fs.IntVar(&opts.ScrollbackBytes, "scrollback-bytes", terminal.DefaultScrollbackBytes, "raw output kept per session for read_terminal and a viewer's first screen")
	addAppUserFlag(fs, &appUser)
	addSecretsFDFlag(fs)
	fs.StringVar(&opts.WorkDir, "work-dir", envOr("HYPHA_WORK_DIR", ""), "parent directory of the per-session working directories (HYPHA_WORK_DIR; default: the system temp dir)")
	return cmd
}
