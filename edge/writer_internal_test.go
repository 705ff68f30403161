package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/internal/testutil"
)

// A frame queued before the socket is attached (the node's subscription
// is live before the handshake ends) waits for attach: the writer that
// finds no socket stops without dropping it, and stays restartable.
func TestWriterWithoutSocketKeepsQueue(t *testing.T) {
	s := &Server{cfg: Config{SendQueueBytes: 1 << 20, RateLimit: 100, RateBurst: 100}, now: time.Now}
	c := newConn(s, auth.Identity{NodeID: "n", ClientID: "n"})
	defer c.cancel()
	for i := range 3 {
		if !c.send([]byte(fmt.Sprint("frame", i))) {
			t.Fatalf("send %d refused", i)
		}
		testutil.Eventually(t, 5*time.Second, func() error {
			if st := c.writer.Load(); st != writerIdle {
				return fmt.Errorf("writer state %d, want idle (%d)", st, writerIdle)
			}
			return nil
		})
	}
	c.mu.Lock()
	n := len(c.queue)
	c.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d frames queued after the writers found no socket, want 3", n)
	}
}
