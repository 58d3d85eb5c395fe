//go:build !linux

package localproc

import (
	"log/slog"
	"os"
)

// Outside Linux working directories are not locked (see the Linux
// version): a directory a killed worker left stays.
func lockWorkDir(string) (*os.File, error) { return nil, nil }

func removeUnlockedWorkDirs(string, int, *slog.Logger) int { return 0 }
