package server

import (
	"net"
	"sync"
)

// callerCounts counts what each caller holds at once (HTTP RPC streams,
// app requests in flight) against a bound. A caller key names one user, or
// for anonymous callers one network address (remoteHost), since every
// anonymous request is a new user.
type callerCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire counts one more for key, or reports false when key already holds
// max (max <= 0: no bound). Each true is paired with a release.
func (c *callerCounts) acquire(key string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if max > 0 && c.n[key] >= max {
		return false
	}
	c.n[key]++
	return true
}

func (c *callerCounts) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}

// remoteHost is the client's address as the connection shows it: the host
// part of a request's RemoteAddr (the address itself when it has no port).
// Forwarded headers are not trusted, so behind a reverse proxy every client
// shares the proxy's address.
func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
