package edge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/bus"
)

func (s *Server) sessionRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/sessions", s.handleCreateSession)
	m.HandleFunc("POST /v1/sessions/{id}/join", s.handleJoin)
	m.HandleFunc("POST /v1/sessions/{id}/unjoin", s.handleUnjoin)
	m.HandleFunc("GET /v1/sessions/{id}", s.handleGetSession)
	// AllSparkRT names; the session id comes from the query or the body.
	// They change state, so they take POST only: a GET (a link, a prefetch,
	// an <img>) must not create or join a session. Other methods answer 405.
	for _, prefix := range []string{"/", "/v1/"} {
		m.HandleFunc("POST "+prefix+"create_session", s.handleCreateSession)
		m.HandleFunc("POST "+prefix+"join_session", s.handleJoin)
		m.HandleFunc("POST "+prefix+"unjoin_session", s.handleUnjoin)
	}
}

type sessionRequest struct {
	SessionID      string `json:"session_id"`
	AllowAnonymous bool   `json:"allow_anonymous"`
	Anonymous      bool   `json:"anonymous"`
}

// sessionCall authenticates and reads the optional JSON body and the
// session id (path, then query, then body), which must be valid unless
// creating (where an empty one means "pick one").
func (s *Server) sessionCall(w http.ResponseWriter, r *http.Request, creating bool) (auth.Identity, sessionRequest, bool) {
	id, ok := s.authenticate(w, r)
	if !ok {
		return id, sessionRequest{}, false
	}
	if !s.started.Load() {
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "edge is starting")
		return id, sessionRequest{}, false
	}
	var req sessionRequest
	body, ok := readBody(w, r, 4096, "4096 bytes")
	if !ok {
		return id, req, false
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, "body must be a JSON object: "+allspark.DescribeJSONError(err))
			return id, req, false
		}
	}
	q := r.URL.Query()
	if v := r.PathValue("id"); v != "" {
		req.SessionID = v
	} else if v := q.Get("session_id"); v != "" {
		req.SessionID = v
	}
	if q.Get("anonymous") == "true" {
		req.Anonymous = true
	}
	if q.Get("allow_anonymous") == "true" {
		req.AllowAnonymous = true
	}
	if creating && req.SessionID == "" {
		sid, err := s.sessions.NewID()
		if err != nil {
			s.log.Error("mint session id", "err", err)
			writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "cannot mint a session id")
			return id, req, false
		}
		req.SessionID = sid
	}
	if !allspark.ValidID(req.SessionID) {
		writeError(w, http.StatusBadRequest, allspark.CodeBadID, "invalid session_id")
		return id, req, false
	}
	return id, req, true
}

func (s *Server) writeSessionError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, bus.ErrSessionNotFound):
		writeError(w, http.StatusNotFound, allspark.CodeNotFound, "unknown session")
	case errors.Is(err, bus.ErrSessionExists):
		writeError(w, http.StatusConflict, allspark.CodeConflict, "session already exists")
	case errors.Is(err, bus.ErrAnonymousNotAllowed):
		writeError(w, http.StatusForbidden, allspark.CodeForbidden, "this session does not allow anonymous members")
	case errors.Is(err, bus.ErrSessionFull), errors.Is(err, bus.ErrTooManySessions):
		writeError(w, http.StatusConflict, allspark.CodeConflict, err.Error())
	case errors.Is(err, bus.ErrNotMember):
		writeError(w, http.StatusForbidden, allspark.CodeNotMember, "not a member of the session")
	default:
		s.log.Error("session call", "err", err)
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "session store unavailable")
	}
}

func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.sessionCall(w, r, true)
	if !ok {
		return
	}
	if err := s.sessions.Create(r.Context(), req.SessionID, id.NodeID, req.AllowAnonymous); err != nil {
		s.writeSessionError(w, err)
		return
	}
	s.nudgeMembership(r.Context(), id.NodeID)
	s.svc.events.SessionCreated(req.SessionID, id.NodeID)
	writeJSON(w, http.StatusCreated, map[string]string{"session_id": req.SessionID})
}

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.sessionCall(w, r, false)
	if !ok {
		return
	}
	member, joined, err := s.sessions.Join(r.Context(), req.SessionID, id.NodeID, req.Anonymous)
	if err != nil {
		s.writeSessionError(w, err)
		return
	}
	s.nudgeMembership(r.Context(), id.NodeID)
	// A repeated join changed nothing: the session already saw this member
	// arrive, and so did the backends. An anonymous member has no presence
	// (see presence.go); backends, which may know who it is, get the event.
	if joined {
		if !anonymous(id.NodeID, member) {
			s.announceJoin(req.SessionID, id.NodeID, member)
		}
		s.svc.events.SessionJoined(req.SessionID, id.NodeID, member)
	}
	writeJSON(w, http.StatusOK, map[string]string{"session_id": req.SessionID, "member_id": member})
}

// announceJoin tells the session a member that is online right now joined.
func (s *Server) announceJoin(sid, node, member string) {
	s.spawn(func() {
		if len(s.holders(context.Background(), node)) > 0 {
			s.publishPresence(sid, node, member, true)
		}
	})
}

func (s *Server) handleUnjoin(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.sessionCall(w, r, false)
	if !ok {
		return
	}
	if err := s.sessions.Unjoin(r.Context(), req.SessionID, id.NodeID); err != nil {
		s.writeSessionError(w, err)
		return
	}
	s.nudgeMembership(r.Context(), id.NodeID)
	s.svc.events.SessionUnjoined(req.SessionID, id.NodeID)
	writeJSON(w, http.StatusOK, map[string]string{})
}

// sessionMember is one member in GET /v1/sessions/{id}. Online is absent
// for an anonymous member: polling it next to a named member would link
// the two as presence frames would (see presence.go).
type sessionMember struct {
	MemberID string `json:"member_id"`
	Online   *bool  `json:"online,omitempty"`
}

type sessionView struct {
	SessionID string          `json:"session_id"`
	Members   []sessionMember `json:"members"`
	LastSeq   uint64          `json:"last_seq"`
	AckedSeq  uint64          `json:"acked_seq"` // the caller's read cursor
}

func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.sessionCall(w, r, false)
	if !ok {
		return
	}
	sess, err := s.sessions.Get(r.Context(), req.SessionID)
	if err != nil {
		s.writeSessionError(w, err)
		return
	}
	if _, ok := sess.Members[id.NodeID]; !ok {
		s.writeSessionError(w, bus.ErrNotMember)
		return
	}
	nodes := make([]string, 0, len(sess.Members))
	for n, m := range sess.Members {
		if !anonymous(n, m.MemberID) {
			nodes = append(nodes, n)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), presenceTimeout)
	held, _ := bus.QueryPresence(ctx, s.nc, s.subj, nodes, len(s.registry.Live()))
	cancel()
	view := sessionView{SessionID: sess.ID, Members: make([]sessionMember, 0, len(nodes))}
	for n, m := range sess.Members {
		sm := sessionMember{MemberID: m.MemberID}
		if !anonymous(n, m.MemberID) {
			online := len(held[n]) > 0
			sm.Online = &online
		}
		view.Members = append(view.Members, sm)
	}
	sort.Slice(view.Members, func(i, j int) bool { return view.Members[i].MemberID < view.Members[j].MemberID })
	ctx, cancel = context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if view.LastSeq, err = s.history.LastSeq(ctx, sess.ID); err != nil {
		s.writeSessionError(w, err)
		return
	}
	if view.AckedSeq, err = s.sessions.Cursor(ctx, sess.ID, id.NodeID); err != nil {
		s.writeSessionError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}
