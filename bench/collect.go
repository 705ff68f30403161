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
//
// It runs in every receiving client, on the cores the servers use, once per
// delivery (a million times a second in the fan-out), so it decodes as
// little as it can: it finds the key and the time without parsing the JSON,
// and counts (receiver, key) pairs by a 128-bit hash of the pair, in maps
// without pointers, so a delivery allocates nothing and the millions of
// entries cost the garbage collector no scanning. Two different pairs share
// a hash with a probability of about n²/2¹²⁹ (10⁻²⁵ for 10⁷ pairs).
type collector struct {
	seeds    [2]maphash.Seed
	shards   [64]collectShard
	received atomic.Int64
	promised atomic.Int64 // sends the system accepted (delivered/stored/published)
	rejected atomic.Int64 // sends the system refused, or that failed
}

type collectShard struct {
	mu   sync.Mutex
	seen map[[2]uint64]uint32 // guarded by mu: receptions per hashed (receiver, key)
	lat  []float32            // guarded by mu: milliseconds
}

func newCollector() *collector {
	c := &collector{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for i := range c.shards {
		c.shards[i].seen = map[[2]uint64]uint32{}
	}
	return c
}

// payload builds the message body: a unique key and the send time.
func payload(key string) []byte {
	return []byte(`{"k":"` + key + `","t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `}`)
}

var (
	keyField  = []byte(`"k":"`)
	timeField = []byte(`"t":`)
)

// observe records one received frame (any JSON that carries the payload)
// for one receiver: keys are counted per receiver, so a fan-out's copies
// are each accounted for.
func (c *collector) observe(receiver string, frame []byte) {
	now := time.Now().UnixNano()
	for len(frame) > 0 {
		i := bytes.Index(frame, keyField)
		if i < 0 {
			return
		}
		frame = frame[i+len(keyField):]
		j := bytes.IndexByte(frame, '"')
		if j < 0 {
			return
		}
		id := c.pairID(receiver, frame[:j])
		frame = frame[j:]
		var lat float32 = -1
		if t := bytes.Index(frame, timeField); t >= 0 {
			if sent, ok := digits(frame[t+len(timeField):]); ok {
				lat = float32(now-sent) / 1e6
			}
		}
		sh := &c.shards[id[0]%uint64(len(c.shards))]
		sh.mu.Lock()
		sh.seen[id]++
		if lat >= 0 {
			sh.lat = append(sh.lat, lat)
		}
		sh.mu.Unlock()
		c.received.Add(1)
	}
}

// pairID hashes receiver and key (as "receiver|key") with both seeds.
func (c *collector) pairID(receiver string, key []byte) [2]uint64 {
	var buf [96]byte
	b := append(append(append(buf[:0], receiver...), '|'), key...)
	return [2]uint64{maphash.Bytes(c.seeds[0], b), maphash.Bytes(c.seeds[1], b)}
}

// digits reads the decimal number b starts with.
func digits(b []byte) (int64, bool) {
	var n int64
	e := 0
	for e < len(b) && e < 19 && b[e] >= '0' && b[e] <= '9' {
		n = n*10 + int64(b[e]-'0')
		e++
	}
	return n, e > 0
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
