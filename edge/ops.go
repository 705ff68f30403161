package edge

import "net/http"

// MetricsHandler serves the edge's Prometheus series. It is not among the
// public routes of Handler: cmd/edge serves it on the ops listener, so
// connection counts and traffic figures are not published to clients.
func (s *Server) MetricsHandler() http.Handler { return s.m.handler() }
