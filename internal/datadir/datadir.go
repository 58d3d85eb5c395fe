// Package datadir owns the permissions of the server's data directory.
//
// Everything the server writes under its data directory (installed apps with
// their manifests, which may hold env secrets; workspace records) is private
// to the server's user: folders DirMode (0700), files FileMode (0600). App
// sessions run as another user when the server runs as root (see
// workers/process), so they cannot read any of it.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Modes for everything under the data directory.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// Prepare creates dir (mode DirMode) or, when it exists, makes it and
// everything below it private: folders DirMode, regular files FileMode.
// A data directory left by an older version (0755/0644) is tightened with
// one log line saying how many entries changed. Symbolic links are left as
// they are and not followed.
func Prepare(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("create data directory %s: %w", dir, err)
	}
	// Walk the real folder when dir is a symbolic link to it.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	changed := 0
	var errs []error
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		var want fs.FileMode
		switch {
		case d.IsDir():
			want = DirMode
		case d.Type().IsRegular():
			want = FileMode
		default:
			return nil // symlinks, sockets: not ours to change
		}
		info, err := d.Info()
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if info.Mode().Perm() == want && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == 0 {
			return nil
		}
		if err := os.Chmod(p, want); err != nil {
			errs = append(errs, err)
			return nil
		}
		changed++
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if changed > 0 {
		log.Warn("data directory was readable by other users: made it private (folders 0700, files 0600)",
			"data_dir", dir, "entries_changed", changed)
	}
	if len(errs) > 0 {
		return fmt.Errorf("make data directory %s private: %w", dir, errors.Join(errs...))
	}
	return nil
}
