package apps

// stop_after_inactive: a running session whose app received no RPC call
// for its limit is stopped, as upstream's activity tracker does. The limit
// comes from start's argument, else the manifest's startup_config, else
// DefaultStopAfterInactive for non-daemon apps; 0 (or a negative value)
// turns it off; daemon apps are never stopped for inactivity.
//
// Activity is measured by the server (server/apphooks.go): the router stores
// the time of every call frame delivered to a client in an atomic per
// connection (calls to its services, from clients or over HTTP, and the
// results of its own calls), so the hot path takes no lock and allocates
// nothing. The controller reads it once per check for each running session.

import (
	"context"
	"fmt"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
)

// DefaultStopAfterInactive is upstream's default for non-daemon apps.
const DefaultStopAfterInactive = 600 * time.Second

// inactivityCheckInterval is how often running sessions are checked.
var inactivityCheckInterval = time.Second

// lastCallHost is implemented by the embedded server (server/apphooks.go).
type lastCallHost interface {
	LastCall(clientKey string) (time.Time, bool)
}

// inactivityLimit is a session's stop_after_inactive: the start argument
// (nil when not given), else the manifest's startup_config, else the
// default for non-daemon apps. A daemon given a positive limit is refused,
// as upstream.
func inactivityLimit(arg any, sc map[string]any, daemon bool) (time.Duration, error) {
	v := arg
	if v == nil {
		v = sc["stop_after_inactive"]
	}
	if v == nil {
		if daemon {
			return 0, nil
		}
		return DefaultStopAfterInactive, nil
	}
	f, ok := convert.Number(v)
	if !ok {
		return 0, fmt.Errorf("stop_after_inactive must be a number of seconds, got %T", v)
	}
	if f <= 0 {
		return 0, nil
	}
	if daemon {
		return 0, fmt.Errorf("Daemon apps should not have stop_after_inactive set.")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// watchInactivity stops the running sessions that were inactive for longer
// than their limit.
func (c *Controller) watchInactivity() {
	defer c.wg.Done()
	h, ok := c.host.(lastCallHost)
	if !ok {
		return
	}
	t := time.NewTicker(inactivityCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.baseCtx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var idle []*session
		c.mu.Lock()
		for _, s := range c.sessions {
			if s.inactive <= 0 || s.status != statusRunning || s.adopt || s.workerGone {
				continue
			}
			last := s.createdAt
			if at, ok := h.LastCall(s.id); ok && at.After(last) {
				last = at
			}
			if now.Sub(last) > s.inactive {
				idle = append(idle, s)
			}
		}
		c.mu.Unlock()
		for _, s := range idle {
			c.log.Info("stopping an inactive app", "session", s.id, "app", s.ws+"/"+s.appID,
				"stop_after_inactive", s.inactive.String())
			ctx, cancel := context.WithTimeout(c.baseCtx, workerCallTimeout)
			if err := c.stopSession(ctx, s.id, true); err != nil {
				c.log.Warn("could not stop an inactive app", "session", s.id, "err", err)
			}
			cancel()
		}
	}
}
