package edge

import (
	"encoding/binary"
	"net/http"

	"github.com/allspark-rt/allspark"
	"github.com/lxzan/gws"
)

// wsRefusal is why a websocket's credentials were refused, said two ways:
// the message of the 401 body and the reason of the 4001 close.
type wsRefusal struct {
	httpMessage string // e.g. "validation_token expired"
	closeReason string // e.g. "validation token expired"
}

// refuseWS answers a websocket upgrade whose credentials failed. A client
// without an Origin header (a native app, a server) gets the 401 with a
// JSON body. A browser cannot read the status of a failed handshake (its
// page sees close code 1006 and nothing else), so a request with an Origin
// header is upgraded and closed at once with 4001 and the reason. The
// socket never becomes a connection: nothing is registered, nothing is
// delivered, and no frame but the close is sent.
func (s *Server) refuseWS(w http.ResponseWriter, r *http.Request, why *wsRefusal) {
	if r.Header.Get("Origin") == "" {
		writeError(w, http.StatusUnauthorized, allspark.CodeUnauthorized, why.httpMessage)
		return
	}
	socket, err := s.upgrade(w, r)
	if err != nil {
		return // gws has answered the handshake error
	}
	s.closeRefused(socket, allspark.CloseAuthExpired, why.closeReason)
}

// closeRefused sends the close frame, half-closes, and reads until the
// client's close frame arrives or closeLinger passes, so the close frame is
// not lost to a reset (see conn.closeHandshake). The socket has no conn in
// its session, so wsEvents ignores its callbacks. It runs on the HTTP
// handler's goroutine, which the hijack has freed.
func (s *Server) closeRefused(socket *gws.Conn, code uint16, reason string) {
	payload := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), code)
	payload = append(payload, reason...)
	_ = socket.SetWriteDeadline(s.now().Add(s.cfg.WriteTimeout))
	if err := socket.WriteMessage(gws.OpcodeCloseConnection, payload); err != nil {
		_ = socket.NetConn().Close()
		return
	}
	if hc, ok := socket.NetConn().(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_ = socket.SetReadDeadline(s.now().Add(closeLinger))
	socket.ReadLoop()
	_ = socket.NetConn().Close()
}
