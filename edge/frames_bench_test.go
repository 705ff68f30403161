package edge

import (
	"encoding/json"
	"testing"

	"github.com/allspark-rt/allspark"
)

var (
	benchMessageFrame = []byte(`{"id":"c-17","dest_id":"bob","payload":{"text":"a chat line of typical length, around sixty bytes"},"payload1":1}`)
	benchAckFrame     = []byte(`{"type":"ack","msg_ids":["01M8EM4Q89K3VT8KXGXN20E28K","01M8EM4Q89K3VT8KXGXN20E28M"]}`)
)

func BenchmarkDecodeMessageFrame(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMessageFrame)))
	for b.Loop() {
		if _, err := decodeFrame(benchMessageFrame, allspark.DefaultMaxJSONDepth); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAckFrame(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeFrame(benchAckFrame, allspark.DefaultMaxJSONDepth); err != nil {
			b.Fatal(err)
		}
	}
}

// The frame a receiver gets: encoded once by the sender's edge.
func BenchmarkEncodeDeliveredMessage(b *testing.B) {
	m := &allspark.Message{MsgID: "01M8EM4Q89K3VT8KXGXN20E28K", SrcID: "alice", SrcClientID: "acme-7", DestID: "bob",
		Payload: json.RawMessage(`{"text":"a chat line of typical length, around sixty bytes"}`), TS: 1795787218185}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSent(b *testing.B) {
	s := allspark.NewSent("c-17", "01M8EM4Q89K3VT8KXGXN20E28K", allspark.StatusDelivered, nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = mustJSON(s)
	}
}
