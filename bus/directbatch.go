package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Batched direct gets. nats-server answers a request to
// $JS.API.DIRECT.GET.<stream> carrying {"seq","next_by_subj","batch",
// "max_bytes"} with up to batch messages of that subject at or after seq,
// in order, then a "204 EOB" status whose Nats-Num-Pending says how many
// are left after the last one sent ("404" if there is none at all). nats.go's
// jetstream package has no call for it, so the inbox makes the request
// itself. All answers come to one wildcard subscription and are routed by
// the last token of the reply subject: a subscription per request would
// cost the server a SUB and an UNSUB for every page.

// headerNumPending is, in an end of batch, how many messages of the
// subject are left after the last one sent.
const headerNumPending = "Nats-Num-Pending"

// directPageShards spreads the in-flight page requests over this many maps.
const directPageShards = 16

// directPager sends batched direct gets for one stream and routes their
// answers.
type directPager struct {
	nc      *nats.Conn
	subject string // $JS.API.DIRECT.GET.<stream>
	leader  string // $JS.API.STREAM.MSG.GET.<stream>: answered by the stream leader only
	prefix  string // reply subjects are prefix + id
	sub     *nats.Subscription
	ids     atomic.Uint64
	seed    maphash.Seed
	shards  [directPageShards]pageShard
}

type pageShard struct {
	mu      sync.Mutex
	waiting map[uint64]chan *nats.Msg // guarded by mu: request id -> its answers
}

func newDirectPager(nc *nats.Conn, stream string) (*directPager, error) {
	p := &directPager{nc: nc, subject: "$JS.API.DIRECT.GET." + stream, leader: "$JS.API.STREAM.MSG.GET." + stream,
		prefix: nc.NewInbox() + ".",
		seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].waiting = map[uint64]chan *nats.Msg{}
	}
	sub, err := nc.Subscribe(p.prefix+"*", p.route)
	if err != nil {
		return nil, fmt.Errorf("subscribe to inbox pages: %w", err)
	}
	// A page in flight per inbox reader at most: the defaults (512k
	// messages, 64 MB) are far above what MaxInboxReads pages hold.
	p.sub = sub
	return p, nil
}

func (p *directPager) shard(id uint64) *pageShard {
	return &p.shards[maphash.Comparable(p.seed, id)%directPageShards]
}

// route hands an answer to the request waiting for it. An answer to a
// request that gave up (timed out) is dropped.
func (p *directPager) route(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	sh := p.shard(id)
	sh.mu.Lock()
	ch := sh.waiting[id]
	sh.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- m:
	default: // more answers than asked for: the request fails by timeout
	}
}

// directPageRequest is the JSON body of a batched direct get.
type directPageRequest struct {
	Seq      uint64 `json:"seq"`
	NextFor  string `json:"next_by_subj"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// page reads up to n messages of subject at or after from (fewer if they
// pass maxBytes; at least one if there is any). end reports that none was
// left after the last one returned when the server answered.
func (p *directPager) page(ctx context.Context, subject string, from uint64, n, maxBytes int) (msgs []InboxMsg, end bool, err error) {
	id := p.ids.Add(1)
	ch := make(chan *nats.Msg, n+2)
	sh := p.shard(id)
	sh.mu.Lock()
	sh.waiting[id] = ch
	sh.mu.Unlock()
	defer func() {
		sh.mu.Lock()
		delete(sh.waiting, id)
		sh.mu.Unlock()
	}()
	body, _ := json.Marshal(directPageRequest{Seq: max(from, 1), NextFor: subject, Batch: n, MaxBytes: maxBytes})
	if err := p.nc.PublishRequest(p.subject, p.prefix+strconv.FormatUint(id, 10), body); err != nil {
		return nil, false, fmt.Errorf("request inbox page: %w", err)
	}
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, false, fmt.Errorf("read inbox page: %w", ctx.Err())
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of batch
			pending, err := strconv.ParseUint(m.Header.Get(headerNumPending), 10, 64)
			if err != nil {
				return nil, false, fmt.Errorf("read inbox page: bad end of batch %q: %w", m.Header.Get(headerNumPending), err)
			}
			return msgs, pending == 0, nil
		case "404":
			if len(msgs) > 0 { // not sent after messages today; kept safe if it ever is
				return msgs, true, nil
			}
			return nil, true, ErrInboxEmpty
		case "503":
			return nil, false, fmt.Errorf("read inbox page: %w", nats.ErrNoResponders)
		default:
			return nil, false, fmt.Errorf("read inbox page: status %s %s", status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("read inbox page: bad sequence %q: %w", m.Header.Get(jetstream.SequenceHeader), err)
		}
		if len(msgs) > 0 && seq <= msgs[len(msgs)-1].Seq {
			return nil, false, errors.New("read inbox page: answers out of order")
		}
		msgs = append(msgs, InboxMsg{Seq: seq, MsgID: m.Header.Get(HeaderMsgID), Frame: m.Data})
	}
}

// leaderGetResponse is the JetStream API's answer to a message get.
type leaderGetResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Message *struct {
		Sequence uint64 `json:"seq"`
		Header   []byte `json:"hdrs"`
		Data     []byte `json:"data"`
	} `json:"message"`
}

// leaderGet reads the first message of subject at or after from through
// the stream leader. nats.go's Stream.GetMsg cannot be used for it: on a
// stream that allows direct gets it makes a direct get.
func (p *directPager) leaderGet(ctx context.Context, subject string, from uint64) (InboxMsg, error) {
	body, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
	}{max(from, 1), subject})
	m, err := p.nc.RequestWithContext(ctx, p.leader, body)
	if err != nil {
		return InboxMsg{}, fmt.Errorf("read inbox: %w", err)
	}
	var resp leaderGetResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return InboxMsg{}, fmt.Errorf("read inbox: decode answer: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound):
		return InboxMsg{}, ErrInboxEmpty
	case resp.Error != nil:
		return InboxMsg{}, fmt.Errorf("read inbox: %s (code %d, err_code %d)", resp.Error.Description, resp.Error.Code, resp.Error.ErrCode)
	case resp.Message == nil:
		return InboxMsg{}, errors.New("read inbox: answer without a message")
	}
	msg := InboxMsg{Seq: resp.Message.Sequence, Frame: resp.Message.Data}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return InboxMsg{}, fmt.Errorf("read inbox: decode headers: %w", err)
		}
		msg.MsgID = h.Get(HeaderMsgID)
	}
	return msg, nil
}
