package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/allspark-rt/allspark/internal/testutil"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/wstest"
)

func TestHTTPServerTimeoutsFromConfig(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{
		"ALLSPARK_HTTP_READ_HEADER_TIMEOUT": "3s", "ALLSPARK_HTTP_READ_TIMEOUT": "7s",
		"ALLSPARK_HTTP_BODY_TIMEOUT": "5s", "ALLSPARK_HTTP_IDLE_TIMEOUT": "11s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(cfg.NetConfig, http.NotFoundHandler(), time.Now, slogDiscard())
	if hs.ReadHeaderTimeout != 3*time.Second || hs.ReadTimeout != 7*time.Second || hs.IdleTimeout != 11*time.Second {
		t.Fatalf("timeouts: header %s read %s idle %s", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout)
	}
	def, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	n := def.NetConfig
	if n.HTTPReadHeaderTimeout != 10*time.Second || n.HTTPReadTimeout != 30*time.Second || n.HTTPBodyTimeout != 10*time.Second ||
		n.HTTPIdleTimeout != 120*time.Second {
		t.Fatalf("defaults: %+v", n)
	}
	if _, err := loadConfig(envOf(map[string]string{"ALLSPARK_HTTP_IDLE_TIMEOUT": "0s"})); err == nil || !strings.Contains(err.Error(), "ALLSPARK_HTTP_IDLE_TIMEOUT") {
		t.Fatalf("zero idle timeout: %v", err)
	}
}

// closedByServer reads c until the server closes it, for at most a minute
// (far longer than the timeouts under test, and shorter than the rest).
func closedByServer(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(b), fmt.Errorf("still open after a minute (read %q)", b)
	}
	return string(b), nil
}

// Slow headers, a trickled body and an idle kept-alive connection are each
// closed by their own timeout (ReadTimeout is ten minutes here, so it is
// not what closes them); 2,000 slow connections do not keep the edge from
// answering, and are all closed too.
func TestSlowAndIdleConnectionsAreClosed(t *testing.T) {
	testutil.RaiseFileLimit(t, 8192)
	e := startEdge(t, map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
		"ALLSPARK_HTTP_READ_HEADER_TIMEOUT": "1s", "ALLSPARK_HTTP_BODY_TIMEOUT": "1s", "ALLSPARK_HTTP_IDLE_TIMEOUT": "1s",
		"ALLSPARK_HTTP_READ_TIMEOUT": "10m",
	})
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", e.addr, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("slow headers", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: edge\r\n")
		if _, err := closedByServer(c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("trickled body", func(t *testing.T) {
		// Dev mode serves POST /v1/dev/token, which reads its body.
		c := dial()
		_, _ = io.WriteString(c, "POST /v1/dev/token HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: 204800\r\n\r\n{\"node_id\"")
		got, err := closedByServer(c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Fatalf("answer to a trickled body: %q, want 400", got)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("healthz: %d close=%v", resp.StatusCode, resp.Close)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("idle kept-alive connection: read %v, want EOF from the server", err)
		}
	})
	t.Run("2000 slow connections", func(t *testing.T) {
		const n = 2000
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.DialTimeout("tcp", e.addr, 30*time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", len(conns), err)
			}
			conns = append(conns, c)
			_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ed")
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + e.addr + "/healthz")
		if err != nil {
			t.Fatalf("a normal request next to %d slow connections: %v", n, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := closedByServer(c); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatalf("%d of %d slow connections not closed: %v", len(errs)+1, n, err)
		}
	})
}

// A websocket outlives ALLSPARK_HTTP_READ_TIMEOUT: after the upgrade the
// connection's deadlines are the websocket's own.
func TestWebsocketOutlivesReadTimeout(t *testing.T) {
	env := map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
		"ALLSPARK_HTTP_READ_TIMEOUT": "1s", "ALLSPARK_HTTP_BODY_TIMEOUT": "1s", "ALLSPARK_HEARTBEAT": "500ms",
	}
	e := startEdge(t, env)
	var key strings.Builder
	if err := run(context.Background(), []string{"token", "--node", "alice"}, envOf(env), &key); err != nil {
		t.Fatal(err)
	}
	ws := wstest.Dial(t, "ws://"+e.addr+"/v1/ws?auth_key="+url.QueryEscape(strings.TrimSpace(key.String())))
	if f := ws.Next(t, 30*time.Second); f.Type != "sync_done" {
		t.Fatalf("got %s, want sync_done", f.Raw)
	}
	// Not waiting for an event: letting three read timeouts pass.
	<-time.After(3 * time.Second)
	ws.Send(t, map[string]any{"id": "late", "dest_id": "alice", "payload": "still here"})
	f := ws.Until(t, 30*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" })
	if f.ID != "late" || f.Error != nil {
		t.Fatalf("send after the read timeout: %s", f.Raw)
	}
}
