package edge

import (
	"slices"
	"testing"
)

// The ledger removes an acknowledged prefix in one go and never lets a
// prefix cover a message that was not acknowledged.
func TestInboxLedgerPrefixNeverCoversUnacked(t *testing.T) {
	type want struct {
		upTo    uint64
		n       int
		singles []uint64
	}
	var l inboxLedger
	for _, seq := range []uint64{3, 5, 8, 9, 12} {
		l.handed(seq, map[bool]uint64{true: 0, false: seq - 1}[seq == 3], true)
	}
	steps := []struct {
		ack  []uint64
		want want
	}{
		{[]uint64{8}, want{0, 0, []uint64{8}}},   // ahead of a gap: alone
		{[]uint64{3}, want{3, 1, nil}},           // the prefix is 3
		{[]uint64{5}, want{8, 2, nil}},           // 5 closes the gap: prefix to 8
		{[]uint64{12}, want{0, 0, []uint64{12}}}, // 9 still unacked
		{[]uint64{9}, want{12, 2, nil}},          // all of it
		{[]uint64{40}, want{0, 0, []uint64{40}}}, // not handed here: alone
	}
	for i, st := range steps {
		upTo, n, singles := l.ack(st.ack)
		if upTo != st.want.upTo || n != st.want.n || !slices.Equal(singles, st.want.singles) {
			t.Fatalf("step %d ack %v: got prefix %d (%d) singles %v, want %+v", i, st.ack, upTo, n, singles, st.want)
		}
	}
}

// A connection whose first message was not read from the inbox's
// beginning, or that was handed a message it cannot acknowledge, never
// purges: each acknowledged message is removed alone.
func TestInboxLedgerWithoutWholeViewDeletesOneByOne(t *testing.T) {
	var late inboxLedger
	late.handed(7, 5, true)
	late.handed(9, 8, true)
	if upTo, _, singles := late.ack([]uint64{7, 9}); upTo != 0 || !slices.Equal(singles, []uint64{7, 9}) {
		t.Fatalf("started past the beginning: prefix %d singles %v, want 0 and [7 9]", upTo, singles)
	}
	var blind inboxLedger
	blind.handed(1, 0, true)
	blind.handed(2, 2, false) // no msg_id
	blind.handed(3, 3, true)
	if upTo, _, singles := blind.ack([]uint64{1, 3}); upTo != 0 || !slices.Equal(singles, []uint64{1, 3}) {
		t.Fatalf("unackable message handed: prefix %d singles %v, want 0 and [1 3]", upTo, singles)
	}
}
