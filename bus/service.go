package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Service nodes. A backend claims a service id (svc:matchmaker) by
// queue-subscribing its replicas to Service(id) in the queue group
// ServiceQueue. The router addresses a service id like any node: a
// request on Node(id), which for a service id is Service(id), answered "+"
// by the replica once its handler has taken the message. No answer in time
// (no replica, a replica that died, a handler error) means the message is
// stored in the service's inbox, exactly as for an offline device.
//
// Replicas cannot read JetStream (the backend NATS role has no API
// access), so the edges drain a service's backlog to them: a replica asks
// for it on ServiceReady(id) when it starts, when it is told something was
// stored (the inbox nudge, which for a service id lands on Service(id)),
// and periodically. One edge takes each request (queue group); a lease in a
// KV bucket makes it the only drainer of that service in the cluster, so
// the backlog is offered in stream order, which is each sender's order.

// ServiceQueue is the queue group every replica of a service joins.
const ServiceQueue = "allspark-service"

// Service is the subject a service's replicas receive its messages on,
// and inbox nudges (header Allspark-Inbox, no reply).
func (s Subjects) Service(id string) string { return s.prefix + ".svc." + Token(id) }

// ServiceAll matches every service subject.
func (s Subjects) ServiceAll() string { return s.prefix + ".svc.*" }

// ServiceReady is where a replica asks the edges to drain its service's
// backlog. The body is ignored.
func (s Subjects) ServiceReady(id string) string { return s.prefix + ".svcready." + Token(id) }

// ServiceReadyAll matches every ServiceReady subject.
func (s Subjects) ServiceReadyAll() string { return s.prefix + ".svcready.*" }

// ServiceLeaseBucket holds one key per service whose backlog an edge is
// draining right now.
func (s Subjects) ServiceLeaseBucket() string { return s.prefix + "_svc_drain" }

// ServiceDrainConfig configures a ServiceDrainer.
type ServiceDrainConfig struct {
	Owner    string        // this edge's id, written in the lease
	Replicas int           // of the lease bucket
	Lease    time.Duration // a drainer that stops refreshing loses its lease after this
	Window   int           // backlog messages in flight to replicas at once
	Retries  int           // passes after a failed one before waiting for the next request
	// MaxActive bounds the services drained at once by this edge (default
	// 256): a flood of ready requests for many service ids must not start
	// a goroutine each. A request past it is dropped; replicas ask again
	// every few seconds.
	MaxActive int
}

// ServiceDrainer answers ServiceReady requests by offering a service's
// stored messages to its replicas and removing each one a replica acks.
type ServiceDrainer struct {
	cfg   ServiceDrainConfig
	nc    *nats.Conn
	subj  Subjects
	inbox *Inbox
	req   *Requester
	kv    jetstream.KeyValue
	log   *slog.Logger
	// OnDrained, if set, counts backlog messages acked by a replica.
	onDrained func(int)

	// A handful of services drain at once, each briefly: one small map.
	mu     sync.Mutex
	active map[string]*drainState // guarded by mu: services draining on this edge
	closed bool                   // guarded by mu

	sub  *nats.Subscription
	stop chan struct{}
	wg   sync.WaitGroup
}

type drainState struct{ again bool }

// OpenServiceDrainer opens the lease bucket and subscribes to ServiceReady
// requests. req delivers the backlog (its timeout is the replicas' ack
// timeout); Close stops it.
func OpenServiceDrainer(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, subj Subjects, inbox *Inbox,
	req *Requester, cfg ServiceDrainConfig, onDrained func(int), log *slog.Logger) (*ServiceDrainer, error) {
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Second
	}
	cfg.Window = max(cfg.Window, 1)
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = 256
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: subj.ServiceLeaseBucket(), Description: "AllSpark service backlog drain leases",
		TTL: cfg.Lease, Replicas: max(cfg.Replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open service lease bucket: %w", err)
	}
	d := &ServiceDrainer{cfg: cfg, nc: nc, subj: subj, inbox: inbox, req: req, kv: kv, log: log,
		onDrained: onDrained, active: map[string]*drainState{}, stop: make(chan struct{})}
	d.sub, err = nc.QueueSubscribe(subj.ServiceReadyAll(), sendQueue, func(m *nats.Msg) {
		id, err := ParseToken(m.Subject[len(subj.ServiceReadyAll())-1:])
		if err != nil || !allspark.IsServiceID(id) {
			return // only service inboxes are drained to replicas
		}
		d.Kick(id)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe service ready: %w", err)
	}
	return d, nil
}

// Kick drains id's backlog on this edge, unless it is being drained here
// already, in which case that drain makes one more pass. It reports false
// when it dropped the request: closed, or MaxActive other services are
// being drained.
func (d *ServiceDrainer) Kick(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	if st := d.active[id]; st != nil {
		st.again = true
		return true
	}
	if len(d.active) >= d.cfg.MaxActive {
		d.log.Debug("service drains at their maximum; ready request dropped", "service", id, "max", d.cfg.MaxActive)
		return false
	}
	st := &drainState{}
	d.active[id] = st
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			d.drain(id)
			d.mu.Lock()
			if !st.again || d.closed {
				delete(d.active, id)
				d.mu.Unlock()
				return
			}
			st.again = false
			d.mu.Unlock()
		}
	}()
	return true
}

type passResult int

const (
	passEmpty     passResult = iota // the backlog was offered and acked to the end
	passNoReplica                   // nobody listens on the service subject
	passFailed                      // a replica did not ack, or NATS failed
	passBusy                        // another edge holds the lease
)

// drain runs passes over id's backlog while it holds the lease.
func (d *ServiceDrainer) drain(id string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	failures := 0
	for ctx.Err() == nil {
		res := d.leasedPass(ctx, id)
		switch res {
		case passBusy, passNoReplica:
			// The lease holder re-checks after it lets go; a replica that
			// comes up asks again.
			return
		case passEmpty:
			// Something stored after the last read and before the lease was
			// let go found the lease taken: look once more.
			if _, err := d.inbox.Next(ctx, id, 0); err != nil {
				return
			}
		case passFailed:
			failures++
			if failures > d.cfg.Retries {
				return // the replicas' periodic ready request resumes it
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(failures) * 250 * time.Millisecond):
			}
		}
	}
}

func leaseKey(id string) string { return Token(id) }

// leasedPass takes the lease, offers the backlog once, and lets go.
func (d *ServiceDrainer) leasedPass(ctx context.Context, id string) passResult {
	rev, err := d.kv.Create(ctx, leaseKey(id), []byte(d.cfg.Owner))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			d.log.Warn("take service drain lease", "service", id, "err", err)
		}
		return passBusy
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := d.kv.Delete(dctx, leaseKey(id), jetstream.LastRevision(rev)); err != nil {
			d.log.Warn("release service drain lease", "service", id, "err", err)
		}
	}()
	return d.pass(ctx, id, &rev)
}

type drainReply struct {
	seq     uint64
	acked   bool
	noReply bool
}

// pass offers id's stored messages in stream order, Window at a time, and
// removes those a replica acks. It stops reading at the first failure.
func (d *ServiceDrainer) pass(ctx context.Context, id string, rev *uint64) passResult {
	refresh := time.NewTicker(d.cfg.Lease / 3)
	defer refresh.Stop()
	replies := make(chan drainReply, d.cfg.Window) // never blocks: at most Window in flight
	var from uint64 = 1
	inflight, acked := 0, 0
	exhausted, failed, noReplica := false, false, false
	defer func() {
		if acked > 0 && d.onDrained != nil {
			d.onDrained(acked)
		}
	}()
	for {
		for !exhausted && !failed && inflight < d.cfg.Window {
			m, err := d.inbox.Next(ctx, id, from)
			if errors.Is(err, ErrInboxEmpty) {
				exhausted = true
				break
			}
			if err != nil {
				d.log.Warn("read service backlog", "service", id, "err", err)
				failed = true
				break
			}
			from = m.Seq + 1
			seq := m.Seq
			msg := &nats.Msg{Subject: d.subj.Node(id), Data: m.Frame, Header: nats.Header{HeaderMsgID: []string{m.MsgID}}}
			err = d.req.Request(msg, func(reply *nats.Msg, err error) {
				replies <- drainReply{seq: seq, acked: err == nil && len(reply.Data) > 0 && reply.Data[0] == ReplyAcked[0],
					noReply: errors.Is(err, nats.ErrNoResponders)}
			})
			if err != nil {
				failed = true
				break
			}
			inflight++
		}
		if inflight == 0 {
			break
		}
		select {
		case r := <-replies:
			inflight--
			if !r.acked {
				failed, noReplica = true, noReplica || r.noReply
				continue
			}
			acked++
			if err := d.inbox.Remove(ctx, r.seq); err != nil {
				d.log.Warn("remove drained service message", "service", id, "err", err)
			}
		case <-refresh.C:
			nrev, err := d.kv.Update(ctx, leaseKey(id), []byte(d.cfg.Owner), *rev)
			if err != nil {
				d.log.Warn("refresh service drain lease", "service", id, "err", err)
				return passFailed
			}
			*rev = nrev
		case <-ctx.Done():
			return passFailed
		}
	}
	switch {
	case noReplica:
		return passNoReplica
	case failed:
		return passFailed
	}
	return passEmpty
}

// Close stops answering requests and waits for running drains to stop.
func (d *ServiceDrainer) Close() {
	_ = d.sub.Unsubscribe()
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	close(d.stop)
	d.wg.Wait()
}
