package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// The raw NATS protocol of a service replica, for any language (see
// docs/PROTOCOL.md, "Service nodes"):
//
//   - queue-subscribe to <prefix>.svc.<base64url(id)> in queue group
//     "allspark-service";
//   - a message with a reply subject is an AllSpark message frame (JSON):
//     handle it, then publish "+" (taken) or "-" (not taken: it is stored
//     and offered again) to the reply subject within the edges' ack timeout;
//   - a message with header Allspark-Inbox and no reply says the service's
//     backlog grew: publish anything to <prefix>.svcready.<base64url(id)>;
//   - publish there too on start and every few seconds, so a backlog stored
//     while no replica was up, or left by a failed drain, is offered.

// ServiceQueue is the NATS queue group every replica of a service joins.
const ServiceQueue = "allspark-service"

// ServiceIDPrefix starts every service id.
const ServiceIDPrefix = "svc:"

// ServiceMessage is one message to a service, as the edge routed it.
type ServiceMessage struct {
	MsgID         string          `json:"msg_id"`
	SrcID         string          `json:"src_id"`
	SrcClientID   string          `json:"src_client_id,omitempty"`
	DestID        string          `json:"dest_id"`
	DestSessionID string          `json:"dest_session_id,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	Payload1      json.RawMessage `json:"payload1,omitempty"`
	Payload2      json.RawMessage `json:"payload2,omitempty"`
	TS            int64           `json:"ts,omitempty"` // Unix ms when the edge accepted it
	// Raw is the frame as received.
	Raw []byte `json:"-"`
}

// ServiceHandler handles one message. Returning nil acks it: the sender is
// told "delivered". An error (or a panic) refuses it: it is stored and
// offered again, to this or another replica. A handler that takes longer
// than the edges' ack timeout (ALLSPARK_ACK_TIMEOUT + 1 s) has its message
// stored and offered again too, so handlers must tolerate duplicates.
// Messages reach one replica's handler one at a time, in arrival order.
type ServiceHandler func(ctx context.Context, m *ServiceMessage) error

// ServiceOptions tune Serve; zero values are the defaults.
type ServiceOptions struct {
	// Prefix is the cluster's ALLSPARK_SUBJECT_PREFIX (default "allspark").
	Prefix string
	// ReadyInterval is how often the replica asks for its service's
	// backlog even without being told something was stored (default 10 s).
	ReadyInterval time.Duration
	// Logger receives handler errors and panics (default: discarded).
	Logger *slog.Logger
	// OnSubscribed, if set, runs once the replica is subscribed and
	// messages can reach it.
	OnSubscribed func()
}

// ServiceOption sets one of ServiceOptions.
type ServiceOption func(*ServiceOptions)

// WithServiceOptions replaces all options at once.
func WithServiceOptions(o ServiceOptions) ServiceOption { return func(p *ServiceOptions) { *p = o } }

// Serve runs one replica of service id (which must start with "svc:") on
// nc until ctx ends, then stops taking messages, finishes those already
// received and returns nil. It returns an error at once if it cannot
// subscribe. Run it on several processes for several replicas: each
// message goes to one of them.
func Serve(ctx context.Context, nc *nats.Conn, id string, h ServiceHandler, opts ...ServiceOption) error {
	var o ServiceOptions
	for _, f := range opts {
		f(&o)
	}
	if o.Prefix == "" {
		o.Prefix = "allspark"
	}
	if o.ReadyInterval <= 0 {
		o.ReadyInterval = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !strings.HasPrefix(id, ServiceIDPrefix) || len(id) == len(ServiceIDPrefix) {
		return fmt.Errorf("serve %q: a service id starts with %q", id, ServiceIDPrefix)
	}
	tok := base64.RawURLEncoding.EncodeToString([]byte(id))
	subject, readySubject := o.Prefix+".svc."+tok, o.Prefix+".svcready."+tok
	ready := func() {
		if err := nc.Publish(readySubject, nil); err != nil {
			o.Logger.Warn("ask for service backlog", "service", id, "err", err)
		}
	}
	sub, err := nc.QueueSubscribe(subject, ServiceQueue, func(m *nats.Msg) {
		if m.Reply == "" {
			if m.Header.Get("Allspark-Inbox") != "" {
				ready() // something was stored for the service
			}
			return
		}
		verdict := "-"
		// Messages received before ctx ended are still handled (Drain).
		if serveOne(context.WithoutCancel(ctx), h, m, o.Logger) {
			verdict = "+"
		}
		if err := m.Respond([]byte(verdict)); err != nil {
			o.Logger.Warn("answer service message", "service", id, "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", subject, err)
	}
	// Messages wait in the client while the handler works; the edges'
	// ack timeout, not a client limit, decides when one is given up.
	_ = sub.SetPendingLimits(-1, -1)
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe %s: %w", subject, err)
	}
	if o.OnSubscribed != nil {
		o.OnSubscribed()
	}
	ready()
	t := time.NewTicker(o.ReadyInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ready()
			continue
		case <-ctx.Done():
		}
		break
	}
	if err := sub.Drain(); err != nil {
		return nil // the connection is closed: nothing left to finish
	}
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		_ = sub.Unsubscribe() // unanswered messages are stored by the edges
	}
	return nil
}

// serveOne runs h on m and reports whether it took the message.
func serveOne(ctx context.Context, h ServiceHandler, m *nats.Msg, log *slog.Logger) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("service handler panicked", "panic", p)
			ok = false
		}
	}()
	sm := &ServiceMessage{Raw: m.Data}
	if err := json.Unmarshal(m.Data, sm); err != nil {
		log.Error("service message is not JSON; acking it so it is not offered again", "err", err)
		return true
	}
	if err := h(ctx, sm); err != nil {
		if !errors.Is(err, context.Canceled) {
			log.Warn("service handler refused a message", "msg_id", sm.MsgID, "err", err)
		}
		return false
	}
	return true
}
