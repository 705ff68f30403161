package edge

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
)

// Dev tokens let the demo page (and anyone trying the edge locally) get an
// auth_key without an application backend. Anyone who can reach the edge
// can then act as any node, so the route exists only when Config.DevTokens
// is set, which cmd/edge allows only with a generated development secret.

// devTokenTTL is how long a dev token's auth_key is valid.
const devTokenTTL = 24 * time.Hour

// devTokenMaxBody bounds the request body.
const devTokenMaxBody = 1024

func (s *Server) devRoutes(m *http.ServeMux) {
	if s.cfg.DevTokens {
		m.HandleFunc("POST /v1/dev/token", s.handleDevToken)
	}
}

type devTokenRequest struct {
	NodeID   string `json:"node_id"`
	ClientID string `json:"client_id"`
}

type devTokenResponse struct {
	AuthKey   string    `json:"auth_key"`
	NodeID    string    `json:"node_id"`
	ClientID  string    `json:"client_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// handleDevToken is POST /v1/dev/token {node_id, client_id?} → {auth_key, …}.
func (s *Server) handleDevToken(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, devTokenMaxBody, "1024 bytes")
	if !ok {
		return
	}
	var req devTokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, `body must be {"node_id":"…","client_id":"…"}`)
		return
	}
	if !allspark.ValidID(req.NodeID) {
		writeError(w, http.StatusBadRequest, allspark.CodeBadID, "node_id must be a valid id")
		return
	}
	if req.ClientID != "" && !allspark.ValidID(req.ClientID) {
		writeError(w, http.StatusBadRequest, allspark.CodeBadID, "client_id must be a valid id")
		return
	}
	id := auth.Identity{NodeID: req.NodeID, ClientID: req.ClientID}
	key, err := s.keys.MintAuthKey(id, devTokenTTL)
	if err != nil {
		s.log.Error("mint dev token", "err", err)
		writeError(w, http.StatusInternalServerError, allspark.CodeInternal, "cannot mint the auth_key")
		return
	}
	id, exp, err := s.keys.VerifyAuthKey(key) // the identity and expiry exactly as the key states them
	if err != nil {
		s.log.Error("verify dev token", "err", err)
		writeError(w, http.StatusInternalServerError, allspark.CodeInternal, "cannot mint the auth_key")
		return
	}
	s.log.Info("dev token minted", "node", id.NodeID, "client", id.ClientID)
	writeJSON(w, http.StatusOK, devTokenResponse{AuthKey: key, NodeID: id.NodeID, ClientID: id.ClientID, ExpiresAt: exp.UTC()})
}
