package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/lxzan/gws"
)

// wsConn is one websocket connection. Its reader is gws's ReadLoop, which
// calls OnMessage for each frame; its writer is writeLoop, fed by the
// bounded out queue. The reader ending closes done, which stops the
// writer; the writer failing closes the socket, which ends the reader.
type wsConn struct {
	c      *Client
	ws     *gws.Conn
	url    string
	out    chan []byte
	done   chan struct{} // closed when the reader has stopped
	synced chan struct{} // closed at the inbox sync_done

	mu        sync.Mutex
	pending   map[string]chan result // guarded by mu: Send ids awaiting their answer
	syncs     map[string]*syncWait   // guarded by mu: session id -> Sync waiting for sync_done
	isSynced  bool                   // guarded by mu
	reconnect time.Duration          // guarded by mu: after_ms of a reconnect frame; -1 if none
	closeCode int                    // guarded by mu: the edge's close code, if it sent one
	closeErr  error                  // guarded by mu: why the connection ended
}

type result struct {
	out Outcome
	err error
}

type syncWait struct {
	id   string
	from uint64 // after_seq of the request
	auto bool   // started by the resume after a reconnect
	done chan syncResult
}

type syncResult struct {
	lastSeq uint64
	err     error
}

// dial opens the websocket. A 401 answer is errUnauthorized.
//
// The auth_key goes along in the Authorization header: the edge then bounds
// the connection by the key's expiry (closing with 4001), so a key that
// expires or is revoked is refreshed instead of outliving its validity.
func (c *Client) dial(ctx context.Context, wsURL, key string) (*wsConn, error) {
	shown, _, _ := strings.Cut(wsURL, "?")
	w := &wsConn{c: c, url: shown, out: make(chan []byte, c.cfg.SendQueue), done: make(chan struct{}),
		synced: make(chan struct{}), pending: map[string]chan result{}, syncs: map[string]*syncWait{}, reconnect: -1}
	ws, resp, err := gws.NewClient(w, &gws.ClientOption{
		Addr:               wsURL,
		RequestHeader:      http.Header{"Authorization": []string{"Bearer " + key}},
		ReadMaxPayloadSize: c.cfg.MaxFrameBytes,
		HandshakeTimeout:   c.cfg.WriteTimeout,
		NewDialer:          func() (gws.Dialer, error) { return ctxDialer{ctx}, nil },
	})
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			herr := readHTTPError(resp)
			if resp.StatusCode == http.StatusUnauthorized {
				return nil, fmt.Errorf("open websocket: %w: %w", errUnauthorized, herr)
			}
			return nil, fmt.Errorf("open websocket: %w", herr)
		}
		return nil, fmt.Errorf("open websocket: %w", err)
	}
	w.ws = ws
	return w, nil
}

type ctxDialer struct{ ctx context.Context }

func (d ctxDialer) Dial(network, addr string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(d.ctx, network, addr)
}

// wsURLFor builds the websocket URL with the validation token.
func wsURLFor(base string, direct bool, info ConnectInfo) (string, error) {
	raw := info.Edge.WSURL
	if direct || raw == "" {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse URL: %w", err)
		}
		switch u.Scheme {
		case "https":
			u.Scheme = "wss"
		default:
			u.Scheme = "ws"
		}
		u.Path = "/v1/ws"
		raw = u.String()
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse ws_url: %w", err)
	}
	q := u.Query()
	q.Set("validation_token", info.ValidationToken)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// enqueue hands b to the writer, waiting while the queue is full.
func (w *wsConn) enqueue(ctx context.Context, b []byte) error {
	select {
	case w.out <- b:
		return nil
	case <-w.done:
		return ErrAnswerLost
	case <-w.c.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeLoop is the connection's only writer of data frames.
func (w *wsConn) writeLoop() {
	defer w.c.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case <-w.c.stop:
			_ = w.ws.WriteClose(allspark.CloseNormal, nil)
			return
		case b := <-w.out:
			_ = w.ws.SetWriteDeadline(w.c.cfg.Now().Add(w.c.cfg.WriteTimeout))
			if err := w.ws.WriteMessage(gws.OpcodeText, b); err != nil {
				_ = w.ws.NetConn().Close()
				return
			}
		}
	}
}

func (w *wsConn) OnOpen(*gws.Conn) {
	_ = w.ws.SetReadDeadline(w.c.cfg.Now().Add(w.c.cfg.ReadTimeout))
}

func (w *wsConn) OnPing(s *gws.Conn, p []byte) {
	_ = s.SetReadDeadline(w.c.cfg.Now().Add(w.c.cfg.ReadTimeout))
	_ = s.WritePong(p)
}

func (w *wsConn) OnPong(s *gws.Conn, _ []byte) {
	_ = s.SetReadDeadline(w.c.cfg.Now().Add(w.c.cfg.ReadTimeout))
}

// OnClose runs once, on the reader, when the connection ends: every call
// waiting on it is answered, then done closes.
func (w *wsConn) OnClose(_ *gws.Conn, err error) {
	w.mu.Lock()
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		w.closeCode = int(ce.Code)
		err = fmt.Errorf("closed by the edge: %d %s", ce.Code, ce.Reason)
	}
	w.closeErr = err
	pending, syncs := w.pending, w.syncs
	w.pending, w.syncs = nil, nil
	w.mu.Unlock()
	for _, ch := range pending {
		ch <- result{err: ErrAnswerLost}
	}
	for _, s := range syncs {
		s.done <- syncResult{err: ErrAnswerLost}
	}
	close(w.done)
}

func (w *wsConn) OnMessage(s *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = s.SetReadDeadline(w.c.cfg.Now().Add(w.c.cfg.ReadTimeout))
	if m.Opcode != gws.OpcodeText {
		w.c.reportFrameError(m.Bytes(), errors.New("binary frame"))
		return
	}
	f, err := decodeFrame(m.Bytes())
	if err != nil {
		w.c.reportFrameError(m.Bytes(), err)
		return
	}
	w.handle(f)
}

// handle acts on one decoded frame, on the reader goroutine.
func (w *wsConn) handle(fr frame) {
	f := fr.f
	switch fr.kind {
	case kindMessage:
		w.c.received(w, f.Message)
	case kindSent:
		w.answer(f.ID, result{out: Outcome{Type: "sent", ID: f.ID, MsgID: f.MsgID, Status: f.Status, Error: f.Error, Seq: f.Seq}})
	case kindSyncDone:
		w.mu.Lock()
		first := !w.isSynced
		w.isSynced = true
		w.mu.Unlock()
		if first {
			// Emitted here, on the reader, so the handlers see the replayed
			// messages before Connected and the live ones after it.
			w.c.emitState(StateChange{State: Connected, EdgeURL: w.url})
			close(w.synced)
		}
	case kindSessionSyncDone:
		w.sessionSynced(f.SessionID, f.LastSeq)
	case kindPresence:
		w.c.emit(event{presence: &Presence{SessionID: f.SessionID, MemberID: f.MemberID, Online: fr.online}})
	case kindPresenceSummary:
		w.c.emit(event{summary: &PresenceSummary{SessionID: f.SessionID, Online: fr.count}})
	case kindError:
		e := allspark.Errorf(f.Code, f.ErrMsg)
		if f.ID != "" && w.answer(f.ID, result{out: allspark.NewSent(f.ID, "", allspark.StatusRejected, e)}) {
			return
		}
		if f.ID != "" && w.failSync(f.ID, e) {
			return
		}
		w.c.emit(event{err: &ServerError{ID: f.ID, Err: e}})
	case kindReconnect:
		w.mu.Lock()
		w.reconnect = time.Duration(f.AfterMS) * time.Millisecond
		w.mu.Unlock()
	case kindPong:
	case kindUnknown:
		// A frame type added to the protocol after this client: ignored,
		// as the protocol asks, so a newer edge does not break it.
		w.c.cfg.Logger.Debug("ignored a frame of an unknown type", "type", allspark.Truncate(f.Type, 32))
	}
}

// answer resolves the Send waiting for id; it reports whether one was.
func (w *wsConn) answer(id string, r result) bool {
	w.mu.Lock()
	ch, ok := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	if ok {
		ch <- r
	}
	return ok
}

func (w *wsConn) failSync(id string, e *allspark.Error) bool {
	w.mu.Lock()
	var found *syncWait
	for sid, s := range w.syncs {
		if s.id == id {
			found = s
			delete(w.syncs, sid)
			break
		}
	}
	w.mu.Unlock()
	if found != nil {
		found.done <- syncResult{err: e}
	}
	return found != nil
}

// sessionSynced ends a session sync: it answers the waiting Sync and, for
// the resume after a reconnect, asks for the next page while the session
// has more and the last page moved the cursor.
func (w *wsConn) sessionSynced(sid string, lastSeq uint64) {
	w.mu.Lock()
	s := w.syncs[sid]
	delete(w.syncs, sid)
	w.mu.Unlock()
	if s == nil {
		return
	}
	cursor, tracked := w.c.cursor(sid)
	if s.auto && tracked && cursor > s.from && cursor < lastSeq {
		// On the reader: the next page must not wait for the writer's queue
		// behind this goroutine, so it is handed over asynchronously.
		w.c.wg.Add(1)
		go func() {
			defer w.c.wg.Done()
			_, _ = w.startSync(w.c.ctx, sid, cursor, maxSyncPage, true)
		}()
		return
	}
	s.done <- syncResult{lastSeq: lastSeq}
}

// maxSyncPage is the edge's largest sync page.
const maxSyncPage = 1000

// startSync sends a session sync and returns the channel its end arrives on.
func (w *wsConn) startSync(ctx context.Context, sid string, after uint64, limit int, auto bool) (chan syncResult, error) {
	id := w.c.nextID()
	b, err := encode(clientFrame{Type: "sync", ID: id, SessionID: sid, AfterSeq: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	s := &syncWait{id: id, from: after, auto: auto, done: make(chan syncResult, 1)}
	w.mu.Lock()
	if w.syncs == nil {
		w.mu.Unlock()
		return nil, ErrAnswerLost
	}
	if old := w.syncs[sid]; old != nil {
		// One sync per session at a time: the edge's sync_done names only
		// the session, so a second would be ambiguous. The new one takes
		// over; the old caller is told to retry.
		old.done <- syncResult{err: errors.New("superseded by another sync of the session")}
	}
	w.syncs[sid] = s
	w.mu.Unlock()
	if err := w.enqueue(ctx, b); err != nil {
		return nil, err
	}
	return s.done, nil
}

func (w *wsConn) endState() (code int, reconnect time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closeCode, w.reconnect, w.closeErr
}
