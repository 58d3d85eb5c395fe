package main

// hypha apps screenshot: the page of a running browser-app session as an
// image, through the apps controller's take_screenshot (which relays to the
// session worker's extension; docs/apps.md).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hypha-go/hypha/rpc"
)

// errTerminal: image bytes are not written to a terminal.
var errTerminal = errors.New("stdout is a terminal: not writing image bytes to it (redirect it, or give a file with -o)")

func appsScreenshotCommand(withApps func(func(context.Context, *cobra.Command, *rpc.Client, *rpc.RemoteService, []string) error) func(*cobra.Command, []string) error) *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "screenshot SESSION_ID -o FILE",
		Short: "Save a screenshot of a running browser app's page (PNG or JPEG)",
		Long: "Takes a screenshot of the session's page (its viewport) through the session's worker\n" +
			"(the browser worker) and writes it to FILE, replacing it only once the whole image is\n" +
			"there; -o - writes to stdout, unless stdout is a terminal. Needs read permission on the\n" +
			"session's workspace.",
		Args: cobra.ExactArgs(1),
		RunE: withApps(func(ctx context.Context, cmd *cobra.Command, _ *rpc.Client, apps *rpc.RemoteService, args []string) error {
			switch format = strings.ToLower(format); format {
			case "png", "jpeg":
			case "jpg":
				format = "jpeg"
			default:
				return fmt.Errorf("--format must be png or jpeg, got %q", format)
			}
			if out == "" {
				return errors.New("give the output file with -o FILE (or -o - for stdout)")
			}
			stdout := cmd.OutOrStdout()
			if out == "-" && isTerminal(stdout) {
				return errTerminal
			}
			v, err := apps.Call(ctx, "take_screenshot", rpc.Kwargs{"session_id": args[0], "format": format})
			if err != nil {
				return err
			}
			img, ok := v.([]byte)
			if !ok {
				return fmt.Errorf("take_screenshot answered %T, not image bytes", v)
			}
			if out == "-" {
				_, err := stdout.Write(img)
				return err
			}
			if err := writeFileAtomic(out, img); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "[info] %s: %s, %d bytes\n", out, format, len(img))
			return nil
		}),
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write the image to (- for stdout)")
	cmd.Flags().StringVar(&format, "format", "png", "image format: png or jpeg")
	return cmd
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminalFile(f)
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it over path, so that path holds either its old content or all of data.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	mode := os.FileMode(0o644) // CreateTemp's 0600 is for the image being written
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm() // a file replaced keeps its mode
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
