package edge

// InboxReadsPeak is the most inbox reads s has had in flight at once.
func InboxReadsPeak(s *Server) int64 { return s.hub.readPeak.Load() }

// SameEdge reports whether s hands its own messages to node straight to
// node's connections here, and how many other edges s knows hold node.
func SameEdge(s *Server, node string) (local bool, remote int) {
	s.hub.nodes.view(node, func(n *hubNode, ok bool) {
		if ok {
			local, remote = n.local, len(n.remote)
		}
	})
	return local, remote
}

// SameEdgeDeliveries is how many deliveries s's router made without NATS.
func SameEdgeDeliveries(s *Server) int64 { return s.hub.localOut.Load() }
