//go:build !linux

package localproc

import (
	"errors"
	"fmt"
	"os"
)

// canSupervise: the supervisor needs Linux's child subreapers; elsewhere
// the worker starts apps itself.
const canSupervise = false

var errNamespaceRefused = errors.New("PID namespaces need Linux")

func startSupervised(supervisorConfig, *os.File, *os.File, *os.File, *os.File, *os.File) (child, error) {
	return nil, errors.New("session supervisors need Linux")
}

func superviseMain() int {
	fmt.Fprintln(os.Stderr, "session supervisors need Linux")
	return 1
}
