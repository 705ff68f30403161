// Package client is the Go client of AllSpark: it connects a node to an
// edge and keeps the promises of the protocol on the client's side, so an
// application only handles messages.
//
//   - pre-connection info (GET /v1/connect), then the websocket with the
//     validation token;
//   - every message acknowledged after the application's handler returns
//     (or when it calls Message.Ack), and redeliveries dropped by msg_id;
//   - Send answered with the edge's outcome (delivered, stored, rejected);
//   - reconnection with jittered exponential backoff, at once after a
//     drain (reconnect frame, close code 1001), and only with a new key
//     after 4001; after a reconnect the inbox replay, then a sync of every
//     session from the last seq seen;
//   - sessions, presence (per member, or summaries of large sessions)
//     and push tokens.
//
// Per connection there is one reader and one writer goroutine; the
// client adds one supervisor and one goroutine that calls the handlers.
// Close stops them all.
package client

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/allspark-rt/allspark"
)

// Client is a connection to AllSpark that survives disconnections.
type Client struct {
	cfg    Config
	stop   chan struct{} // closed by Close
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events chan event
	ids    atomic.Uint64
	keyCh  chan struct{} // capacity 1: SetAuthKey was called
	first  chan error    // capacity 1: the first connection's result
	done   chan struct{} // closed when the client stops connecting for good
	once   sync.Once

	mu      sync.Mutex
	key     string            // guarded by mu
	base    string            // guarded by mu: the base URL that last answered
	cur     *wsConn           // guarded by mu: nil while disconnected
	up      chan struct{}     // guarded by mu: closed while cur is set
	seen    *dedup            // guarded by mu
	cursors map[string]uint64 // guarded by mu: session id -> last seq seen
}

// event is one thing for the handlers.
type event struct {
	msg      *Message
	presence *Presence
	summary  *PresenceSummary
	state    *StateChange
	err      error
}

// Message is a message delivered to this node.
type Message struct {
	allspark.Message
	c *Client
}

// Ack acknowledges the message (ManualAck mode; in the default mode the
// client does it after OnMessage returns). The edge then removes it from
// the node's inbox, and the sender's outcome becomes delivered.
func (m *Message) Ack(ctx context.Context) error { return m.c.ack(ctx, []*Message{m}) }

// Dial connects and waits until the first connection has caught up (its
// inbox replay finished), then keeps the client connected until Close. It
// fails when ctx ends first or when the auth_key is refused and no new one
// can be had.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	c.Start()
	select {
	case err := <-c.first:
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("connect: %w", ctx.Err())
	}
}

// Done is closed when the client stops connecting for good: after Close,
// or after the edge replaced its connection (ErrReplaced, reported through
// OnState).
func (c *Client) Done() <-chan struct{} { return c.done }

// New builds a client without connecting; Start connects.
func New(cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{cfg: cfg, stop: make(chan struct{}), ctx: ctx, cancel: cancel,
		events: make(chan event, cfg.EventQueue), keyCh: make(chan struct{}, 1), first: make(chan error, 1), done: make(chan struct{}),
		key: cfg.AuthKey, base: cfg.URL, up: make(chan struct{}), seen: newDedup(cfg.DedupSize),
		cursors: map[string]uint64{}}, nil
}

// Start begins connecting in the background.
func (c *Client) Start() {
	c.once.Do(func() {
		c.wg.Add(2)
		go c.dispatch()
		go c.supervise()
	})
}

// Close disconnects and stops every goroutine of the client. Pending
// Sends return ErrClosed or ErrAnswerLost.
func (c *Client) Close() {
	c.mu.Lock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// SetAuthKey replaces the auth_key used from the next connection on, and
// wakes a client that stopped after its key was refused.
func (c *Client) SetAuthKey(key string) {
	c.mu.Lock()
	c.key = key
	c.mu.Unlock()
	select {
	case c.keyCh <- struct{}{}:
	default:
	}
}

func (c *Client) nextID() string { return "c-" + strconv.FormatUint(c.ids.Add(1), 10) }

// emit queues an event for the handlers, waiting while the queue is full.
func (c *Client) emit(e event) {
	select {
	case c.events <- e:
	case <-c.stop:
	}
}

func (c *Client) emitState(s StateChange) { c.emit(event{state: &s}) }

func (c *Client) reportFrameError(b []byte, err error) {
	c.emit(event{err: &FrameError{Frame: []byte(allspark.Truncate(string(b), 256)), Err: err}})
}

// dispatch calls the handlers, one event at a time, and acknowledges
// messages (automatic mode) in batches: whenever the queue runs dry or a
// batch is full.
func (c *Client) dispatch() {
	defer c.wg.Done()
	var batch []*Message
	flush := func() {
		if len(batch) > 0 {
			_ = c.ack(c.ctx, batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	for {
		var e event
		select {
		case e = <-c.events:
		case <-c.stop:
			return
		}
		switch {
		case e.msg != nil:
			if h := c.cfg.OnMessage; h != nil {
				h(c.ctx, e.msg)
			}
			if !c.cfg.ManualAck {
				batch = append(batch, e.msg)
			}
		case e.presence != nil:
			if h := c.cfg.OnPresence; h != nil {
				h(*e.presence)
			}
		case e.summary != nil:
			if h := c.cfg.OnPresenceSummary; h != nil {
				h(*e.summary)
			}
		case e.state != nil:
			if h := c.cfg.OnState; h != nil {
				h(*e.state)
			}
			if e.state.State == Connected {
				// Dial returns once the replayed messages queued before
				// this event have been handed to OnMessage.
				c.reportFirst(nil)
			}
		case e.err != nil:
			if h := c.cfg.OnError; h != nil {
				h(e.err)
			}
		}
		if len(c.events) == 0 || len(batch) >= maxAckBatch {
			flush()
		}
	}
}

// maxAckBatch is the edge's limit of msg_ids per ack frame.
const maxAckBatch = 1024

// received handles a message from the edge on the reader: a redelivery of
// one already acknowledged is acknowledged again and dropped; one handed
// to the application but not yet acknowledged (ManualAck) is dropped.
func (c *Client) received(w *wsConn, m allspark.Message) {
	msg := &Message{Message: m, c: c}
	c.mu.Lock()
	if broadcast(m) {
		if _, ok := c.cursors[m.DestSessionID]; ok && m.Seq > c.cursors[m.DestSessionID] {
			c.cursors[m.DestSessionID] = m.Seq
		}
	}
	isNew, acked := c.seen.add(m.MsgID)
	c.mu.Unlock()
	if isNew {
		c.emit(event{msg: msg})
		return
	}
	if acked && !broadcast(m) {
		if b, err := encode(clientFrame{Type: "ack", MsgIDs: []string{m.MsgID}}); err == nil {
			_ = w.enqueue(c.ctx, b)
		}
	}
}

// broadcast reports whether m is a session message to every member, which
// is acknowledged with a read cursor instead of its msg_id.
func broadcast(m allspark.Message) bool { return m.DestSessionID != "" && m.MemberID == "" }

// ack acknowledges ms on the current connection: msg_ids for direct
// messages, the highest seq per session for session messages. Without a
// connection nothing is sent: the edge replays unacknowledged messages at
// the next one, and they are acknowledged then as duplicates.
func (c *Client) ack(ctx context.Context, ms []*Message) error {
	var ids []string
	seqs := map[string]uint64{}
	c.mu.Lock()
	for _, m := range ms {
		c.seen.markAcked(m.MsgID)
		if broadcast(m.Message) {
			seqs[m.DestSessionID] = max(seqs[m.DestSessionID], m.Seq)
		} else {
			ids = append(ids, m.MsgID)
		}
	}
	w := c.cur
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	frames := make([]clientFrame, 0, 1+len(seqs))
	if len(ids) > 0 {
		frames = append(frames, clientFrame{Type: "ack", MsgIDs: ids})
	}
	for sid, seq := range seqs {
		if seq > 0 {
			frames = append(frames, clientFrame{Type: "ack", SessionID: sid, Seq: seq})
		}
	}
	for _, f := range frames {
		b, err := encode(f)
		if err != nil {
			return err
		}
		if err := w.enqueue(ctx, b); err != nil {
			return fmt.Errorf("send ack: %w", err)
		}
	}
	return nil
}

// connection waits for a live connection.
func (c *Client) connection(ctx context.Context) (*wsConn, error) {
	for {
		c.mu.Lock()
		w, up := c.cur, c.up
		c.mu.Unlock()
		if w != nil {
			select {
			case <-w.done: // ended; serve is about to clear it
				runtime.Gosched()
				continue
			default:
				return w, nil
			}
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a connection: %w", ctx.Err())
		case <-c.stop:
			return nil, ErrClosed
		}
	}
}
