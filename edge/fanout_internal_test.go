package edge

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
)

func TestWireFrameHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte("a"), n)
		f := wireFrame(p)
		if !isWireFrame(f) || f[0] != 0x81 {
			t.Fatalf("%d bytes: first byte %#x, want 0x81 (FIN, text)", n, f[0])
		}
		var hdr, got int
		switch {
		case n < 126:
			hdr, got = 2, int(f[1])
		case n <= 0xFFFF:
			hdr, got = 4, int(binary.BigEndian.Uint16(f[2:]))
			if f[1] != 126 {
				t.Fatalf("%d bytes: length code %d, want 126", n, f[1])
			}
		default:
			hdr, got = 10, int(binary.BigEndian.Uint64(f[2:]))
			if f[1] != 127 {
				t.Fatalf("%d bytes: length code %d, want 127", n, f[1])
			}
		}
		if got != n || len(f) != hdr+n || !bytes.Equal(f[hdr:], p) {
			t.Fatalf("%d bytes: header says %d, frame is %d bytes", n, got, len(f))
		}
	}
	if f := wireFrame([]byte{'"', 0xff, '"'}); f != nil {
		t.Fatalf("invalid UTF-8 encoded as %x; want nil (each writer refuses it)", f)
	}
	if isWireFrame([]byte(`{"seq":1}`)) {
		t.Fatal("a JSON frame taken for an encoded one")
	}
}

// The members list shared by deliveries is rebuilt after a leave, so it
// neither reaches nor holds on to a connection that has gone.
func TestSessionMembersListFollowsJoinsAndLeaves(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t).ClientURL())
	subj, err := bus.NewSubjects("allspark")
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(nc, subj, slog.New(slog.DiscardHandler), hubLimits{maxConns: 10, perNode: 1, inboxReads: 1})
	c1, c2 := &conn{id: auth.Identity{NodeID: "n1"}}, &conn{id: auth.Identity{NodeID: "n2"}}
	h.sess.join(c1, "s", "n1")
	if got := h.sess.members("s"); len(got) != 1 || got[0] != c1 {
		t.Fatalf("members after one join: %v", got)
	}
	h.sess.join(c2, "s", "n2")
	if got := h.sess.members("s"); len(got) != 2 {
		t.Fatalf("members after two joins: %d, want 2", len(got))
	}
	h.sess.leave(c1, "s")
	if got := h.sess.members("s"); len(got) != 1 || got[0] != c2 {
		t.Fatalf("members after c1 left: %v, want only c2", got)
	}
	h.sess.leave(c2, "s")
	if got := h.sess.members("s"); len(got) != 0 {
		t.Fatalf("members after both left: %v", got)
	}
}
