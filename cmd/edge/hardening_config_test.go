package main

import (
	"strings"
	"testing"
)

// ALLSPARK_SYNC_MAX_LIMIT and ALLSPARK_MAX_JSON_DEPTH reach edge.Config
// with their documented defaults, and a negative value is refused by name.
func TestSyncAndJSONDepthConfig(t *testing.T) {
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
	if cfg.SyncMaxLimit != 1000 || cfg.MaxJSONDepth != 64 {
		t.Fatalf("defaults: sync max limit %d, max JSON depth %d; want 1000, 64", cfg.SyncMaxLimit, cfg.MaxJSONDepth)
	}
	if cfg, err = loadConfig(with("ALLSPARK_SYNC_MAX_LIMIT", "50")); err != nil || cfg.SyncMaxLimit != 50 {
		t.Fatalf("ALLSPARK_SYNC_MAX_LIMIT=50: %d, %v", cfg.SyncMaxLimit, err)
	}
	if cfg, err = loadConfig(with("ALLSPARK_MAX_JSON_DEPTH", "8")); err != nil || cfg.MaxJSONDepth != 8 {
		t.Fatalf("ALLSPARK_MAX_JSON_DEPTH=8: %d, %v", cfg.MaxJSONDepth, err)
	}
	for _, name := range []string{"ALLSPARK_SYNC_MAX_LIMIT", "ALLSPARK_MAX_JSON_DEPTH"} {
		if _, err := loadConfig(with(name, "-1")); err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s=-1: %v, want an error naming it", name, err)
		}
	}
}
