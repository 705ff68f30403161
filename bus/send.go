package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/allspark-rt/allspark"
	"github.com/nats-io/nats.go"
)

// BackendMessage is what a backend service sends on allspark.send or
// POST /v1/messages: a message with src_id set, plus an optional
// correlation id echoed in the answer.
type BackendMessage struct {
	ID string `json:"id,omitempty"`
	allspark.Message
}

// ParseBackendMessage decodes and validates a backend's message. A field
// that a message does not have is rejected (bad_frame naming it), and so is
// JSON nested deeper than maxDepth.
func ParseBackendMessage(data []byte, maxBytes, maxDepth int) (*BackendMessage, *allspark.Error) {
	if len(data) > maxBytes {
		return nil, allspark.Errorf(allspark.CodeTooLarge, fmt.Sprintf("message is %d bytes, the limit is %d", len(data), maxBytes))
	}
	var bm BackendMessage
	if err := allspark.DecodeObjectDepth(data, &bm, maxDepth); err != nil {
		return nil, err
	}
	if !allspark.ValidID(bm.SrcID) {
		return nil, allspark.Errorf(allspark.CodeBadID, "src_id must be a valid id")
	}
	if bm.SrcClientID != "" && !allspark.ValidID(bm.SrcClientID) {
		return nil, allspark.Errorf(allspark.CodeBadID, "src_client_id must be a valid id")
	}
	if bm.MsgID != "" && !allspark.ValidID(bm.MsgID) {
		return nil, allspark.Errorf(allspark.CodeBadID, "msg_id must be a valid id")
	}
	if err := bm.CheckDest(); err != nil {
		return nil, err
	}
	bm.Seq = 0
	return &bm, nil
}

// sendQueue is the queue group of allspark.send responders: one edge
// answers each request.
const sendQueue = "allspark-edges"

// ServeSend answers requests on allspark.send until the returned
// subscription is unsubscribed. Each reply is the same "sent" object a
// websocket client receives.
//
// The subscription's callback only parses and queues: routing may read the
// KV store (a client's devices), and nothing may block a NATS callback. One
// worker routes the queued requests in arrival order, so a backend's
// messages published one after another still reach each node in order. A
// request that finds the queue full (BackendQueue) is answered rejected
// "overloaded".
func (r *Router) ServeSend(maxBytes, maxDepth int) (*nats.Subscription, error) {
	r.openMu.Lock()
	if r.open && r.backend == nil {
		r.backend = make(chan backendRequest, r.backendQ)
		r.loops.Add(1)
		go r.serveBackend(r.backend)
	}
	r.openMu.Unlock()
	sub, err := r.nc.QueueSubscribe(r.subj.Send(), sendQueue, func(m *nats.Msg) {
		answer := func(s allspark.Sent) {
			if m.Reply == "" {
				return // fire and forget
			}
			b, _ := json.Marshal(s)
			if err := r.nc.Publish(m.Reply, b); err != nil {
				r.log.Warn("answer allspark.send", "err", err)
			}
		}
		bm, perr := ParseBackendMessage(m.Data, maxBytes, maxDepth)
		if perr != nil {
			answer(allspark.NewSent("", "", allspark.StatusRejected, perr))
			return
		}
		if code := r.queueBackend(backendRequest{bm: bm, answer: answer}); code != "" {
			text := "the edge is stopping"
			if code == allspark.CodeOverloaded {
				text = "the edge has too many allspark.send requests waiting; retry later"
			}
			answer(allspark.NewSent(bm.ID, bm.MsgID, allspark.StatusRejected, allspark.Errorf(code, text)))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", r.subj.Send(), err)
	}
	return sub, nil
}

// backendRequest is one allspark.send request waiting for the worker.
type backendRequest struct {
	bm     *BackendMessage
	answer func(allspark.Sent)
}

// queueBackend hands req to the worker without waiting, or says why not.
func (r *Router) queueBackend(req backendRequest) allspark.Code {
	r.openMu.RLock()
	defer r.openMu.RUnlock()
	if !r.open {
		return allspark.CodeUnavailable
	}
	select {
	case r.backend <- req:
		return ""
	default:
		return allspark.CodeOverloaded
	}
}

// serveBackend routes allspark.send requests until Shutdown closes q. A
// lookup waits at most StoreTimeout, and is cut short by Shutdown's end.
func (r *Router) serveBackend(q <-chan backendRequest) {
	defer r.loops.Done()
	for req := range q {
		ctx, cancel := context.WithTimeout(r.storeCtx, r.storeTimeout)
		r.Send(ctx, &req.bm.Message, req.bm.ID, nil, req.answer)
		cancel()
	}
}
