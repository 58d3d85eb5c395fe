// Package lograte limits how often one source of bad input is logged: a
// hostile peer sending thousands of malformed frames a second must not turn
// into thousands of log lines.
package lograte

import (
	"log/slog"
	"sync"
	"time"
)

// Limiter lets one line through per interval; the lines it holds back in
// between are counted and reported with the next line let through (or by
// Flush). The zero value is not usable: use New.
type Limiter struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// New returns a limiter letting one line through per every.
func New(every time.Duration) *Limiter { return &Limiter{every: every} }

// Allow reports whether a line may be logged now and, if so, how many lines
// were suppressed since the previous one.
func (l *Limiter) Allow() (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	l.last = now
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// Flush returns and resets the count of suppressed lines (for a summary line
// when the source goes away).
func (l *Limiter) Flush() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}

// Warn logs msg at warning level on log when the limiter lets a line
// through, with the count of the lines held back since the previous one.
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) {
	ok, n := l.Allow()
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
