package terminal

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/creack/pty"
)

// pollable returns the pty's master as a file the Go runtime's poller
// drives, and closes the one it was given.
//
// pty.Open and pty.Setsize reach the descriptor through Fd(), which puts
// it in blocking mode. The reader's Read then blocks in the kernel, and
// Close cannot interrupt it: the descriptor stays open until the program
// writes again, so closing the master never hung the terminal up and a
// stop of an idle shell (which ignores SIGTERM) waited for the whole stop
// grace and SIGKILL. A non-blocking duplicate is registered with the
// poller, whose Close ends a pending Read and closes the descriptor at
// once: the program's side hangs up and the shell gets its SIGHUP.
func pollable(master *os.File) (*os.File, error) {
	defer master.Close()
	sc, err := master.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("the pseudo-terminal's master: %w", err)
	}
	nfd := -1
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		// F_DUPFD_CLOEXEC: no program started meanwhile inherits it.
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		nfd, errno = int(r), e
	}); err != nil {
		return nil, fmt.Errorf("the pseudo-terminal's master: %w", err)
	}
	if errno != 0 {
		return nil, fmt.Errorf("duplicate the pseudo-terminal's master: %w", errno)
	}
	if err := syscall.SetNonblock(nfd, true); err != nil {
		syscall.Close(nfd)
		return nil, fmt.Errorf("the pseudo-terminal's master: %w", err)
	}
	return os.NewFile(uintptr(nfd), master.Name()), nil
}

// setWinsize sets the terminal's size through the poller's descriptor
// (pty.Setsize would put it back in blocking mode; see pollable).
func setWinsize(master *os.File, rows, cols int) error {
	sc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	ws := pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
