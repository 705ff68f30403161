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
// little as it can: it finds the key and the time without parsing the JSON.
// Keys are "<sender>-<n>" (every scenario's), so it keeps, per receiver and
// sender, a bitset of the n received: a delivery allocates nothing and
// touches memory that stays in cache, where a map of every (receiver, key)
// pair missed the cache on every insert and was the harness's largest
// cost. Any other key is counted in a map of the pair's 128-bit hash (two
// pairs share one with a probability of about n²/2¹²⁹).
type collector struct {
	seeds    [2]maphash.Seed
	shards   [64]collectShard
	received atomic.Int64
	promised atomic.Int64 // sends the system accepted (delivered/stored/published)
	rejected atomic.Int64 // sends the system refused, or that failed
}

type collectShard struct {
	mu     sync.Mutex
	series map[[2]uint64]*seqSet // guarded by mu: per hashed (receiver, sender): the n received
	seen   map[[2]uint64]uint32  // guarded by mu: receptions per hashed (receiver, key) of other keys
	lat    []float32             // guarded by mu: milliseconds
}

// seqSet is the numbers received of one (receiver, sender) series.
type seqSet struct {
	bits   []uint64
	unique int64
	dups   int64
}

// maxSeq bounds the numbers kept in a bitset (2 MB per series); keys
// beyond it are counted in the map.
const maxSeq = 1 << 24

func (s *seqSet) add(n int) {
	w := n / 64
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, max(w+1-len(s.bits), len(s.bits)))...)
	}
	bit := uint64(1) << (n % 64)
	if s.bits[w]&bit != 0 {
		s.dups++
		return
	}
	s.bits[w] |= bit
	s.unique++
}

func newCollector() *collector {
	c := &collector{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for i := range c.shards {
		c.shards[i].series = map[[2]uint64]*seqSet{}
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
		key := frame[:j]
		frame = frame[j:]
		var lat float32 = -1
		if t := bytes.Index(frame, timeField); t >= 0 {
			if sent, ok := digits(frame[t+len(timeField):]); ok {
				lat = float32(now-sent) / 1e6
			}
		}
		series, n := key, -1
		if d := bytes.LastIndexByte(key, '-'); d >= 0 {
			if v, ok := digits(key[d+1:]); ok && d+1+digitCount(v) == len(key) && v < maxSeq {
				series, n = key[:d], int(v)
			}
		}
		id := c.pairID(receiver, series)
		sh := &c.shards[id[0]%uint64(len(c.shards))]
		sh.mu.Lock()
		if n >= 0 {
			set := sh.series[id]
			if set == nil {
				set = &seqSet{}
				sh.series[id] = set
			}
			set.add(n)
		} else {
			sh.seen[id]++
		}
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

// digitCount is how many decimal digits v is written with (no leading zeros).
func digitCount(v int64) int {
	n := 1
	for ; v >= 10; v /= 10 {
		n++
	}
	return n
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
		for _, set := range sh.series {
			unique += set.unique
			dups += set.dups
		}
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
