//go:build !unix

package main

import "github.com/spf13/cobra"

func reexecWithoutSecrets(*cobra.Command, []secretSource, map[string]string) error {
	return errNoReexec
}
