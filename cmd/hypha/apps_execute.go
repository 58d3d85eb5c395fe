package main

// hypha apps execute: code run in a session through its worker's execute
// (the conda worker's Jupyter kernel), relayed by the apps controller
// (docs/apps.md, "execute").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypha-go/hypha/rpc"
)

// errExecuteFailed is returned when the code raised: the traceback is
// already printed, the exit code says it.
var errExecuteFailed = errors.New("the code raised an exception")

func appsExecuteCommand(withApps func(func(context.Context, *cobra.Command, *rpc.Client, *rpc.RemoteService, []string) error) func(*cobra.Command, []string) error) *cobra.Command {
	var file string
	var timeout time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "execute SESSION_ID [CODE]",
		Short: "Run code in a running session (its worker's execute, e.g. a conda-jupyter-kernel app's kernel)",
		Long: "Runs CODE (or the contents of --file, or stdin when CODE is -) in the session and prints\n" +
			"its outputs: streams to stdout and stderr, results and displays as text. Exit code 1 when\n" +
			"the code raised (the traceback is printed to stderr).",
		Args: cobra.RangeArgs(1, 2),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			code, err := executeSource(cmd, args, file)
			if err != nil {
				return err
			}
			kw := rpc.Kwargs{"session_id": args[0], "script": code}
			if timeout > 0 {
				kw["config"] = map[string]any{"timeout": timeout.Seconds()}
			}
			v, err := apps.Call(ctx, "execute", kw)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			return printExecuteResult(cmd.OutOrStdout(), cmd.ErrOrStderr(), v)
		}),
	}
	cmd.Flags().StringVar(&file, "file", "", "read the code from this file")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "interrupt the code after this long (default: the worker's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the worker's result as JSON")
	return cmd
}

// executeSource reads the code: the argument, stdin for "-", or --file.
func executeSource(cmd *cobra.Command, args []string, file string) (string, error) {
	switch {
	case file != "" && len(args) == 2:
		return "", errors.New("give the code as an argument or with --file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		return string(b), err
	case len(args) == 2 && args[1] == "-":
		b, err := readAllLimited(cmd.InOrStdin())
		return string(b), err
	case len(args) == 2:
		return args[1], nil
	}
	return "", errors.New("no code: give it as an argument, - for stdin, or --file")
}

// isKernelResult reports whether v has the kernel's shape (the conda
// worker's): a map with a status string and a list of outputs. Any other
// value, a browser page's object with a "status" key among them, is the
// result itself.
func isKernelResult(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, status := m["status"].(string)
	_, outputs := m["outputs"].([]any)
	return status && outputs
}

// printExecuteResult renders {status, outputs, error} (the conda worker's
// shape): stream text as is, results and displays by their text/plain
// form (or a line naming what else they hold), the traceback on stderr.
func printExecuteResult(out, errw io.Writer, v any) error {
	if !isKernelResult(v) {
		// Not the kernel shape (a browser page's value, say): print the
		// value itself, as JSON when it is not a plain string.
		if s, isStr := v.(string); isStr {
			_, err := fmt.Fprintln(out, s)
			return err
		}
		b, err := json.Marshal(v)
		if err != nil {
			_, err = fmt.Fprintln(out, v)
			return err
		}
		_, err = fmt.Fprintln(out, string(b))
		return err
	}
	m := v.(map[string]any)
	outs, _ := m["outputs"].([]any)
	for _, o := range outs {
		om, _ := o.(map[string]any)
		switch om["type"] {
		case "stream":
			w := out
			if om["name"] == "stderr" {
				w = errw
			}
			fmt.Fprint(w, om["text"])
		case "execute_result", "display_data":
			data, _ := om["data"].(map[string]any)
			if t, ok := data["text/plain"].(string); ok && len(data) == 1 {
				fmt.Fprintln(out, t)
				continue
			}
			var kinds []string
			for k := range data {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			if t, ok := data["text/plain"].(string); ok {
				fmt.Fprintln(out, t)
			}
			fmt.Fprintf(out, "[%s: %s]\n", om["type"], strings.Join(kinds, ", "))
		default:
			fmt.Fprintf(out, "[%v output]\n", om["type"])
		}
	}
	if m["status"] == "error" {
		e, _ := m["error"].(map[string]any)
		if tb, ok := e["traceback"].([]any); ok && len(tb) > 0 {
			for _, l := range tb {
				fmt.Fprintln(errw, l)
			}
		} else {
			fmt.Fprintf(errw, "%v: %v\n", e["ename"], e["evalue"])
		}
		return errExecuteFailed
	}
	return nil
}
