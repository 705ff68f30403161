package edge_test

import (
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/lxzan/gws"
)

// BenchmarkRoundTripUnderFlood measures another client's 1:1 round trip
// (carol sends to bob; bob receives and acks; carol gets "delivered") while
// one client floods the edge with pings and messages as fast as it can
// write, with the default rate limit and with none. It reports the median
// round trip (median-µs, and p99-µs) and how many of the round trips
// messages were not delivered (stored: bob's ack came after the ack
// timeout); the flooder is never closed (the grace is an
// hour), so the figure is the steady cost of refusing its frames.
//
//	go test -run '^$' -bench RoundTripUnderFlood -benchtime 1000x ./edge/
func BenchmarkRoundTripUnderFlood(b *testing.B) {
	for _, bc := range []struct {
		name  string
		flood bool
		rate  int
	}{
		{"quiet", false, 500},
		{"flood-limited", true, 500},
		{"flood-unlimited", true, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCluster(b)
			e := c.edge("edge-bench", func(cfg *edge.Config) {
				cfg.RateLimit, cfg.RateBurst, cfg.RateLimitGrace = bc.rate, 1000, time.Hour
			})
			bob, carol := c.dial(e, "bob", "bob"), c.dial(e, "carol", "carol")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if bc.flood {
				sink := c.dial(e, "sink", "sink") // acks what the flood delivers
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-sink.Frames():
						case <-stop:
							return
						}
					}
				}()
				floodFast(b, e.wsURL("auth_key="+url.QueryEscape(c.authKey("mallory", "mallory"))), stop, &wg)
			}
			rtts := make([]time.Duration, 0, b.N)
			notDelivered := 0
			// carol stays under the rate limit (500/s by default): one round
			// trip every 4 ms at most.
			pace := time.NewTicker(4 * time.Millisecond)
			defer pace.Stop()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				<-pace.C
				start := time.Now()
				carol.Send(b, map[string]any{"id": fmt.Sprint("c", i), "dest_id": "bob", "payload": i})
				bob.Until(b, 10*time.Second, wstest.Frame.IsMessage)
				if s := carol.Until(b, 10*time.Second, isSent); s.Status != "delivered" {
					notDelivered++ // the flood delayed bob's ack past the ack timeout
				}
				rtts = append(rtts, time.Since(start))
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "median-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(notDelivered), "not-delivered")
		})
	}
}

// floodFast writes pings and messages to "sink" as fast as the connection
// takes them, reading and discarding the answers, redialing if the edge
// closes it, until stop closes.
func floodFast(b *testing.B, u string, stop <-chan struct{}, wg *sync.WaitGroup) {
	// Encoded once: the flooder's own CPU is spent in this process too.
	frames := [2][]byte{[]byte(`{"type":"ping"}`), []byte(`{"dest_id":"sink","payload":"flood"}`)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cl, _, err := wstest.DialErr(u)
			if err != nil {
				select {
				case <-stop:
				default:
					b.Errorf("flooder dial: %v", err)
				}
				return
			}
			cl.SetAutoAck(false)
			var drain sync.WaitGroup
			drain.Add(1)
			go func() {
				defer drain.Done()
				for {
					select {
					case <-cl.Frames():
					case <-cl.Closed():
						return
					}
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					cl.Close()
					drain.Wait()
					return
				default:
				}
				if err := cl.WriteMessage(gws.OpcodeText, frames[i%2]); err != nil {
					break
				}
			}
			cl.Close()
			drain.Wait()
		}
	}()
}
