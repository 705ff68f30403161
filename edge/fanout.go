package edge

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/lxzan/gws"
)

// Session fan-out writes one frame to every member connection here. Done
// one connection at a time through gws, each copy costs a UTF-8 check, a
// frame header, a pooled buffer and a copy, a thousand times over for a
// session of a thousand. Instead the frame is encoded for the wire once
// (wireFrame) and every member's writer copies those bytes as they are.

// wireTextOp is the first byte of a final, uncompressed text frame sent by
// a server (FIN bit and opcode 1). No valid UTF-8 text starts with it (it
// is a continuation byte), and every payload queued for a text frame is
// valid UTF-8 (or gws would refuse to send it), so a queued frame that
// starts with it is already encoded: see writeQueued.
const wireTextOp = 0x80 | byte(gws.OpcodeText)

// wireFrame encodes payload as a server's text frame (servers do not mask),
// or returns nil if payload is not valid UTF-8: gws refuses to send such a
// frame, and so must every member's writer, one connection at a time, as
// for any other frame.
func wireFrame(payload []byte) []byte {
	if !utf8.Valid(payload) {
		return nil
	}
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2, 2+n)
		b[1] = byte(n)
	case n <= 0xFFFF:
		b = make([]byte, 4, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = wireTextOp
	return append(b, payload...)
}

// isWireFrame reports whether a queued frame was encoded by wireFrame.
func isWireFrame(b []byte) bool { return len(b) > 0 && b[0] == wireTextOp }

// writeQueued writes one queued frame: as it is if wireFrame encoded it
// (the batchConn under ws collects it with the batch, in order with what
// gws writes), else through gws as a text frame. A net.Conn never
// interleaves two Write calls, and each call here or in gws is one whole
// frame, so the stream stays well formed.
func writeQueued(ws *gws.Conn, b []byte) error {
	if isWireFrame(b) {
		_, err := ws.NetConn().Write(b)
		return err
	}
	return ws.WriteMessage(gws.OpcodeText, b)
}

// queueShared queues a session frame encoded by wireFrame, shared by every
// member here, like deliver(frame, "", nil) does, but without waking the
// writer: it reports whether the frame went to the queue, and then the
// caller wakes the writer (signal) once it has queued all it has for now.
// A frame held during a replay (or refused, the connection closing as a
// slow consumer) needs no wake-up.
func (c *conn) queueShared(wire []byte) (wake bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown || c.closing.code != 0 || c.draining || !c.roomLocked(len(wire)) {
		return false
	}
	if c.replaying {
		c.held = append(c.held, heldMsg{frame: wire})
		c.heldBytes += len(wire)
		return false
	}
	c.queueLocked(wire)
	return true
}

// wakeList collects the member lists whose writers a dispatcher has yet to
// wake, so that a burst of session messages waiting in its channel reaches
// each member's writer as one batch (one wake-up, one write) instead of one
// per message. Used by one dispatcher goroutine only.
type wakeList struct {
	lists    [][]*conn
	messages int // messages queued since the last wake
}

// add records members to wake; consecutive messages to one session share
// one list.
func (w *wakeList) add(members []*conn) {
	w.messages++
	if len(members) == 0 {
		return
	}
	if n := len(w.lists); n > 0 && len(w.lists[n-1]) == len(members) && &w.lists[n-1][0] == &members[0] {
		return
	}
	w.lists = append(w.lists, members)
}

// wake wakes every writer recorded; a writer with nothing queued (a member
// that was refused, or is the sender) wakes to an empty queue.
func (w *wakeList) wake() {
	for i, members := range w.lists {
		for _, c := range members {
			c.signal()
		}
		w.lists[i] = nil
	}
	w.lists, w.messages = w.lists[:0], 0
}
