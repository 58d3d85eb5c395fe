//go:build !linux

package main

import "os"

// isTerminalFile reports whether f is a character device other than
// /dev/null (the best guess without the terminal ioctl).
func isTerminalFile(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && f.Name() != os.DevNull
}
