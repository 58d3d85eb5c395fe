package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flags whose default comes from a HYPHA_* variable. A value that does not
// parse leaves the built-in default in place and marks the flag; running a
// command with such a flag (not given on the command line) fails, naming
// the variable. Other commands, which never read the flag, are not
// affected.

// envErrorAnnotation marks a flag whose variable did not parse.
const envErrorAnnotation = "hypha-env-error"

func envIntVar(fs *pflag.FlagSet, p *int, name, env string, def int, usage string) {
	v, err := envParse(env, def, strconv.Atoi)
	fs.IntVar(p, name, v, usage)
	markEnvError(fs, name, env, err)
}

func envInt64Var(fs *pflag.FlagSet, p *int64, name, env string, def int64, usage string) {
	v, err := envParse(env, def, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
	fs.Int64Var(p, name, v, usage)
	markEnvError(fs, name, env, err)
}

func envDurationVar(fs *pflag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	v, err := envParse(env, def, time.ParseDuration)
	fs.DurationVar(p, name, v, usage)
	markEnvError(fs, name, env, err)
}

func envParse[T any](env string, def T, parse func(string) (T, error)) (T, error) {
	s, ok := os.LookupEnv(env)
	if !ok || s == "" {
		return def, nil
	}
	v, err := parse(s)
	if err != nil {
		return def, fmt.Errorf("%s=%q is not a valid value: %w", env, s, err)
	}
	return v, nil
}

func markEnvError(fs *pflag.FlagSet, name, env string, err error) {
	if err != nil {
		_ = fs.SetAnnotation(name, envErrorAnnotation, []string{err.Error()})
	}
}

// checkEnvDefaults fails when a flag of cmd takes its default from a
// variable that did not parse and the command line does not set it.
func checkEnvDefaults(cmd *cobra.Command) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if msg := f.Annotations[envErrorAnnotation]; len(msg) > 0 && !f.Changed {
			errs = append(errs, fmt.Errorf("%s (the default of --%s)", msg[0], f.Name))
		}
	})
	return errors.Join(errs...)
}
