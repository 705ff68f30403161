package edge

// PresenceSettled reports whether s has no presence work pending (see
// summaries.settled): a message its clients send after this is published
// after every presence frame and count s had to publish.
func PresenceSettled(s *Server) bool { return s.pres.settled() }
