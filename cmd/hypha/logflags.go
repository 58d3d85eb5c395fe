package main

import (
	"os"
	"strconv"

	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/spf13/pflag"
)

// addLogFlags declares the process worker's output retention flags:
// --log-max-lines, --log-max-bytes, --log-max-line-bytes and
// --log-drop-when-behind, each with its HYPHA_* variable.
func addLogFlags(fs *pflag.FlagSet, po *process.Options) {
	envIntVar(fs, &po.Logs.MaxEntries, "log-max-lines", "HYPHA_LOG_MAX_LINES", worker.DefaultMaxLogEntries,
		"output lines (log entries) kept per app session; older ones are dropped and get_logs says how many (HYPHA_LOG_MAX_LINES)")
	envIntVar(fs, &po.Logs.MaxBytes, "log-max-bytes", "HYPHA_LOG_MAX_BYTES", worker.DefaultMaxLogBytes,
		"bytes of output kept per app session (HYPHA_LOG_MAX_BYTES)")
	envIntVar(fs, &po.MaxLineBytes, "log-max-line-bytes", "HYPHA_LOG_MAX_LINE_BYTES", process.DefaultMaxLineBytes,
		"longest log entry; a longer output line is split into several entries, never cut (HYPHA_LOG_MAX_LINE_BYTES)")
	drop, _ := strconv.ParseBool(os.Getenv("HYPHA_LOG_DROP_WHEN_BEHIND"))
	fs.BoolVar(&po.Logs.DropWhenBehind, "log-drop-when-behind", drop,
		"drop the oldest output even while a follower (hypha run, apps logs -f) has not read it, instead of pausing the app until it has (HYPHA_LOG_DROP_WHEN_BEHIND)")
}
