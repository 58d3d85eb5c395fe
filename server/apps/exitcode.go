package apps

import "github.com/hypha-go/hypha/worker"

// noteExitCode keeps the exit code a worker reported for s (a process app
// that exited by itself: the process worker's "exit_code") in the
// session's public record, so that get_session_info passes it on to
// callers such as hypha run. info is the worker's get_session_info answer.
func (c *Controller) noteExitCode(s *session, info worker.SessionInfo) {
	if info.ExitCode == nil {
		return
	}
	code := int64(*info.ExitCode)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.info != nil && s.info["exit_code"] != code {
		s.info["exit_code"] = code
		c.markLocked(s.id)
	}
}
