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
	col.observe("m1", frame("0-100000")) // far into the series
	// Keys that are not "<sender>-<n>" are counted too, and "a-007" is
	// not "a-7".
	col.observe("m1", frame("x", "a-007", "a-7", "x"))
	unique, dups := col.counts()
	if unique != 7 || dups != 2 || col.received.Load() != 9 {
		t.Fatalf("unique %d dups %d received %d, want 7, 2 and 9", unique, dups, col.received.Load())
	}
	p50, _, _, maxv := col.percentiles()
	if p50 < 5 || maxv > 10_000 {
		t.Fatalf("latency p50 %.2f ms max %.2f ms, want at least 5 ms (sent 5 ms before)", p50, maxv)
	}
}
