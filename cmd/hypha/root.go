package main

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hypha-go/hypha/internal/idgen"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "hypha",
		Short:         "Hypha in one binary: server, workers and client tools",
		SilenceUsage:  true,
		SilenceErrors: true,
		// A HYPHA_* variable that a flag of this command reads and that
		// does not parse is an error, not a quiet fallback to the default.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return checkEnvDefaults(cmd) },
	}
	root.PersistentFlags().String("log-level", envOr("HYPHA_LOGLEVEL", "info"), "log level: debug, info, warn, error (HYPHA_LOGLEVEL)")
	root.AddCommand(newServerCmd(), newCallCmd(), newServicesCmd(), newBenchCmd(), newWorkerCmd(), newAppsCmd(), newRunCmd(), newUsersCmd())
	return root
}

// envOr returns the environment variable or a default; flags use it so that
// every flag has a HYPHA_* equivalent, like upstream's CLIs.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func logger(cmd *cobra.Command) *slog.Logger {
	lvl := slog.LevelInfo
	s, _ := cmd.Flags().GetString("log-level")
	switch strings.ToLower(s) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl}))
}

// clientFlags are the connection flags shared by client commands.
type clientFlags struct {
	serverURL, token, workspace string
}

func (c *clientFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&c.serverURL, "server-url", envOr("HYPHA_SERVER_URL", "http://127.0.0.1:9527"), "server URL (HYPHA_SERVER_URL)")
	secretStringVar(fs, &c.token, "token", "HYPHA_TOKEN", "token (HYPHA_TOKEN)")
	fs.StringVar(&c.workspace, "workspace", envOr("HYPHA_WORKSPACE", ""), "workspace (HYPHA_WORKSPACE)")
}

// secretValue is a string flag whose value never shows: help prints no
// default, so a token taken from the environment is not echoed by --help.
type secretValue struct{ p *string }

func (v secretValue) String() string     { return "" }
func (v secretValue) Set(s string) error { *v.p = s; return nil }
func (v secretValue) Type() string       { return "string" }

// secretStringVar defines a secret string flag whose default comes from
// the environment variable env, without showing it in help.
func secretStringVar(fs *pflag.FlagSet, p *string, name, env, usage string) {
	*p = os.Getenv(env)
	fs.Var(secretValue{p}, name, usage)
}

// quietLogger logs only warnings and errors unless --log-level asks for more.
func quietLogger(cmd *cobra.Command) *slog.Logger {
	if cmd.Flags().Changed("log-level") || os.Getenv("HYPHA_LOGLEVEL") != "" {
		return logger(cmd)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func randomSecret() string { return idgen.New() + idgen.New() }

// slug turns a name into an id: lowercase letters, digits and '-'.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}
