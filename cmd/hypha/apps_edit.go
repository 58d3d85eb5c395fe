package main

// hypha apps edit-file, remove-file, edit, validate, commit, discard, worker:
// the controller's editing functions (docs/apps.md, "Editing apps and
// workers" and "Staged versions").

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/hypha-go/hypha/rpc"
)

// appsEditCommands are added to `hypha apps`; withApps connects and gets
// public/server-apps.
func appsEditCommands(withApps func(func(context.Context, *cobra.Command, *rpc.Client, *rpc.RemoteService, []string) error) func(*cobra.Command, []string) error) []*cobra.Command {
	// --stage of edit-file, remove-file and edit: change the staged version.
	var fileStage, removeStage, editStage bool
	staged := func(on bool) rpc.Kwargs {
		if on {
			return rpc.Kwargs{"stage": true}
		}
		return rpc.Kwargs{}
	}
	editFile := &cobra.Command{
		Use:   "edit-file APP_ID PATH [LOCAL_FILE]",
		Short: "Write one file of an installed app (from LOCAL_FILE, else from stdin)",
		Args:  cobra.RangeArgs(2, 3),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			var b []byte
			var err error
			if len(args) == 3 {
				b, err = os.ReadFile(args[2])
			} else {
				b, err = readAllLimited(cmd.InOrStdin())
			}
			if err != nil {
				return err
			}
			_, err = apps.Call(ctx, "edit_file", args[0], args[1], string(b), staged(fileStage))
			return err
		}),
	}
	editFile.Flags().BoolVar(&fileStage, "stage", false, "write into the app's staged version (made from the committed one if it has none)")
	removeFile := &cobra.Command{
		Use:   "remove-file APP_ID PATH",
		Short: "Remove one file of an installed app",
		Args:  cobra.ExactArgs(2),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			_, err := apps.Call(ctx, "remove_file", args[0], args[1], staged(removeStage))
			return err
		}),
	}
	removeFile.Flags().BoolVar(&removeStage, "stage", false, "remove the file from the app's staged version")
	var manifestJSON, startupJSON string
	var disable, enable bool
	edit := &cobra.Command{
		Use:   "edit APP_ID",
		Short: "Change an installed app's manifest, startup config, or disable/enable it",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			kw := rpc.Kwargs{}
			if editStage {
				kw["stage"] = true
			}
			if manifestJSON != "" {
				var m map[string]any
				if err := json.Unmarshal([]byte(manifestJSON), &m); err != nil {
					return fmt.Errorf("--manifest: %w", err)
				}
				kw["manifest"] = m
			}
			if startupJSON != "" {
				var m map[string]any
				if err := json.Unmarshal([]byte(startupJSON), &m); err != nil {
					return fmt.Errorf("--startup-config: %w", err)
				}
				kw["startup_config"] = m
			}
			if disable && enable {
				return fmt.Errorf("--disable and --enable exclude each other")
			}
			if disable || enable {
				kw["disabled"] = disable
			}
			if len(kw) == len(staged(editStage)) {
				return fmt.Errorf("nothing to change: give --manifest, --startup-config, --disable or --enable")
			}
			_, err := apps.Call(ctx, "edit_app", args[0], kw)
			return err
		}),
	}
	edit.Flags().StringVar(&manifestJSON, "manifest", "", "JSON object of manifest fields to set")
	edit.Flags().StringVar(&startupJSON, "startup-config", "", "JSON object replacing the startup config ({} clears it)")
	edit.Flags().BoolVar(&disable, "disable", false, "disable the app (its sessions stop)")
	edit.Flags().BoolVar(&enable, "enable", false, "enable the app again")
	edit.Flags().BoolVar(&editStage, "stage", false, "change the app's staged version")

	validate := &cobra.Command{
		Use:   "validate MANIFEST_JSON_FILE",
		Short: "Check an app manifest (errors, warnings, suggestions); exits 1 when invalid",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			v, err := apps.Call(ctx, "validate_app_manifest", m)
			if err != nil {
				return err
			}
			res, _ := v.(map[string]any)
			out := cmd.OutOrStdout()
			for _, k := range []string{"errors", "warnings", "suggestions"} {
				l, _ := res[k].([]any)
				for _, e := range l {
					fmt.Fprintf(out, "%s: %v\n", k[:len(k)-1], e)
				}
			}
			if res["valid"] != true {
				return exitError{code: 1}
			}
			fmt.Fprintln(out, "valid")
			return nil
		}),
	}
	commit := &cobra.Command{
		Use:   "commit APP_ID",
		Short: "Verify the app's staged version (a trial start) and make it the committed one; a failed trial discards it",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			_, err := apps.Call(ctx, "commit_app", args[0], rpc.Kwargs{"progress_callback": progressPrinter(cmd.ErrOrStderr())})
			return err
		}),
	}
	discard := &cobra.Command{
		Use:   "discard APP_ID",
		Short: "Drop the app's staged version (the committed one stays)",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, c *rpc.Client, _ *rpc.RemoteService, args []string) error {
			art, err := c.GetService(ctx, "public/artifact-manager")
			if err != nil {
				return fmt.Errorf("the server has no artifact manager (public/artifact-manager): %w", err)
			}
			_, err = art.Call(ctx, "discard", args[0])
			return err
		}),
	}
	var wDisable, wEnable bool
	worker := &cobra.Command{
		Use:   "worker WORKER_ID --disable|--enable",
		Short: "Disable or enable a worker (the controller does not pick a disabled worker)",
		Args:  cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			if wDisable == wEnable {
				return fmt.Errorf("give exactly one of --disable and --enable")
			}
			_, err := apps.Call(ctx, "edit_worker", args[0], rpc.Kwargs{"disabled": wDisable})
			return err
		}),
	}
	worker.Flags().BoolVar(&wDisable, "disable", false, "disable the worker")
	worker.Flags().BoolVar(&wEnable, "enable", false, "enable the worker")
	return []*cobra.Command{editFile, removeFile, edit, validate, commit, discard, worker}
}

// maxEditStdin bounds what edit-file reads from stdin (the server's install
// limits apply as well).
const maxEditStdin = 256 << 20

func readAllLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxEditStdin+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxEditStdin {
		return nil, fmt.Errorf("stdin holds more than %d bytes", maxEditStdin)
	}
	return b, nil
}
