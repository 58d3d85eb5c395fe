//go:build !linux

package main

import "log/slog"

// harden is Linux-only (prctl PR_SET_DUMPABLE).
func harden(*slog.Logger) {}
