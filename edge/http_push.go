package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/push"
)

func (s *Server) pushRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/push-tokens", s.handleAddPushToken)
	m.HandleFunc("DELETE /v1/push-tokens/{token}", s.handleRemovePushToken)
}

type pushTokenRequest struct {
	Platform push.Platform `json:"platform"`
	Token    string        `json:"token"`
}

// handleAddPushToken registers a device token for the calling node. A
// token another client registered is refused 409 (see push.Register).
func (s *Server) handleAddPushToken(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, push.MaxTokenLen+256, fmt.Sprintf("%d bytes", push.MaxTokenLen+256))
	if !ok {
		return
	}
	var req pushTokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, "body must be {\"platform\":\"apns\"|\"fcm\",\"token\":\"…\"}")
		return
	}
	if err := push.Validate(req.Platform, req.Token); err != nil {
		writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, err.Error())
		return
	}
	err := s.pushTokens.Register(r.Context(), id.ClientID, id.NodeID, req.Platform, req.Token)
	if errors.Is(err, push.ErrTokenTaken) {
		writeError(w, http.StatusConflict, allspark.CodeConflict, "this token is registered by another client; it must be removed there first")
		return
	}
	if err != nil {
		s.log.Error("add push token", "node", id.NodeID, "err", err)
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "cannot store the token")
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// handleRemovePushToken forgets a device token of the calling node.
func (s *Server) handleRemovePushToken(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	tok := r.PathValue("token")
	if err := push.Validate(push.APNs, tok); err != nil { // the platform is irrelevant to a removal
		writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, err.Error())
		return
	}
	if err := s.pushTokens.Remove(r.Context(), id.NodeID, tok); err != nil {
		s.log.Error("remove push token", "node", id.NodeID, "err", err)
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "cannot remove the token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}
