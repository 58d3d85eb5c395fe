package condaenv

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// flock locks are held per open file, so they exclude both other worker
// processes and other goroutines of this process that opened the file on
// their own, and the kernel drops them when a process dies: a crashed
// build never leaves a stale lock.

// lockFile takes a flock (syscall.LOCK_EX or LOCK_SH) on path, waiting
// until it is free or ctx ends; onWait is called once if it has to wait.
func lockFile(ctx context.Context, path string, how int, onWait func()) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	delay := 10 * time.Millisecond
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		if delay < 250*time.Millisecond {
			delay *= 2
		}
	}
}

// tryLock takes a flock without waiting; ok is false when it is held.
func tryLock(path string, how int) (*os.File, bool) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}
