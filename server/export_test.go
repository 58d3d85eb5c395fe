package server

// StalledFrames is the number of frames a poller loop could not queue
// without waiting (for tests in package server_test).
func (s *Server) StalledFrames() int64 { return s.stalledFrames.Load() }
