package edge

// InboxReadsPeak is the most inbox reads s has had in flight at once.
func InboxReadsPeak(s *Server) int64 { return s.hub.readPeak.Load() }
