//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
)

// reexecWithoutSecrets replaces the process (same pid) by the same command
// without the secrets in argv or the environment; they travel through a
// pipe whose read end the new image inherits. It returns only on failure.
func reexecWithoutSecrets(cmd *cobra.Command, srcs []secretSource, vals map[string]string) error {
	if !ownsProcess {
		return errNoReexec
	}
	data, err := json.Marshal(vals)
	if err != nil {
		return err
	}
	if len(data) > 60<<10 { // must fit the pipe buffer: nobody reads yet
		return fmt.Errorf("secrets too large (%d bytes)", len(data))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("restart without secrets on the command line: %w", err)
	}
	defer r.Close()
	_, err = w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restart without secrets on the command line: %w", err)
	}
	fd := r.Fd()
	// Inherited across exec: clear close-on-exec on the read end only.
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFD, 0); e != 0 {
		return fmt.Errorf("restart without secrets on the command line: %w", e)
	}
	exe := "/proc/self/exe" // the running binary, even if replaced on disk
	if _, serr := os.Stat(exe); serr != nil && filepath.IsAbs(os.Args[0]) {
		// No /proc (a chroot without it, such as the rpc-suite's): the
		// absolute path this binary was started by.
		exe = os.Args[0]
	} else if runtime.GOOS != "linux" {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("restart without secrets on the command line: %w", err)
		}
	}
	err = syscall.Exec(exe, childArgs(cmd, srcs, fd), childEnv(srcs))
	runtime.KeepAlive(r)
	return fmt.Errorf("restart without secrets on the command line: %w; give them in files instead (--root-token-file, --jwt-secret-file)", err)
}
