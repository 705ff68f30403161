package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lxzan/gws"
)

// wsClient is a websocket client that hands every frame to onFrame and,
// for AllSpark, acknowledges messages and reports sent answers.
type wsClient struct {
	conn    *gws.Conn
	onFrame func([]byte)
	closed  chan struct{}
	ack     bool // acknowledge AllSpark messages, as the official clients do
}

func (c *wsClient) OnOpen(*gws.Conn)             {}
func (c *wsClient) OnClose(*gws.Conn, error)     { close(c.closed) }
func (c *wsClient) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }
func (c *wsClient) OnPong(*gws.Conn, []byte)     {}
func (c *wsClient) OnMessage(s *gws.Conn, m *gws.Message) {
	defer m.Close()
	b := m.Bytes()
	if c.ack && bytes.HasPrefix(b, []byte(`{"msg_id":"`)) {
		end := bytes.IndexByte(b[11:], '"')
		_ = s.WriteString(`{"type":"ack","msg_id":"` + string(b[11:11+end]) + `"}`)
	}
	if c.onFrame != nil {
		c.onFrame(b)
	}
}

// dialWS connects from name's loopback source address (see sourceAddr).
func dialWS(name, u string, ack bool, onFrame func([]byte)) (*wsClient, error) {
	return dialWSBuf(name, u, ack, onFrame, 0)
}

// leanReadBuffer is the read buffer of the many mostly idle clients of
// the idle, storm and big-session scenarios (gws's default is 4 KB), so
// 100,000 of them fit the harness beside the servers.
const leanReadBuffer = 1024

// dialWSBuf is dialWS with a read buffer of readBuf bytes (0: gws's default).
func dialWSBuf(name, u string, ack bool, onFrame func([]byte), readBuf int) (*wsClient, error) {
	c := &wsClient{onFrame: onFrame, closed: make(chan struct{}), ack: ack}
	conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: u, HandshakeTimeout: 30 * time.Second, ReadMaxPayloadSize: 16 << 20, ReadBufferSize: readBuf,
		NewDialer: func() (gws.Dialer, error) { return dialerFor(name), nil }})
	if err != nil {
		return nil, err
	}
	c.conn = conn
	go conn.ReadLoop()
	return c, nil
}

func (c *wsClient) close() { _ = c.conn.NetConn().Close(); <-c.closed }

// AllSpark helpers.

var benchKeys, _ = auth.NewKeys(benchSecret, time.Now)

func allsparkKey(node, client string) string {
	k, err := benchKeys.MintAuthKey(auth.Identity{NodeID: node, ClientID: client}, 24*time.Hour)
	if err != nil {
		panic(err)
	}
	return k
}

func allsparkDial(base, node, client string, onFrame func([]byte)) (*wsClient, error) {
	return dialWS(node, "ws://"+base+"/v1/ws?auth_key="+url.QueryEscape(allsparkKey(node, client)), true, onFrame)
}

// allsparkHTTP keeps connections to the edges open between calls, so
// 100,000 joins do not leave 100,000 sockets in TIME_WAIT.
var allsparkHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 60 * time.Second}

func allsparkCall(base, method, path, node string, body any) error {
	var r *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, "http://"+base+path, r)
	req.Header.Set("Authorization", "Bearer "+allsparkKey(node, node))
	resp, err := allsparkHTTP.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// Centrifugo helpers: JSON protocol, newline-delimited replies in a frame.

func centrifugoToken(user string, channels ...string) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(24 * time.Hour).Unix(), "channels": channels,
	}).SignedString([]byte(benchSecret))
	if err != nil {
		panic(err)
	}
	return tok
}

// centrifugoDial connects and sends the connect command; the server
// subscribes the client to the token's channels.
func centrifugoDial(base, user string, channels []string, onFrame func([]byte)) (*wsClient, error) {
	var c *wsClient
	handler := func(b []byte) {
		// The server pings with an empty command and expects one back.
		if bytes.Contains(b, []byte("{}")) && c != nil {
			for _, line := range bytes.Split(b, []byte("\n")) {
				if string(line) == "{}" {
					_ = c.conn.WriteString("{}")
				}
			}
		}
		if onFrame != nil {
			onFrame(b)
		}
	}
	c, err := dialWS(user, "ws://"+base+"/connection/websocket", false, handler)
	if err != nil {
		return nil, err
	}
	cmd, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": centrifugoToken(user, channels...)}})
	if err := c.conn.WriteMessage(gws.OpcodeText, cmd); err != nil {
		return nil, err
	}
	return c, nil
}

var centrifugoHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}

func centrifugoPublish(base, channel string, data []byte) error {
	body := `{"channel":"` + channel + `","data":` + string(data) + `}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+base+"/api/publish", strings.NewReader(body))
	req.Header.Set("X-API-Key", centrifugoAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := centrifugoHTTP.Do(req)
	if err != nil {
		return err
	}
	var r struct {
		Error *struct{ Message string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != 200 || r.Error != nil {
		return fmt.Errorf("centrifugo publish: %d %v", resp.StatusCode, r.Error)
	}
	return nil
}
