package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Dev mode (no secret, embedded NATS) defaults to any origin and dev
// tokens; a configured secret turns both off, and refuses dev tokens
// outright.
func TestDevModeDefaults(t *testing.T) {
	secret := "a-configured-secret-0123456789"
	cases := []struct {
		name       string
		env        map[string]string
		wantErr    string
		origins    []string
		devTokens  bool
		devDefault int // how many defaults the startup warning lists
	}{
		{"dev mode", map[string]string{}, "", []string{"*"}, true, 2},
		{"dev mode, explicit choices kept", map[string]string{"ALLSPARK_ALLOWED_ORIGINS": "https://app.example.com", "ALLSPARK_DEV_TOKENS": "false"},
			"", []string{"https://app.example.com"}, false, 0},
		{"configured secret", map[string]string{"ALLSPARK_AUTH_SECRET": secret}, "", nil, false, 0},
		{"configured secret with origins", map[string]string{"ALLSPARK_AUTH_SECRET": secret, "ALLSPARK_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com"},
			"", []string{"https://a.example.com", "https://b.example.com"}, false, 0},
		{"cluster", map[string]string{"ALLSPARK_AUTH_SECRET": secret, "ALLSPARK_NATS_URL": "nats://127.0.0.1:1"}, "", nil, false, 0},
		{"dev tokens refused with a configured secret", map[string]string{"ALLSPARK_AUTH_SECRET": secret, "ALLSPARK_DEV_TOKENS": "true"}, "ALLSPARK_DEV_TOKENS", nil, false, 0},
		{"bad origin", map[string]string{"ALLSPARK_ALLOWED_ORIGINS": "app.example.com"}, "ALLSPARK_ALLOWED_ORIGINS", nil, false, 0},
		{"bad bool", map[string]string{"ALLSPARK_DEV_TOKENS": "maybe"}, "ALLSPARK_DEV_TOKENS", nil, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["ALLSPARK_DATA_DIR"] = t.TempDir()
			cfg, err := loadConfig(envOf(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want mention of %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var origins []string
			for _, o := range cfg.AllowedOrigins {
				origins = append(origins, strings.TrimSpace(o))
			}
			if !slices.Equal(origins, tc.origins) || cfg.DevTokens != tc.devTokens || len(cfg.devDefaults) != tc.devDefault {
				t.Fatalf("origins %q, dev tokens %v, defaults %q; want %q, %v, %d", cfg.AllowedOrigins, cfg.DevTokens, cfg.devDefaults,
					tc.origins, tc.devTokens, tc.devDefault)
			}
		})
	}
}

// The all-in-one dev edge warns about its dev defaults at startup and
// serves dev tokens to a page on any origin.
func TestServeDevMode(t *testing.T) {
	e := startEdge(t, map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
	})
	base := "http://" + e.addr
	// Logged before "ready", so it is in the log startEdge collected.
	line := e.logged("development mode")
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "ALLSPARK_ALLOWED_ORIGINS=*") || !strings.Contains(line, "ALLSPARK_DEV_TOKENS=true") {
		t.Fatalf("startup warning does not name the dev defaults: %q", line)
	}

	req, _ := http.NewRequest("POST", base+"/v1/dev/token", strings.NewReader(`{"node_id":"page-1"}`))
	req.Header.Set("Origin", "https://anywhere.example.org")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AuthKey string `json:"auth_key"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.AuthKey == "" || resp.Header.Get("Access-Control-Allow-Origin") != "https://anywhere.example.org" {
		t.Fatalf("dev token from another origin: %d %v %+v %v", resp.StatusCode, err, tok, resp.Header)
	}
}
