package apps

import (
	"errors"
	"fmt"
	"time"
)

// Limits bound what one install may store and how long session records
// live. Zero fields take the defaults.
type Limits struct {
	// MaxFiles bounds the files of one app (default 1000).
	MaxFiles int
	// MaxTotalBytes bounds the bytes of all files of one app, as stored
	// (default 128 MiB).
	MaxTotalBytes int64
	// MaxManifestBytes bounds the stored manifest (JSON; default 1 MiB).
	MaxManifestBytes int64
	// MaxAppsPerWorkspace bounds the apps installed in one workspace
	// (default 200).
	MaxAppsPerWorkspace int
	// MaxSessionsPerWorkspace bounds the app sessions running at once in one
	// workspace (default 20), so that one workspace cannot take every
	// session a shared worker offers.
	MaxSessionsPerWorkspace int
	// EndedSessionTTL is how long an ended session's record and last logs
	// stay readable (default 5 minutes). A session whose worker went away
	// is ended ("failed … re-adopted if it comes back") for this long too.
	EndedSessionTTL time.Duration
	// LostSessionTTL is how long a session still awaiting its worker is
	// kept, unlisted, once its record's life ended, so that the worker
	// coming back later has it re-adopted or stopped (default 7 days).
	LostSessionTTL time.Duration
	// MaxLostPerWorkspace bounds those lost sessions per workspace
	// (default 200; the oldest are forgotten first, with a warning).
	MaxLostPerWorkspace int
}

// Default install limits.
const (
	DefaultMaxFiles                = 1000
	DefaultMaxTotalBytes           = 128 << 20
	DefaultMaxManifestBytes        = 1 << 20
	DefaultMaxAppsPerWorkspace     = 200
	DefaultMaxSessionsPerWorkspace = 20
	DefaultEndedSessionTTL         = 5 * time.Minute
	DefaultLostSessionTTL          = 7 * 24 * time.Hour
	DefaultMaxLostPerWorkspace     = 200
)

// ErrLimit is wrapped by the errors of an install limit being reached.
var ErrLimit = errors.New("install limit exceeded")

// ErrSessionLimit is wrapped by the error of a start over
// Limits.MaxSessionsPerWorkspace.
var ErrSessionLimit = errors.New("session limit exceeded")

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxManifestBytes <= 0 {
		l.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if l.MaxAppsPerWorkspace <= 0 {
		l.MaxAppsPerWorkspace = DefaultMaxAppsPerWorkspace
	}
	if l.MaxSessionsPerWorkspace <= 0 {
		l.MaxSessionsPerWorkspace = DefaultMaxSessionsPerWorkspace
	}
	if l.EndedSessionTTL <= 0 {
		l.EndedSessionTTL = DefaultEndedSessionTTL
	}
	if l.LostSessionTTL <= 0 {
		l.LostSessionTTL = DefaultLostSessionTTL
	}
	if l.MaxLostPerWorkspace <= 0 {
		l.MaxLostPerWorkspace = DefaultMaxLostPerWorkspace
	}
	return l
}

// checkFiles refuses a file set over the count or byte limits. For files not
// yet decoded, the size of their content is an upper bound of what would be
// stored for text and base64 (JSON documents are counted once encoded).
func (l Limits) checkFiles(n int, total int64) error {
	if n > l.MaxFiles {
		return fmt.Errorf("%w: the app has %d files, over the limit of %d files per app (max install files)", ErrLimit, n, l.MaxFiles)
	}
	if total > l.MaxTotalBytes {
		return fmt.Errorf("%w: the app's files hold %d bytes, over the limit of %d bytes per app (max install bytes)", ErrLimit, total, l.MaxTotalBytes)
	}
	return nil
}

func (l Limits) checkManifest(size int) error {
	if int64(size) > l.MaxManifestBytes {
		return fmt.Errorf("%w: the manifest is %d bytes, over the limit of %d bytes (max manifest bytes)", ErrLimit, size, l.MaxManifestBytes)
	}
	return nil
}

// rawSize is the size of a file's content as received (an upper bound of its
// stored size for text and base64 content).
func (f appFile) rawSize() int64 {
	switch c := f.Content.(type) {
	case string:
		return int64(len(c))
	case []byte:
		return int64(len(c))
	}
	return 0
}
