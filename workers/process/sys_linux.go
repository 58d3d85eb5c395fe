//go:build linux

package process

import "syscall"

// sysProcAttr puts the child in its own process group (so a stop can signal
// everything it spawned) and asks the kernel to SIGKILL it if the worker
// dies without stopping it. Pdeathsig fires when the forking OS thread
// exits; the Go runtime does not end its threads in normal operation, so in
// practice this means "when the worker process dies". It reaches only the
// direct child; grandchildren are reached through the process group by Stop
// and Shutdown.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
