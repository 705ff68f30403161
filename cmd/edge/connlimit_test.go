package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testutil"
)

// With ALLSPARK_MAX_HTTP_CONNS=20 and 20 connections open, the next one is
// closed at once; when some close, requests get in again.
func TestMaxHTTPConns(t *testing.T) {
	e := startEdge(t, map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
		"ALLSPARK_MAX_HTTP_CONNS": "20", "ALLSPARK_HTTP_READ_HEADER_TIMEOUT": "10m", "ALLSPARK_HTTP_READ_TIMEOUT": "10m",
	})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() error {
		resp, err := client.Get("http://" + e.addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errors.New(resp.Status)
		}
		return nil
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 20 {
		c, err := net.DialTimeout("tcp", e.addr, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ed")
	}
	if err := get(); err == nil {
		t.Fatal("a 21st connection was served with ALLSPARK_MAX_HTTP_CONNS=20")
	}
	for _, c := range held[:5] {
		c.Close()
	}
	held = held[5:]
	testutil.Eventually(t, 30*time.Second, get)
}
