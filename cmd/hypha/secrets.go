package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// A secret given on the command line is readable by every local user in
// /proc/<pid>/cmdline (and one given in the environment by the same user
// in /proc/<pid>/environ) for as long as the process runs, and app code is
// a local user. So a command that receives a secret that way replaces
// itself (exec, same pid, same stdio, signals and exit code untouched) by a
// copy of itself whose argv and environment no longer hold it; the copy
// reads the secrets from a pipe (--secrets-fd) and closes it. Secrets in
// files (--root-token-file, ...) are never on the command line at all.

// secretSource is one secret a command takes: a flag and an environment
// variable, and optionally a file flag and a file variable.
type secretSource struct {
	flag, fileFlag string // "root-token", "root-token-file"
	env, fileEnv   string // "HYPHA_ROOT_TOKEN", "HYPHA_ROOT_TOKEN_FILE"
}

var serverSecrets = []secretSource{
	{flag: "root-token", fileFlag: "root-token-file", env: "HYPHA_ROOT_TOKEN", fileEnv: "HYPHA_ROOT_TOKEN_FILE"},
	{flag: "jwt-secret", fileFlag: "jwt-secret-file", env: "HYPHA_JWT_SECRET", fileEnv: "HYPHA_JWT_SECRET_FILE"},
}

var workerSecrets = []secretSource{{flag: "token", env: "HYPHA_TOKEN"}}

// secretsFDFlag is the hidden flag of the re-executed command.
const secretsFDFlag = "secrets-fd"

// maxSecretFile bounds a secret file.
const maxSecretFile = 64 << 10

// addSecretsFDFlag declares the hidden --secrets-fd flag.
func addSecretsFDFlag(fs *pflag.FlagSet) {
	fs.Int(secretsFDFlag, 0, "internal: read the secrets from this inherited descriptor")
	_ = fs.MarkHidden(secretsFDFlag)
}

// loadSecrets resolves the secrets of srcs, by flag name: from the pipe of
// a re-executed command, else a flag, a file flag, the variable or the file
// variable (flags win over the environment; a value and a file for the same
// secret is an error). visible reports whether one of them sits in argv or
// the environment, where it must not stay.
func loadSecrets(cmd *cobra.Command, srcs []secretSource) (vals map[string]string, visible bool, err error) {
	fs := cmd.Flags()
	if fd, _ := fs.GetInt(secretsFDFlag); fd > 0 {
		for _, s := range srcs {
			if fs.Changed(s.flag) || (s.fileFlag != "" && fs.Changed(s.fileFlag)) {
				return nil, false, fmt.Errorf("--%s cannot be combined with --%s", secretsFDFlag, s.flag)
			}
		}
		vals, err := readSecretsFD(fd)
		return vals, false, err
	}
	vals = map[string]string{}
	for _, s := range srcs {
		var v string
		flagSet := fs.Changed(s.flag)
		fileSet := s.fileFlag != "" && fs.Changed(s.fileFlag)
		switch {
		case flagSet && fileSet:
			return nil, false, fmt.Errorf("give --%s or --%s, not both", s.flag, s.fileFlag)
		case flagSet:
			v = flagString(fs, s.flag)
			visible = true
		case fileSet:
			p, _ := fs.GetString(s.fileFlag)
			if v, err = readSecretFile(p, "--"+s.fileFlag); err != nil {
				return nil, false, err
			}
		default:
			ev := os.Getenv(s.env)
			fv := ""
			if s.fileEnv != "" {
				fv = os.Getenv(s.fileEnv)
			}
			switch {
			case ev != "" && fv != "":
				return nil, false, fmt.Errorf("set %s or %s, not both", s.env, s.fileEnv)
			case ev != "":
				v, visible = ev, true
			case fv != "":
				if v, err = readSecretFile(fv, s.fileEnv); err != nil {
					return nil, false, err
				}
			}
		}
		vals[s.flag] = v
	}
	return vals, visible, nil
}

// readSecretFile reads a secret from a file that only its owner may access
// (a file readable by group or others is refused: app code runs as another
// user and could read it). Surrounding white space is dropped.
func readSecretFile(path, from string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", from, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s: %s is accessible to group or others (mode %v); make it private with: chmod 600 %s", from, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s: %s is larger than %d bytes", from, path, maxSecretFile)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", from, path)
	}
	return v, nil
}

// readSecretsFD reads the secrets the parent wrote into the pipe and closes
// it, so that nothing started later can inherit it.
func readSecretsFD(fd int) (map[string]string, error) {
	f := os.NewFile(uintptr(fd), "secrets")
	if f == nil {
		return nil, fmt.Errorf("--%s %d: not a descriptor", secretsFDFlag, fd)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("--%s %d: %w", secretsFDFlag, fd, err)
	}
	var vals map[string]string
	if err := json.Unmarshal(b, &vals); err != nil {
		return nil, fmt.Errorf("--%s %d: %w", secretsFDFlag, fd, err)
	}
	return vals, nil
}

// flagString is the value of a string flag, secret ones (secretValue,
// whose String shows nothing) included.
func flagString(fs *pflag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		if sv, ok := f.Value.(secretValue); ok {
			return *sv.p
		}
	}
	v, _ := fs.GetString(name)
	return v
}

// childArgs is the command line of the re-executed command: the same
// subcommand and flags (every changed flag as --name=value; the commands
// using this have only scalar flags), without the secret flags, plus
// --secrets-fd.
func childArgs(cmd *cobra.Command, srcs []secretSource, fd uintptr) []string {
	strip := map[string]bool{secretsFDFlag: true}
	for _, s := range srcs {
		strip[s.flag] = true
		strip[s.fileFlag] = true
	}
	args := []string{os.Args[0]}
	args = append(args, strings.Fields(cmd.CommandPath())[1:]...)
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !strip[f.Name] {
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	return append(args, fmt.Sprintf("--%s=%d", secretsFDFlag, fd))
}

// childEnv is the environment without the secret variables.
func childEnv(srcs []secretSource) []string {
	strip := map[string]bool{}
	for _, s := range srcs {
		strip[s.env] = true
		if s.fileEnv != "" {
			strip[s.fileEnv] = true
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strip[k] {
			env = append(env, kv)
		}
	}
	return env
}

// errNoReexec is returned where a process cannot replace itself: on
// platforms without exec, or for a command run in-process by a test.
var errNoReexec = errors.New("cannot restart the process in place")
