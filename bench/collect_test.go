package main

import (
	"strconv"
	"testing"
	"time"
)

// The collector counts keys per receiver: one key to two receivers is two
// unique receptions, the same key twice to one receiver a duplicate; every
// copy's latency is recorded, and a frame may carry several payloads.
func TestCollectorCountsPerReceiver(t *testing.T) {
	col := newCollector()
	sent := time.Now().Add(-5 * time.Millisecond).UnixNano()
	frame := func(keys ...string) []byte {
		b := []byte(`{"seq":1,"payload":[`)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"k":"`+k+`","t":`+strconv.FormatInt(sent, 10)+`}`...)
		}
		return append(b, "]}"...)
	}
	col.observe("m1", frame("0-1"))
	col.observe("m2", frame("0-1"))
	col.observe("m1", frame("0-1", "0-2")) // 0-1 again: a duplicate
	col.observe("m1", []byte(`{"type":"presence"}`))
	unique, dups := col.counts()
	if unique != 3 || dups != 1 || col.received.Load() != 4 {
		t.Fatalf("unique %d dups %d received %d, want 3, 1 and 4", unique, dups, col.received.Load())
	}
	p50, _, _, maxv := col.percentiles()
	if p50 < 5 || maxv > 10_000 {
		t.Fatalf("latency p50 %.2f ms max %.2f ms, want at least 5 ms (sent 5 ms before)", p50, maxv)
	}
}
