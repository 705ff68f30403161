package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

// Handler serves every HTTP route of the edge, behind the origin policy.
func (s *Server) Handler() http.Handler {
	p, _ := parseOrigins(s.cfg.AllowedOrigins) // validated by New
	return withCORS(p, s.mux)
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/connect", s.handleConnect)
	m.HandleFunc("GET /{$}", s.handleRoot) // AllSparkRT: /?get_pre_connection_info=true
	m.HandleFunc("GET /v1/ws", s.handleWS)
	m.HandleFunc("POST /v1/messages", s.handleMessages)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.handleReady)
	s.sessionRoutes(m)
	s.pushRoutes(m)
	s.devRoutes(m)
	demoRoutes(m)
	s.presenceRoutes(m)
	m.HandleFunc("/", noRoute(m))
	s.mux = m
}

// noRoute answers requests that matched only the catch-all "/": 405 with an
// Allow header when the path is served for other methods, else 404, both
// with a JSON error. ServeMux would answer 405 itself, but only in plain
// text, and the catch-all (needed for the JSON 404) hides it.
func noRoute(m *http.ServeMux) http.HandlerFunc {
	// OPTIONS is not probed: CORS preflights are answered in front of the mux.
	methods := [...]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, method := range methods {
			probe := r.WithContext(r.Context())
			probe.Method = method
			if _, pattern := m.Handler(probe); pattern != "" && pattern != "/" {
				allow = append(allow, method)
				if method == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		if len(allow) == 0 {
			writeError(w, http.StatusNotFound, allspark.CodeNotFound, "no such endpoint")
			return
		}
		list := strings.Join(allow, ", ")
		w.Header().Set("Allow", list)
		writeError(w, http.StatusMethodNotAllowed, allspark.CodeMethodNotAllowed, r.Method+" is not allowed here; use "+list)
	}
}

type errorBody struct {
	Error *allspark.Error `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code allspark.Code, msg string) {
	writeJSON(w, status, errorBody{Error: allspark.Errorf(code, msg)})
}

// readBody reads a request body of at most limit bytes (limitName says
// where the limit comes from), answering 413 when it is larger and 400
// when it cannot be read.
func readBody(w http.ResponseWriter, r *http.Request, limit int, limitName string) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, allspark.CodeTooLarge, "body over "+limitName)
			return nil, false
		}
		writeError(w, http.StatusBadRequest, allspark.CodeBadRequest, "cannot read body")
		return nil, false
	}
	return body, true
}

// badScheme answers an Authorization header that is not "Bearer <key>":
// a key sent without the scheme would otherwise be reported missing.
const badScheme = `Authorization header must be "Bearer <key>"`

// bearer returns the Authorization header's bearer token ("" when there is
// no header). ok is false when the header uses another scheme.
func bearer(r *http.Request) (token string, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", true
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// authKeyOf returns the request's auth_key: the bearer token, else the
// auth_key query parameter. When there is neither but the Authorization
// header uses another scheme, problem says so. (A header of another scheme
// next to ?auth_key= is left alone: a proxy's Basic credentials, say.)
func authKeyOf(r *http.Request) (key, problem string) {
	t, ok := bearer(r)
	if t != "" {
		return t, ""
	}
	if q := r.URL.Query().Get("auth_key"); q != "" {
		return q, ""
	}
	if !ok {
		return "", badScheme + " (or pass ?auth_key=)"
	}
	return "", ""
}

// authenticate checks the request's auth_key.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (auth.Identity, bool) {
	id, _, ok := s.authenticateUntil(w, r)
	return id, ok
}

// authenticateUntil is authenticate that also returns the key's expiry.
func (s *Server) authenticateUntil(w http.ResponseWriter, r *http.Request) (auth.Identity, time.Time, bool) {
	key, problem := authKeyOf(r)
	if problem != "" {
		writeError(w, http.StatusUnauthorized, allspark.CodeUnauthorized, problem)
		return auth.Identity{}, time.Time{}, false
	}
	id, exp, err := s.keys.VerifyAuthKey(key)
	if err != nil {
		writeError(w, http.StatusUnauthorized, allspark.CodeUnauthorized, authMessage("auth_key", err))
		return auth.Identity{}, time.Time{}, false
	}
	return id, exp, true
}

func authMessage(what string, err error) string {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return what + " expired"
	case errors.Is(err, auth.ErrInvalid) && strings.HasSuffix(err.Error(), ": empty"):
		return what + " missing"
	default:
		return what + " invalid"
	}
}

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("get_pre_connection_info") == "" {
		writeError(w, http.StatusNotFound, allspark.CodeNotFound, "no such endpoint; see GET /v1/connect")
		return
	}
	s.handleConnect(w, r)
}

type connectEdge struct {
	ID       string `json:"id"`
	WSURL    string `json:"ws_url"`
	ProxyURL string `json:"proxy_url,omitempty"`
}

type connectResponse struct {
	NodeID          string      `json:"node_id"`
	ClientID        string      `json:"client_id"`
	ValidationToken string      `json:"validation_token"`
	ExpiresAt       time.Time   `json:"expires_at"`
	Edge            connectEdge `json:"edge"`
}

// handleConnect answers pre-connection info: a validation token and the
// least-loaded live edge of the cluster.
func (s *Server) handleConnect(w http.ResponseWriter, r *http.Request) {
	id, keyExp, ok := s.authenticateUntil(w, r)
	if !ok {
		return
	}
	if !s.started.Load() {
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "edge is starting")
		return
	}
	tok, exp, err := s.keys.MintValidationToken(id, s.cfg.ValidationTTL, keyExp)
	if err != nil {
		s.log.Error("mint validation token", "err", err)
		writeError(w, http.StatusInternalServerError, allspark.CodeInternal, "cannot mint validation token")
		return
	}
	e := s.info()
	if live := s.registry.Live(); len(live) > 0 {
		e = live[0]
	}
	writeJSON(w, http.StatusOK, connectResponse{NodeID: id.NodeID, ClientID: id.ClientID, ValidationToken: tok,
		ExpiresAt: exp.UTC(), Edge: connectEdge{ID: e.ID, WSURL: e.WSURL, ProxyURL: e.ProxyURL}})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "draining")
	case !s.started.Load():
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "starting")
	case s.nc.Status() != nats.CONNECTED:
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "NATS is "+s.nc.Status().String())
	default:
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := s.js.AccountInfo(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "JetStream unreachable: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// handleMessages is POST /v1/messages: the HTTP twin of allspark.send.
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	body, ok := s.backendBody(w, r)
	if !ok {
		return
	}
	bm, perr := bus.ParseBackendMessage(body, s.cfg.MaxFrameBytes, s.cfg.MaxJSONDepth)
	if perr != nil {
		writeError(w, http.StatusBadRequest, perr.Code, perr.Message)
		return
	}
	done := make(chan allspark.Sent, 1)
	s.router.Send(r.Context(), &bm.Message, bm.ID, nil, func(st allspark.Sent) { done <- st })
	select {
	case st := <-done:
		writeJSON(w, http.StatusOK, st)
	case <-r.Context().Done():
	}
}
