package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// trickle writes s one byte per tick until it is written, the server
// closes the connection, or stop is closed.
func trickle(c net.Conn, s string, stop <-chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range len(s) {
		select {
		case <-tick.C:
		case <-stop:
			return
		}
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

// ALLSPARK_HTTP_READ_TIMEOUT bounds a whole request: a body trickled slower
// than it (600 bytes at 10 a second take a minute) is cut, the connection
// closed. The header and body timeouts are ten minutes here, so only the
// read timeout can close it within closedByServer's minute. (Headers alone
// are bounded by ALLSPARK_HTTP_READ_HEADER_TIMEOUT: net/http does not apply
// ReadTimeout to them when ReadHeaderTimeout is set.)
func TestHTTPReadTimeoutCutsTrickledRequest(t *testing.T) {
	e := startEdge(t, map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
		"ALLSPARK_HTTP_READ_HEADER_TIMEOUT": "10m", "ALLSPARK_HTTP_BODY_TIMEOUT": "10m", "ALLSPARK_HTTP_IDLE_TIMEOUT": "10m",
		"ALLSPARK_HTTP_READ_TIMEOUT": "1s",
	})
	for _, tc := range []struct{ name, head, trickled string }{

		// Dev mode serves POST /v1/dev/token, which reads its body.
		{"trickled body", "POST /v1/dev/token HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: 620\r\n\r\n",
			`{"node_id":"` + strings.Repeat("a", 600) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", e.addr, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.head); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { defer close(done); trickle(c, tc.trickled, stop) }()
			defer func() { close(stop); <-done }()
			if got, err := closedByServer(c); err != nil {
				t.Fatalf("%v (answer so far %q)", err, got)
			}
		})
	}
}
