package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/spf13/cobra"
)

func connect(cmd *cobra.Command, cf *clientFlags) (*rpc.Client, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	return rpc.Connect(ctx, rpc.Config{
		ServerURL: cf.serverURL, Token: cf.token, Workspace: cf.workspace,
		Logger: logger(cmd), NoReconnect: true,
	})
}

func newCallCmd() *cobra.Command {
	var cf clientFlags
	var timeout time.Duration
	var kwargs []string
	cmd := &cobra.Command{
		Use:   "call SERVICE_ID FUNCTION [JSON_ARG ...] [--kwarg NAME=JSON ...]",
		Short: "Call a service function and print the JSON result",
		Long: "Call a function of a service. Each JSON_ARG is one positional argument in JSON;\n" +
			"--kwarg NAME=VALUE passes a keyword argument (VALUE in JSON too). A value that is not\n" +
			"valid JSON is passed as a string. The result is printed as JSON; a call whose arguments\n" +
			"do not fit the function fails with an error naming the parameter.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, &cf)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			svc, err := c.GetService(ctx, args[0])
			if err != nil {
				return err
			}
			callArgs := make([]any, 0, len(args)-2)
			for _, a := range args[2:] {
				callArgs = append(callArgs, jsonArg(a))
			}
			if len(kwargs) > 0 {
				kw := rpc.Kwargs{}
				for _, a := range kwargs {
					name, val, ok := strings.Cut(a, "=")
					if !ok || name == "" {
						return fmt.Errorf("--kwarg %q: want NAME=VALUE", a)
					}
					kw[name] = jsonArg(val)
				}
				callArgs = append(callArgs, kw)
			}
			res, err := svc.Call(ctx, args[1], callArgs...)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(toJSON(res), "", "  ")
			if err != nil {
				return fmt.Errorf("result is not JSON: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	cf.add(cmd.Flags())
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait for the result")
	cmd.Flags().StringArrayVarP(&kwargs, "kwarg", "k", nil, "keyword argument NAME=VALUE, VALUE in JSON (repeatable)")
	return cmd
}

// jsonArg is a command-line argument as a call argument: its JSON value,
// else the string itself.
func jsonArg(a string) any {
	var v any
	if err := json.Unmarshal([]byte(a), &v); err != nil {
		return a
	}
	return normalize(v)
}

// normalize turns integral JSON numbers into int64 so that typed Go
// handlers accept them as ints.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	case float64:
		if x == float64(int64(x)) && x < 1<<53 && x > -(1<<53) {
			return int64(x)
		}
	}
	return v
}

// toJSON makes a decoded RPC value printable as JSON.
func toJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = toJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJSON(e)
		}
		return out
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case *rpc.RemoteFunc:
		return fmt.Sprintf("<function %s>", x.Name())
	case error:
		return x.Error()
	}
	return v
}

func newServicesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "services", Short: "Inspect services"}
	var cf clientFlags
	var typ string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the services visible in the workspace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := connect(cmd, &cf)
			if err != nil {
				return err
			}
			defer c.Close()
			var q any
			if typ != "" {
				q = map[string]any{"type": typ}
			}
			list, err := c.ListServices(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				raw := make([]any, len(list))
				for i, s := range list {
					raw[i] = toJSON(s.Raw)
				}
				b, _ := json.MarshalIndent(raw, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			}
			for _, s := range list {
				vis, _ := s.Config["visibility"].(string)
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\t%s\n", s.ID, s.Type, vis, s.Name)
			}
			return nil
		},
	}
	cf.add(list.Flags())
	list.Flags().StringVar(&typ, "type", "", "only services of this type")
	list.Flags().BoolVar(&asJSON, "json", false, "print the full service infos as JSON")
	cmd.AddCommand(list)
	return cmd
}
