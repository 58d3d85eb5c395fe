//go:build !unix

package process

import (
	"fmt"

	"github.com/hypha-go/hypha/worker"
)

func sendSignal(int, string) error {
	return fmt.Errorf("%w: signals on this platform", worker.ErrNotSupported)
}
