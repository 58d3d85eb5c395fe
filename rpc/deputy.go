package rpc

import (
	"fmt"
)

// A peer never calls a function it received from peer X unless the function
// belongs to X. Otherwise X could hand it a reference to a function of a
// third peer Y (say a worker's stop) inside a callback argument or as the
// promise's resolve, and this peer would call Y under its own identity:
// the server's manager with root rights, the apps controller with the
// controller's. The owner of a received function is its _rtarget after the
// usual resolution of a bare client id against the sender's workspace; the
// sender is the server-stamped "from" of the frame carrying it.

// foreignErr reports why a function of target, received from the trusted
// sender from, may not be called by this peer (nil when it may).
func (p *peer) foreignErr(from, target, method string) error {
	if p.cfg.AllowForeignCallables || from == "" || target == from {
		return nil
	}
	p.mu.Lock()
	managerID := p.managerID
	p.mu.Unlock()
	// The server's manager forwards providers' functions (get_service); it
	// accepted them only from their owners, so it vouches for them.
	if managerID != "" && from == "*/"+managerID {
		return nil
	}
	if target == "" {
		target = "(no target)"
	}
	return fmt.Errorf("%w: %s sent a function of %s (%s); a peer only calls functions of the peer that sent them",
		ErrForeignCallable, from, target, method)
}

// refused logs a refused foreign function, at most once a minute with a
// count of the refusals in between, so a hostile peer cannot flood the log.
func (p *peer) refused(err error, from string) {
	p.refusals.Warn(p.log, "refused a foreign callable", "from", from, "err", err)
}
