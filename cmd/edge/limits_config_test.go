package main

import (
	"strings"
	"testing"
	"time"
)

// The connection, rate and inbox-read limits reach edge.Config with their
// documented defaults, and an out-of-range value is refused by name.
func TestLimitsConfig(t *testing.T) {
	base := map[string]string{"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir()}
	with := func(k, v string) func(string) string {
		m := map[string]string{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return envOf(m)
	}
	cfg, err := loadConfig(envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != 100000 || cfg.MaxConnsPerNode != 16 || cfg.SingleConnection || cfg.RateLimit != 500 ||
		cfg.RateBurst != 1000 || cfg.RateLimitGrace != 5*time.Second || cfg.MaxInboxReads != 64 {
		t.Fatalf("defaults: max conns %d, per node %d, single %v, rate %d, burst %d, grace %s, inbox reads %d; "+
			"want 100000, 16, false, 500, 1000, 5s, 64", cfg.MaxConns, cfg.MaxConnsPerNode, cfg.SingleConnection,
			cfg.RateLimit, cfg.RateBurst, cfg.RateLimitGrace, cfg.MaxInboxReads)
	}
	if cfg, err = loadConfig(with("ALLSPARK_SINGLE_CONNECTION", "true")); err != nil || !cfg.SingleConnection {
		t.Fatalf("ALLSPARK_SINGLE_CONNECTION=true: %v, %v", cfg.SingleConnection, err)
	}
	if cfg, err = loadConfig(with("ALLSPARK_RATE_LIMIT", "0")); err != nil || cfg.RateLimit != 0 {
		t.Fatalf("ALLSPARK_RATE_LIMIT=0 (off): %d, %v", cfg.RateLimit, err)
	}
	for name, v := range map[string]string{"ALLSPARK_MAX_CONNS": "-1", "ALLSPARK_MAX_CONNS_PER_NODE": "-1",
		"ALLSPARK_RATE_LIMIT": "-5", "ALLSPARK_RATE_BURST": "-1", "ALLSPARK_RATE_LIMIT_GRACE": "-1s", "ALLSPARK_MAX_INBOX_READS": "-1"} {
		if _, err := loadConfig(with(name, v)); err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s=%s: err = %v, want it named", name, v, err)
		}
	}
}
