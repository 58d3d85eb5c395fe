package apps

// noteExitCode keeps the exit code a worker reported for s (a process app
// that exited by itself: the process worker's "exit_code") in the
// session's public record, so that get_session_info passes it on to
// callers such as hypha run. m is the worker's get_session_info answer.
func (c *Controller) noteExitCode(s *session, m map[string]any) {
	code, ok := m["exit_code"].(int64)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.info != nil && s.info["exit_code"] != code {
		s.info["exit_code"] = code
		c.markLocked(s.id)
	}
}
