//go:build unix

package process

import "syscall"

var signalNumbers = map[string]syscall.Signal{
	"SIGINT": syscall.SIGINT, "SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
}

// sendSignal sends one of signalNames to pid.
func sendSignal(pid int, name string) error {
	return syscall.Kill(pid, signalNumbers[name])
}
