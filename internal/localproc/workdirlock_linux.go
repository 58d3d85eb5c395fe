//go:build linux

package localproc

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
)

// lockWorkDir takes an exclusive flock on a session's working directory
// for as long as the session lives: the worker holds it, and the
// supervisor shares it (it inherits the descriptor). A worker that starts
// later removes the directories of its own user that nobody holds locked
// (removeUnlockedWorkDirs): those whose worker and supervisor were both
// killed before they could remove them.
func lockWorkDir(dir string) (*os.File, error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// removeUnlockedWorkDirs removes the session working directories
// (hypha-app-*) in workDir that uid owns and no live worker or supervisor
// holds locked (see lockWorkDir). It never follows a symbolic link. It
// returns how many it removed.
func removeUnlockedWorkDirs(workDir string, uid int, log *slog.Logger) int {
	ents, err := os.ReadDir(workDir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "hypha-app-") {
			continue
		}
		p := workDir + "/" + e.Name()
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR || int(st.Uid) != uid {
			continue
		}
		f, err := lockWorkDir(p)
		if err != nil {
			continue // held: a live session's
		}
		err = os.RemoveAll(p)
		f.Close()
		if err != nil {
			log.Warn("could not remove the working directory of an app session of an earlier run", "path", p, "err", err.Error())
			continue
		}
		removed++
	}
	return removed
}
