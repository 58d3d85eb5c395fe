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
	fs.IntVar(&po.MaxFiles, "app-max-files", envInt("HYPHA_APP_MAX_FILES", process.DefaultMaxFiles),
		"files and folders the process worker fetches for one app session (HYPHA_APP_MAX_FILES)")
	fs.Int64Var(&po.MaxFileBytes, "app-max-file-bytes", envInt64("HYPHA_APP_MAX_FILE_BYTES", process.DefaultMaxFileBytes),
		"bytes of one file the process worker fetches for an app session (HYPHA_APP_MAX_FILE_BYTES)")
	fs.Int64Var(&po.MaxTotalBytes, "app-max-bytes", envInt64("HYPHA_APP_MAX_BYTES", process.DefaultMaxTotalBytes),
		"bytes of all files the process worker fetches for one app session (HYPHA_APP_MAX_BYTES)")
}
