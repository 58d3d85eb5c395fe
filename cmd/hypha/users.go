package main

// hypha users: the server's own accounts (server/auth/users.go), created by
// whoever administers the data directory. The server reads the file again
// when it changes, so accounts added while it runs can log in at once.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hypha-go/hypha/server/auth"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newUsersCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage the user accounts that log in on the server's login page",
		Long: "Manage the server's own user accounts, stored (bcrypt password hashes) in\n" +
			"DATA_DIR/users.json. A user logs in on the login page /public/apps/hypha-login/\n" +
			"(the link hypha-rpc's login() prints) and the program gets a token of that user,\n" +
			"whose own workspace is ws-user-NAME. Run these commands as the user the server\n" +
			"runs as, on the server's data directory.",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", envOr("HYPHA_DATA_DIR", defaultDataDir()), "the server's data directory (HYPHA_DATA_DIR)")
	users := func() *auth.Users { return auth.OpenUsers(auth.UsersFile(dataDir)) }

	var email string
	var fromStdin bool
	var roles []string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a user (asks for the password, or reads it from stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := auth.CheckUsername(args[0]); err != nil {
				return err
			}
			pw, err := readNewPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			if err := users().Add(args[0], pw, email, roles); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s created (workspace ws-user-%s)\n", args[0], args[0])
			return nil
		},
	}
	add.Flags().StringVar(&email, "email", "", "the user's email (shown in the login profile)")
	add.Flags().StringSliceVar(&roles, "role", nil, "a role of the user's tokens (repeatable)")
	add.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")

	var passwdStdin bool
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readNewPassword(cmd, passwdStdin)
			if err != nil {
				return err
			}
			return users().SetPassword(args[0], pw)
		},
	}
	passwd.Flags().BoolVar(&passwdStdin, "password-stdin", false, "read the password from the first line of stdin")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := users().List()
			if err != nil {
				return err
			}
			for _, a := range l {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", a.Name, a.Email, time.Unix(a.CreatedAt, 0).UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Delete a user (tokens it already holds stay valid until they expire or are revoked)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return users().Remove(args[0])
		},
	}
	cmd.AddCommand(add, passwd, list, remove)
	return cmd
}

// readNewPassword reads a password from stdin's first line, or asks twice
// on the terminal without echo.
func readNewPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		return pw, auth.CheckPassword(pw)
	}
	f, ok := in.(*os.File)
	if !ok || !isTerminalFile(f) {
		return "", errors.New("no terminal to ask the password on: pass it with --password-stdin")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	pw, err := ask("Password: ")
	if err != nil {
		return "", err
	}
	if err := auth.CheckPassword(pw); err != nil {
		return "", err
	}
	again, err := ask("Password again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords differ")
	}
	return pw, nil
}
