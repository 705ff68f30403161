package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testcert"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// With ALLSPARK_TLS_CERT_FILE/_KEY_FILE the edge serves HTTPS and WSS:
// /healthz and /v1/connect over https, a wss:// ws_url, a websocket that
// syncs; a renewed certificate on disk is served without a restart.
func TestServeTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	leaf := ca.Issue(t, "edge")
	env := map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
		"ALLSPARK_TLS_CERT_FILE": leaf.CertFile, "ALLSPARK_TLS_KEY_FILE": leaf.KeyFile,
	}
	e := startEdge(t, env)
	tc := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	client := func() *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc.Clone(), DisableKeepAlives: true}}
	}
	base := "https://" + e.addr

	resp, err := client().Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("GET /healthz over https: %d", resp.StatusCode)
	}
	firstSerial := resp.TLS.PeerCertificates[0].SerialNumber

	var key strings.Builder
	if err := run(context.Background(), []string{"token", "--node", "alice"}, envOf(env), &key); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", base+"/v1/connect", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(key.String()))
	resp, err = client().Do(req)
	if err != nil {
		t.Fatalf("GET /v1/connect over https: %v", err)
	}
	var ci struct {
		ValidationToken string `json:"validation_token"`
		Edge            struct {
			WSURL string `json:"ws_url"`
		} `json:"edge"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ci)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("connect: %d %v", resp.StatusCode, err)
	}
	if want := "wss://" + e.addr + "/v1/ws"; ci.Edge.WSURL != want {
		t.Fatalf("ws_url %q, want %q", ci.Edge.WSURL, want)
	}
	ws := wstest.DialTLS(t, ci.Edge.WSURL+"?validation_token="+url.QueryEscape(ci.ValidationToken), tc.Clone())
	if f := ws.Next(t, 30*time.Second); f.Type != "sync_done" {
		t.Fatalf("over wss got %s, want sync_done", f.Raw)
	}

	// Renewal: new files in place; the next handshake presents them.
	renewed := ca.Issue(t, "edge-renewed")
	for src, dst := range map[string]string{renewed.CertFile: leaf.CertFile, renewed.KeyFile: leaf.KeyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	resp, err = client().Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz after renewal: %v", err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(firstSerial) == 0 {
		t.Fatal("the edge still presents the old certificate after the files were replaced")
	}
	if resp.TLS.NegotiatedProtocol == "h2" {
		t.Fatal("HTTP/2 negotiated: websocket upgrades need HTTP/1.1")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"cert without key": {map[string]string{"ALLSPARK_TLS_CERT_FILE": dir + "/c.pem"}, "ALLSPARK_TLS_KEY_FILE"},
		"missing files":    {map[string]string{"ALLSPARK_TLS_CERT_FILE": dir + "/c.pem", "ALLSPARK_TLS_KEY_FILE": dir + "/k.pem"}, "ALLSPARK_TLS_CERT_FILE"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.env["ALLSPARK_LISTEN"], tc.env["ALLSPARK_EMBEDDED_NATS_LISTEN"], tc.env["ALLSPARK_DATA_DIR"] = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := run(ctx, nil, envOf(tc.env), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
		})
	}
}

func TestDefaultPublicURLFollowsTLS(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{"ALLSPARK_LISTEN": "127.0.0.1:8443",
		"ALLSPARK_TLS_CERT_FILE": "c.pem", "ALLSPARK_TLS_KEY_FILE": "k.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicURL != "https://127.0.0.1:8443" {
		t.Fatalf("PublicURL %q, want https://127.0.0.1:8443", cfg.PublicURL)
	}
}
