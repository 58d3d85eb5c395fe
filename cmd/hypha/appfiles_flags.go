package main

import (
	"github.com/hypha-go/hypha/workers/process"
	"github.com/spf13/pflag"
)

// addAppFilesFlags declares the process worker's bounds on the files one
// session fetches: --app-max-files, --app-max-file-bytes and
// --app-max-bytes (HYPHA_APP_MAX_FILES, HYPHA_APP_MAX_FILE_BYTES,
// HYPHA_APP_MAX_BYTES).
func addAppFilesFlags(fs *pflag.FlagSet, po *process.Options) {
	envIntVar(fs, &po.MaxFiles, "app-max-files", "HYPHA_APP_MAX_FILES", process.DefaultMaxFiles,
		"files and folders the process worker fetches for one app session (HYPHA_APP_MAX_FILES)")
	envInt64Var(fs, &po.MaxFileBytes, "app-max-file-bytes", "HYPHA_APP_MAX_FILE_BYTES", process.DefaultMaxFileBytes,
		"bytes of one file the process worker fetches for an app session (HYPHA_APP_MAX_FILE_BYTES)")
	envInt64Var(fs, &po.MaxTotalBytes, "app-max-bytes", "HYPHA_APP_MAX_BYTES", process.DefaultMaxTotalBytes,
		"bytes of all files the process worker fetches for one app session (HYPHA_APP_MAX_BYTES)")
}
