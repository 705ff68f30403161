package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Config says where to connect, as whom, and how to behave. Only URL and
// AuthKey are required; every other field has a default.
type Config struct {
	// URL is the edge's base HTTP URL, e.g. "http://localhost:8080". The
	// client asks it for pre-connection info (GET /v1/connect) and calls
	// the session and push-token endpoints on it.
	URL string
	// Fallbacks are more base URLs, tried in turn when URL cannot be
	// reached (several edges without a load balancer in front).
	Fallbacks []string
	// Direct connects the websocket to the base URL that answered
	// /v1/connect instead of the edge it offered (ws_url): for an edge
	// behind a load balancer or a port mapping that ws_url does not see.
	Direct bool
	// AuthKey is the node's auth_key, minted by the application's backend.
	AuthKey string
	// RefreshKey is asked for a new auth_key when the edge refuses the
	// current one (HTTP 401 or close code 4001). Without it, the client
	// stops reconnecting after such a refusal until SetAuthKey is called.
	RefreshKey func(ctx context.Context) (string, error)

	// ManualAck turns off automatic acknowledgement: the application
	// calls Message.Ack itself. Default: each message is acknowledged
	// after OnMessage returns.
	ManualAck bool
	// DedupSize is how many recent msg_ids are remembered to drop
	// redeliveries (default 10000).
	DedupSize int
	// EventQueue bounds the events waiting for the handlers (default
	// 1024). When it is full the connection stops reading, so a slow
	// handler slows the edge down instead of growing memory.
	EventQueue int
	// SendQueue bounds the frames waiting for the socket writer
	// (default 256). Send blocks while it is full.
	SendQueue int

	// MinBackoff and MaxBackoff bound the jittered exponential delay
	// between reconnection attempts (defaults 100ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// ReadTimeout closes a connection that received nothing, not even a
	// ping, for this long (default 60s; the edge pings every 25s).
	ReadTimeout time.Duration
	// WriteTimeout bounds one socket write (default 10s).
	WriteTimeout time.Duration
	// MaxFrameBytes is the largest frame accepted from the edge (default
	// 1 MiB).
	MaxFrameBytes int

	// Handlers, all called one at a time on the client's dispatch
	// goroutine, in the order the events happened. A handler must not
	// wait for Send's answer while many messages arrive: the answer
	// queues behind them. nil handlers are skipped.
	// OnPresence gets per-member presence; OnPresenceSummary the online
	// counts of sessions too large for it (see PresenceSummary).
	OnMessage         func(ctx context.Context, m *Message)
	OnPresence        func(Presence)
	OnPresenceSummary func(PresenceSummary)
	OnState           func(StateChange)
	OnError           func(error)

	// HTTPClient makes the HTTP calls (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// Logger receives debug logs (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("client: Config.URL is required")
	}
	if c.AuthKey == "" && c.RefreshKey == nil {
		return errors.New("client: Config.AuthKey or RefreshKey is required")
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.DedupSize, 10000)
	def(&c.EventQueue, 1024)
	def(&c.SendQueue, 256)
	def(&c.MaxFrameBytes, 1<<20)
	defD(&c.MinBackoff, 100*time.Millisecond)
	defD(&c.MaxBackoff, 10*time.Second)
	defD(&c.ReadTimeout, 60*time.Second)
	defD(&c.WriteTimeout, 10*time.Second)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
