// Package wstest is a websocket client for tests: it records every frame
// it receives and can acknowledge messages like the official clients do.
package wstest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// Frame is any frame an edge sends, decoded loosely.
type Frame struct {
	Raw           string          `json:"-"`
	Type          string          `json:"type"`
	ID            string          `json:"id"`
	MsgID         string          `json:"msg_id"`
	Status        string          `json:"status"`
	Code          string          `json:"code"`
	Message       string          `json:"message"`
	Error         *FrameError     `json:"error"`
	SrcID         string          `json:"src_id"`
	SrcClientID   string          `json:"src_client_id"`
	DestID        string          `json:"dest_id"`
	DestClientID  string          `json:"dest_client_id"`
	DestSessionID string          `json:"dest_session_id"`
	MemberID      string          `json:"member_id"`
	Payload       json.RawMessage `json:"payload"`
	Payload1      json.RawMessage `json:"payload1"`
	Payload2      json.RawMessage `json:"payload2"`
	Seq           uint64          `json:"seq"`
	TS            int64           `json:"ts"`
	Pending       int             `json:"pending"`
}

// FrameError is the error object of a sent frame.
type FrameError struct {
	Code string `json:"code"`
}

// IsMessage reports whether f is a routed message (not a control frame).
func (f Frame) IsMessage() bool { return f.Type == "" && f.MsgID != "" }

// Client is one test websocket connection.
type Client struct {
	conn   *gws.Conn
	frames chan Frame
	closed chan struct{}
	noAck  atomic.Bool
	noPong atomic.Bool
	pings  atomic.Int64 // pings received from the server

	mu        sync.Mutex
	closeCode int   // guarded by mu
	closeErr  error // guarded by mu
}

// Dial connects or fails the test. The connection is closed at cleanup.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	c, resp, err := DialErr(url)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DialNoAck is Dial for a client that acknowledges nothing on its own
// from its first frame on (see SetAutoAck): a test then acks what it picks.
func DialNoAck(t testing.TB, url string) *Client {
	t.Helper()
	c := newClient()
	c.noAck.Store(true)
	conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: url, ReadMaxPayloadSize: 16 << 20, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { c.Close() })
	return c
}

// DialErr connects and returns the handshake response on failure.
func DialErr(url string) (*Client, *http.Response, error) { return DialHeader(url, nil) }

// DialHeader is DialErr with extra handshake headers, such as the Origin a
// browser sends.
func DialHeader(url string, header http.Header) (*Client, *http.Response, error) {
	return dial(url, header, nil)
}

// DialTLS connects to a wss:// url trusting tc's roots, or fails the test.
func DialTLS(t testing.TB, url string, tc *tls.Config) *Client {
	t.Helper()
	c, _, err := dial(url, nil, tc)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dial(url string, header http.Header, tc *tls.Config) (*Client, *http.Response, error) {
	c := newClient()
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{Addr: url, RequestHeader: header.Clone(), ReadMaxPayloadSize: 16 << 20,
		HandshakeTimeout: 5 * time.Second, TlsConfig: tc})
	if err != nil {
		return nil, resp, err
	}
	c.conn = conn
	go conn.ReadLoop()
	return c, resp, nil
}

func newClient() *Client {
	return &Client{frames: make(chan Frame, 1<<16), closed: make(chan struct{})}
}

func (c *Client) OnOpen(*gws.Conn) {}
func (c *Client) OnPing(s *gws.Conn, p []byte) {
	c.pings.Add(1)
	if !c.noPong.Load() {
		_ = s.WritePong(p)
	}
}
func (c *Client) OnPong(*gws.Conn, []byte) {}
func (c *Client) OnClose(_ *gws.Conn, err error) {
	c.mu.Lock()
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		c.closeCode = int(ce.Code)
	}
	c.closeErr = err
	c.mu.Unlock()
	close(c.closed)
}

func (c *Client) OnMessage(s *gws.Conn, m *gws.Message) {
	defer m.Close()
	f := Frame{Raw: string(m.Bytes())}
	if err := json.Unmarshal(m.Bytes(), &f); err != nil {
		f.Type = "undecodable"
	}
	if !c.noAck.Load() && f.IsMessage() {
		_ = s.WriteString(fmt.Sprintf(`{"type":"ack","msg_id":%q}`, f.MsgID))
	}
	select {
	case c.frames <- f:
	default:
		panic("wstest: frame buffer full; the test does not read its frames")
	}
}

// SetAutoAck turns automatic acknowledgement of messages on (the default) or off.
func (c *Client) SetAutoAck(on bool) { c.noAck.Store(!on) }

// SetPong turns answering the server's pings on (the default) or off, to
// play a peer that has gone silent while its socket stays open.
func (c *Client) SetPong(on bool) { c.noPong.Store(!on) }

// Pings counts the websocket pings the server has sent.
func (c *Client) Pings() int64 { return c.pings.Load() }

// Ack acknowledges msgIDs.
func (c *Client) Ack(t testing.TB, msgIDs ...string) {
	t.Helper()
	c.Send(t, map[string]any{"type": "ack", "msg_ids": msgIDs})
}

// Write writes v as a JSON text frame, for goroutines that cannot fail the test.
func (c *Client) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.conn.WriteMessage(gws.OpcodeText, b)
}

// Send writes v as a JSON text frame.
func (c *Client) Send(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode frame: %v", err)
	}
	c.SendRaw(t, string(b))
}

// SendRaw writes s as a text frame.
func (c *Client) SendRaw(t testing.TB, s string) {
	t.Helper()
	if err := c.conn.WriteString(s); err != nil {
		t.Fatalf("send frame: %v", err)
	}
}

// WriteMessage writes a frame of any opcode.
func (c *Client) WriteMessage(op gws.Opcode, b []byte) error { return c.conn.WriteMessage(op, b) }

// Next returns the next frame or fails the test after timeout.
func (c *Client) Next(t testing.TB, timeout time.Duration) Frame {
	t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(timeout):
		t.Fatalf("no frame within %s", timeout)
		return Frame{}
	}
}

// Until returns the first frame matching pred, discarding others, or fails.
func (c *Client) Until(t testing.TB, timeout time.Duration, pred func(Frame) bool) Frame {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f := <-c.frames:
			if pred(f) {
				return f
			}
		case <-deadline:
			t.Fatalf("no matching frame within %s", timeout)
			return Frame{}
		}
	}
}

// Frames returns the channel of received frames.
func (c *Client) Frames() <-chan Frame { return c.frames }

// Quiet fails the test if any frame arrives within d.
func (c *Client) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case f := <-c.frames:
		t.Fatalf("unexpected frame: %s", f.Raw)
	case <-time.After(d):
	}
}

// WaitClose waits for the connection to close and returns the close code
// the server sent (0 if it sent none).
func (c *Client) WaitClose(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(timeout):
		t.Fatalf("connection not closed within %s", timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// CloseReason is the reason of the server's close frame, once Closed.
func (c *Client) CloseReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ce *gws.CloseError
	if errors.As(c.closeErr, &ce) {
		return string(ce.Reason)
	}
	return ""
}

// CloseCode is the close code the server sent, once Closed (0 if none).
func (c *Client) CloseCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// Closed is closed once the connection has closed.
func (c *Client) Closed() <-chan struct{} { return c.closed }

// Close closes the connection without a close handshake.
func (c *Client) Close() {
	_ = c.conn.NetConn().Close()
	<-c.closed
}
