package edge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
	"github.com/lxzan/gws"
	"github.com/nats-io/nats.go"
)

// handleWS authenticates, upgrades, registers the connection and starts its
// reader and writer. Credentials are checked before the upgrade: a bad one
// gets a plain 401, or, for a browser (the request has an Origin, which
// withCORS has allowed), an upgrade closed at once with 4001 and the reason.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	id, exp, refused := s.wsIdentity(r)
	if refused != nil {
		s.refuseWS(w, r, refused)
		return
	}
	if refuseNonUpgrade(w, r) { // before any work: see upgradeProblem
		return
	}
	if !s.started.Load() || s.draining.Load() || s.nc.Status() != nats.CONNECTED {
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "edge is not accepting connections")
		return
	}
	if err := s.hub.admissible(id.NodeID); err != nil {
		s.refuseConn(w, r, id, err)
		return
	}
	// Interest comes first: the device is recorded and the node's
	// subscription is active at the server before the handshake completes, so
	// a message sent to this node as soon as it is connected finds it.
	if err := s.devices.Add(r.Context(), id.ClientID, id.NodeID); err != nil {
		s.log.Warn("record client device", "client", id.ClientID, "node", id.NodeID, "err", err)
	}
	memberships, err := s.sessions.NodeSessions(r.Context(), id.NodeID)
	if err != nil {
		s.log.Error("load memberships", "node", id.NodeID, "err", err)
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "cannot load session memberships")
		return
	}
	c := newConn(s, id)
	first, replaced, err := s.hub.add(c)
	if err != nil {
		c.cancel() // never registered: nothing else will end it
	}
	if errors.Is(err, errEdgeFull) || errors.Is(err, errNodeFull) {
		s.refuseConn(w, r, id, err)
		return
	}
	if err != nil {
		s.log.Error("register connection", "node", id.NodeID, "err", err)
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "cannot register connection")
		return
	}
	for _, old := range replaced {
		old.requestClose(allspark.CloseReplaced, "replaced")
	}
	c.setSessions(memberships)
	if err := s.nc.FlushTimeout(5 * time.Second); err != nil {
		s.log.Warn("flush node subscription", "node", id.NodeID, "err", err)
	}
	socket, err := s.upgrade(w, r)
	if err != nil {
		// gws has answered the handshake error. The node never came online
		// here, so its teardown must not announce it offline.
		c.setSessions(nil)
		c.teardown()
		return
	}
	socket.Session().Store(sessionKey, c)
	c.attach(socket) // starts a writer for what is already queued
	if !exp.IsZero() {
		c.expiry = time.AfterFunc(exp.Sub(s.now()), func() { c.requestClose(allspark.CloseAuthExpired, "auth_key expired") })
	}
	_ = socket.SetReadDeadline(s.now().Add(readTimeout(s.cfg.PingInterval)))
	s.pings.add(c)
	go socket.ReadLoop()
	c.inbox.nudge()
	if first {
		s.announcePresence(id.NodeID, true, memberships)
	}
	if s.draining.Load() { // Shutdown began while we were registering
		c.closeAfterFrame(s.reconnectFrame, allspark.CloseGoingAway, "edge shutting down")
	}
}

// refuseConn answers an upgrade past a connection limit. An edge full is
// 503 unavailable for every client (like a draining edge: /v1/connect
// offers another one). A node past its limit gets 409 conflict, or, for a
// browser (which cannot read the status of a failed upgrade), an upgrade
// closed at once with 4011 and the reason; see refuseWS.
func (s *Server) refuseConn(w http.ResponseWriter, r *http.Request, id auth.Identity, why error) {
	if errors.Is(why, errEdgeFull) {
		s.log.Debug("connection refused: edge full", "node", id.NodeID, "max_conns", s.cfg.MaxConns)
		writeError(w, http.StatusServiceUnavailable, allspark.CodeUnavailable, "edge full")
		return
	}
	s.log.Debug("connection refused: node at its limit", "node", id.NodeID, "max_conns_per_node", s.cfg.MaxConnsPerNode)
	const reason = "too many connections for this node"
	if r.Header.Get("Origin") == "" {
		writeError(w, http.StatusConflict, allspark.CodeConflict, reason)
		return
	}
	socket, err := s.upgrade(w, r)
	if err != nil {
		return // gws has answered the handshake error
	}
	s.closeRefused(socket, allspark.CloseReplaced, reason)
}

// upgrade hijacks the connection and hands gws a batchConn around it, so
// the writer can send frames in batches, and a read buffer of its own (see
// wsReader).
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) (*gws.Conn, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return s.ws.Upgrade(w, r)
	}
	netConn, brw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	bc := &batchConn{Conn: netConn, pool: &s.bufs}
	socket, err := s.ws.UpgradeFromConn(bc, wsReader(brw.Reader, bc), r)
	if err != nil {
		_ = netConn.Close()
		return nil, err
	}
	return socket, nil
}

// wsIdentity accepts an auth_key, a validation_token, or both naming the
// same node. exp is the auth_key's expiry; a validation token carries the
// expiry of the key it was minted for, so a connection never outlives the
// key behind it, however it was opened.
func (s *Server) wsIdentity(r *http.Request) (auth.Identity, time.Time, *wsRefusal) {
	key, problem := authKeyOf(r)
	vt := r.URL.Query().Get("validation_token")
	if key == "" && vt == "" {
		if problem != "" {
			return auth.Identity{}, time.Time{}, &wsRefusal{problem, "credentials missing"}
		}
		return auth.Identity{}, time.Time{}, &wsRefusal{"auth_key or validation_token required", "credentials missing"}
	}
	var id, vid auth.Identity
	var exp time.Time
	if key != "" {
		var err error
		if id, exp, err = s.keys.VerifyAuthKey(key); err != nil {
			return auth.Identity{}, time.Time{}, &wsRefusal{authMessage("auth_key", err), authMessage("auth_key", err)}
		}
	}
	if vt != "" {
		var err error
		var keyExp time.Time
		if vid, keyExp, err = s.keys.VerifyValidationToken(vt); err != nil {
			return auth.Identity{}, time.Time{}, &wsRefusal{authMessage("validation_token", err), authMessage("validation token", err)}
		}
		if exp.IsZero() || keyExp.Before(exp) {
			exp = keyExp
		}
		if key != "" && vid != id {
			return auth.Identity{}, time.Time{}, &wsRefusal{"auth_key and validation_token name different nodes", "validation token invalid"}
		}
		id = vid
	}
	return id, exp, nil
}

const sessionKey = "c"

// wsReadBuffer is a connection's read buffer. An idle connection's reader
// holds it for the connection's life, so it is small: a frame's header and
// a few small frames (acks) fit, and a larger payload is read straight into
// its own buffer (bufio reads past a buffer smaller than the read).
const wsReadBuffer = 512

// wsReader is the read side gws gets for a hijacked connection: a
// wsReadBuffer reader on the socket itself, carrying over whatever the
// HTTP server had already buffered past the handshake. Handing gws the
// server's reader instead would keep its 4 KB buffer, and through it the
// server's whole per-connection state, for as long as the socket lives.
func wsReader(hijacked *bufio.Reader, conn net.Conn) *bufio.Reader {
	var src io.Reader = conn
	if n := hijacked.Buffered(); n > 0 {
		early, _ := hijacked.Peek(n) // never fails for n <= Buffered
		src = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	return bufio.NewReaderSize(src, wsReadBuffer)
}

// connSlot is each socket's gws session storage: it holds only the *conn
// (under sessionKey), where gws's default is a map with a mutex per
// connection.
type connSlot struct {
	c atomic.Pointer[conn]
}

func (s *connSlot) Len() int {
	if s.c.Load() == nil {
		return 0
	}
	return 1
}

func (s *connSlot) Load(key string) (any, bool) {
	if c := s.c.Load(); key == sessionKey && c != nil {
		return c, true
	}
	return nil, false
}

func (s *connSlot) Delete(key string) {
	if key == sessionKey {
		s.c.Store(nil)
	}
}

// Store keeps a *conn under sessionKey; the edge stores nothing else.
func (s *connSlot) Store(key string, value any) {
	if c, ok := value.(*conn); ok && key == sessionKey {
		s.c.Store(c)
	}
}

func (s *connSlot) Range(f func(key string, value any) bool) {
	if c := s.c.Load(); c != nil {
		f(sessionKey, c)
	}
}

func connOf(socket *gws.Conn) *conn {
	v, _ := socket.Session().Load(sessionKey)
	c, _ := v.(*conn)
	return c
}

// wsEvents routes gws callbacks to the connection they belong to. All of
// them run on the connection's reader goroutine.
type wsEvents struct{}

func (wsEvents) OnOpen(*gws.Conn) {}

func (wsEvents) OnClose(socket *gws.Conn, err error) {
	if c := connOf(socket); c != nil {
		var ce *gws.CloseError
		if err != nil && !errors.As(err, &ce) {
			c.s.log.Debug("connection closed", "node", c.id.NodeID, "err", err)
		}
		c.teardown()
	}
}

func (wsEvents) OnPing(socket *gws.Conn, payload []byte) {
	if c := connOf(socket); c != nil {
		c.extendRead(socket)
		_ = socket.SetWriteDeadline(c.s.now().Add(c.s.cfg.WriteTimeout))
	}
	_ = socket.WritePong(payload)
}

func (wsEvents) OnPong(socket *gws.Conn, _ []byte) {
	if c := connOf(socket); c != nil {
		c.extendRead(socket)
	}
}

// extendRead moves the read deadline on: anything from the client proves
// it alive.
func (c *conn) extendRead(socket *gws.Conn) {
	_ = socket.SetReadDeadline(c.s.now().Add(readTimeout(c.s.cfg.PingInterval)))
}

func (wsEvents) OnMessage(socket *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	c := connOf(socket)
	if c == nil {
		return
	}
	c.extendRead(socket)
	c.handle(msg.Opcode, msg.Bytes())
}
