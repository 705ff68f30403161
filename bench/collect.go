package main

import (
	"bytes"
	"hash/maphash"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// collector counts what receivers got, per unique message key, and the
// latency of each (now minus the send time carried in the payload).
type collector struct {
	seed     maphash.Seed
	shards   [64]collectShard
	received atomic.Int64
	promised atomic.Int64 // sends the system accepted (delivered/stored/published)
	rejected atomic.Int64 // sends the system refused, or that failed
}

type collectShard struct {
	mu   sync.Mutex
	seen map[string]uint32 // guarded by mu
	lat  []float32         // guarded by mu: milliseconds
}

func newCollector() *collector {
	c := &collector{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].seen = map[string]uint32{}
	}
	return c
}

// payload builds the message body: a unique key and the send time.
func payload(key string) []byte {
	return []byte(`{"k":"` + key + `","t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `}`)
}

// observe records one received frame (any JSON that carries the payload)
// for one receiver: keys are counted per receiver, so a fan-out's copies
// are each accounted for.
func (c *collector) observe(receiver string, frame []byte) {
	now := time.Now().UnixNano()
	for len(frame) > 0 {
		i := bytes.Index(frame, []byte(`"k":"`))
		if i < 0 {
			return
		}
		frame = frame[i+5:]
		j := bytes.IndexByte(frame, '"')
		if j < 0 {
			return
		}
		key := receiver + "|" + string(frame[:j])
		frame = frame[j:]
		var lat float32 = -1
		if t := bytes.Index(frame, []byte(`"t":`)); t >= 0 {
			rest := frame[t+4:]
			e := 0
			for e < len(rest) && rest[e] >= '0' && rest[e] <= '9' {
				e++
			}
			if sent, err := strconv.ParseInt(string(rest[:e]), 10, 64); err == nil {
				lat = float32(now-sent) / 1e6
			}
		}
		sh := &c.shards[maphash.String(c.seed, key)%64]
		sh.mu.Lock()
		sh.seen[key]++
		if lat >= 0 {
			sh.lat = append(sh.lat, lat)
		}
		sh.mu.Unlock()
		c.received.Add(1)
	}
}

// counts returns unique keys received and duplicate receptions.
func (c *collector) counts() (unique, dups int64) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, n := range sh.seen {
			unique++
			dups += int64(n) - 1
		}
		sh.mu.Unlock()
	}
	return
}

// percentiles returns p50, p90, p99 and max latency in ms.
func (c *collector) percentiles() (p50, p90, p99, maxv float64) {
	var all []float32
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		all = append(all, sh.lat...)
		sh.mu.Unlock()
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	at := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) }
	return at(0.5), at(0.9), at(0.99), float64(all[len(all)-1])
}
