package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
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
	// MemberCount is the session's member count (all pages); NextCursor
	// asks for the page after this one, absent on the last.
	MemberCount int    `json:"member_count"`
	NextCursor  string `json:"next_cursor,omitempty"`
	LastSeq     uint64 `json:"last_seq"`
	AckedSeq    uint64 `json:"acked_seq"` // the caller's read cursor
}

// GET /v1/sessions/{id}[?limit=n][&cursor=c]: one page of members, in the
// order they joined (then by member id within the page), and the
// session's counters. The cursor is opaque to clients: it encodes where
// the next page starts in the session's member keys.
func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.sessionCall(w, r, false)
	if !ok {
		return
	}
	limit, from, ok := s.pageParams(w, r)
	if !ok {
		return
	}
	if _, err := s.sessions.Member(r.Context(), req.SessionID, id.NodeID); err != nil {
		s.writeSessionError(w, err)
		return
	}
	page, err := s.sessions.Page(r.Context(), req.SessionID, from, limit)
	if err != nil {
		s.writeSessionError(w, err)
		return
	}
	nodes := make([]string, 0, len(page.Members))
	for _, m := range page.Members {
		if !anonymous(m.Node, m.MemberID) {
			nodes = append(nodes, m.Node)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), presenceTimeout)
	held, _ := bus.QueryPresence(ctx, s.nc, s.subj, nodes, len(s.registry.Live()))
	cancel()
	view := sessionView{SessionID: req.SessionID, Members: make([]sessionMember, 0, len(page.Members))}
	if page.Next != 0 {
		view.NextCursor = encodeCursor(page.Next)
	}
	for _, m := range page.Members {
		sm := sessionMember{MemberID: m.MemberID}
		if !anonymous(m.Node, m.MemberID) {
			online := len(held[m.Node]) > 0
			sm.Online = &online
		}
		view.Members = append(view.Members, sm)
	}
	sort.Slice(view.Members, func(i, j int) bool { return view.Members[i].MemberID < view.Members[j].MemberID })
	ctx, cancel = context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if view.MemberCount, err = s.sessions.Count(ctx, req.SessionID); err != nil {
		s.writeSessionError(w, err)
		return
	}
	if view.LastSeq, err = s.history.LastSeq(ctx, req.SessionID); err != nil {
		s.writeSessionError(w, err)
		return
	}
	if view.AckedSeq, err = s.sessions.Cursor(ctx, req.SessionID, id.NodeID); err != nil {
		s.writeSessionError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// pageParams reads ?limit= and ?cursor=, answering 400 bad_request for a
// malformed or out-of-range one.
func (s *Server) pageParams(w http.ResponseWriter, r *http.Request) (limit int, from uint64, ok bool) {
	q := r.URL.Query()
	limit = s.cfg.SessionPageDefault
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.SessionPageMax {
			writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, fmt.Sprintf("limit must be 1 to %d", s.cfg.SessionPageMax))
			return 0, 0, false
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" || q.Has("cursor") {
		seq, ok := decodeCursor(v)
		if !ok {
			writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, "cursor must be a next_cursor this endpoint returned")
			return 0, 0, false
		}
		from = seq
	}
	return limit, from, true
}

// A cursor is "m1." and the stream sequence the next page starts at, in
// unpadded base64url: opaque, so it can change form with a version tag.
const cursorTag = "m1."

func encodeCursor(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorTag + strconv.FormatUint(seq, 10)))
}

func decodeCursor(c string) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), cursorTag)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}
