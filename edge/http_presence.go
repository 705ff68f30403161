package edge

import (
	"crypto/subtle"
	"net/http"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
)

func (s *Server) presenceRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/presence", s.handlePresence)
}

// checkAPIKey answers 401 unless the request bears ALLSPARK_API_KEY: the
// backends' endpoints (/v1/messages, /v1/presence).
func (s *Server) checkAPIKey(w http.ResponseWriter, r *http.Request) bool {
	key, ok := bearer(r)
	if s.cfg.APIKey != "" && ok && subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) == 1 {
		return true
	}
	msg := "wrong or missing API key"
	switch {
	case s.cfg.APIKey == "":
		msg = "ALLSPARK_API_KEY is not set on this edge"
	case !ok:
		msg = badScheme + " with ALLSPARK_API_KEY"
	}
	writeError(w, http.StatusUnauthorized, allspark.CodeUnauthorized, msg)
	return false
}

// backendBody checks a backend request (API key, edge started) and reads
// its body, answering the request itself when it cannot go on.
func (s *Server) backendBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !s.checkAPIKey(w, r) {
		return nil, false
	}
	if !s.started.Load() {
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "edge is starting")
		return nil, false
	}
	return readBody(w, r, s.cfg.MaxFrameBytes, "ALLSPARK_MAX_FRAME_BYTES")
}

// handlePresence is POST /v1/presence: {"nodes":[ids]} answered with each
// node's online status, the HTTP twin of allspark.presence.nodes.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	body, ok := s.backendBody(w, r)
	if !ok {
		return
	}
	req, perr := bus.ParsePresenceRequest(body, s.cfg.PresenceMaxNodes)
	if perr != nil {
		status := http.StatusBadRequest
		if perr.Code == allspark.CodeTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, perr.Code, perr.Message)
		return
	}
	s.svc.presence.WithLabelValues("http").Inc()
	ans, err := bus.Presence(r.Context(), s.nc, s.subj, req, len(s.registry.Live()), presenceTimeout)
	if err != nil {
		s.log.Warn("presence query", "err", err)
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "presence query failed")
		return
	}
	writeJSON(w, http.StatusOK, ans)
}
