package main

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// Every per-connection and per-edge limit reaches edge.Config from its
// ALLSPARK_* variable, has its documented default, and a value out of
// range is refused with the variable named.
func TestEdgeLimitsFromEnvironment(t *testing.T) {
	cases := []struct {
		env           string
		def, set, bad string // bad "": no invalid value to try
		field         func(config) any
	}{
		{"ALLSPARK_PING_INTERVAL", "25s", "200ms", "0s", func(c config) any { return c.PingInterval }},
		{"ALLSPARK_INBOX_READ_GRACE", "10s", "3s", "0s", func(c config) any { return c.InboxReadGrace }},
		{"ALLSPARK_MAX_CONNS", "100000", "50", "-1", func(c config) any { return c.MaxConns }},
		{"ALLSPARK_MAX_CONNS_PER_NODE", "16", "2", "-1", func(c config) any { return c.MaxConnsPerNode }},
		{"ALLSPARK_SINGLE_CONNECTION", "false", "true", "", func(c config) any { return c.SingleConnection }},
		{"ALLSPARK_RATE_LIMIT", "500", "0", "-5", func(c config) any { return c.RateLimit }},
		{"ALLSPARK_RATE_BURST", "1000", "20", "-1", func(c config) any { return c.RateBurst }},
		{"ALLSPARK_RATE_LIMIT_GRACE", "5s", "1s", "-1s", func(c config) any { return c.RateLimitGrace }},
		{"ALLSPARK_MAX_INBOX_READS", "64", "8", "-1", func(c config) any { return c.MaxInboxReads }},
		{"ALLSPARK_INBOX_PAGE", "256", "2", "-1", func(c config) any { return c.InboxPage }},
		{"ALLSPARK_SYNC_MAX_LIMIT", "1000", "50", "-1", func(c config) any { return c.SyncMaxLimit }},
		{"ALLSPARK_MAX_JSON_DEPTH", "64", "8", "-1", func(c config) any { return c.MaxJSONDepth }},
		{"ALLSPARK_INBOX_MAX_BYTES", "4294967296", "1048576", "-1", func(c config) any { return c.InboxMaxBytes }},
	}
	base := map[string]string{"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir()}
	with := func(k, v string) func(string) string {
		m := maps.Clone(base)
		m[k] = v
		return envOf(m)
	}
	defaults, err := loadConfig(envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			if got := fmt.Sprint(tc.field(defaults)); got != tc.def {
				t.Errorf("default %s, want %s", got, tc.def)
			}
			cfg, err := loadConfig(with(tc.env, tc.set))
			if got := fmt.Sprint(tc.field(cfg)); err != nil || got != tc.set {
				t.Errorf("%s=%s: got %s, %v", tc.env, tc.set, got, err)
			}
			if tc.bad == "" {
				return
			}
			if _, err := loadConfig(with(tc.env, tc.bad)); err == nil || !strings.Contains(err.Error(), tc.env) {
				t.Errorf("%s=%s: err = %v, want it named", tc.env, tc.bad, err)
			}
		})
	}
}
