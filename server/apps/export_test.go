package apps

// SetMaxScreenshotBytes changes the screenshot bound for a test and
// returns a func that restores it.
func SetMaxScreenshotBytes(n int) (restore func()) {
	old := maxScreenshotBytes
	maxScreenshotBytes = n
	return func() { maxScreenshotBytes = old }
}
