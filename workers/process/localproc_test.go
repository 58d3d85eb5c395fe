package process

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hypha-go/hypha/internal/localproc"
)

// What the tests of this package used of the local process machinery
// before it moved to internal/localproc.

// rangeName renders a uid range as the worker's messages do.
func rangeName(base, count int) string { return fmt.Sprintf("%d-%d", base, base+count-1) }

const supervisorArg = localproc.SupervisorArg

func uidProcs(uid int) []int { return localproc.UIDProcesses(uid) }

// chownTree gives dir and everything in it to uid (and the gid of the same
// number), without following links.
func chownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// supervised reports whether the worker's sessions run under a supervisor.
func (w *Worker) supervised() bool { return w.runner.Supervised() }
