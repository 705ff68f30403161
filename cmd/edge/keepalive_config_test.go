package main

import (
	"strings"
	"testing"
	"time"
)

// ALLSPARK_PING_INTERVAL and ALLSPARK_INBOX_READ_GRACE reach edge.Config,
// have their documented defaults, and a non-positive value is refused by
// name.
func TestKeepaliveAndInboxGraceConfig(t *testing.T) {
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
	if cfg.PingInterval != 25*time.Second || cfg.InboxReadGrace != 10*time.Second {
		t.Fatalf("defaults: ping interval %s, inbox read grace %s; want 25s, 10s", cfg.PingInterval, cfg.InboxReadGrace)
	}
	if cfg, err = loadConfig(with("ALLSPARK_PING_INTERVAL", "200ms")); err != nil || cfg.PingInterval != 200*time.Millisecond {
		t.Fatalf("ALLSPARK_PING_INTERVAL=200ms: %s, %v", cfg.PingInterval, err)
	}
	if cfg, err = loadConfig(with("ALLSPARK_INBOX_READ_GRACE", "3s")); err != nil || cfg.InboxReadGrace != 3*time.Second {
		t.Fatalf("ALLSPARK_INBOX_READ_GRACE=3s: %s, %v", cfg.InboxReadGrace, err)
	}
	for _, name := range []string{"ALLSPARK_PING_INTERVAL", "ALLSPARK_INBOX_READ_GRACE"} {
		if _, err := loadConfig(with(name, "0s")); err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s=0s: err = %v, want it named", name, err)
		}
	}
}
