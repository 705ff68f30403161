package edge

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/allspark-rt/allspark"
)

// Config is an edge's configuration. The env tags are read by cmd/edge with
// the ALLSPARK_ prefix; the edge itself never looks at the environment.
type Config struct {
	// ID names this edge in the registry and in logs.
	ID string `env:"EDGE_ID"`
	// PublicURL is the base URL clients use to reach this edge
	// (http://10.0.0.5:8080); ws_url is derived from it.
	PublicURL string `env:"PUBLIC_URL"`
	// ProxyURL, when set, is offered as proxy_url: the websocket URL of this
	// edge behind a reverse proxy on a standard port.
	ProxyURL string `env:"PROXY_URL"`
	// APIKey guards POST /v1/messages. Empty disables that endpoint.
	APIKey string `env:"API_KEY"`
	// SubjectPrefix prefixes every NATS subject, stream and bucket.
	SubjectPrefix string `env:"SUBJECT_PREFIX" envDefault:"allspark"`

	MaxFrameBytes  int           `env:"MAX_FRAME_BYTES" envDefault:"65536"`
	SendQueueBytes int           `env:"SEND_QUEUE_BYTES" envDefault:"1048576"`
	AckTimeout     time.Duration `env:"ACK_TIMEOUT" envDefault:"2s"`
	ValidationTTL  time.Duration `env:"VALIDATION_TTL" envDefault:"60s"`
	Heartbeat      time.Duration `env:"HEARTBEAT" envDefault:"2s"`
	WriteTimeout   time.Duration `env:"WRITE_TIMEOUT" envDefault:"10s"`
	DrainTimeout   time.Duration `env:"DRAIN_TIMEOUT" envDefault:"10s"`
	// PingInterval is how often the edge pings every connection, whatever
	// else it writes. A connection from which nothing (a frame or a pong)
	// has arrived for readTimeout (1.5 intervals) is closed.
	PingInterval time.Duration `env:"PING_INTERVAL" envDefault:"25s"`
	// InboxReadGrace is how long a connection's inbox pass keeps retrying a
	// failing inbox read (a stream leader failover, say) before it closes
	// the connection with 1013.
	InboxReadGrace time.Duration `env:"INBOX_READ_GRACE" envDefault:"10s"`
	// StreamReplicas is the replica count of the streams and buckets this
	// edge creates: 1 on a single server, 3 on a cluster.
	StreamReplicas int `env:"STREAM_REPLICAS" envDefault:"1"`
	// InboxTTL is how long a pending message waits for its node; it is also
	// how long a client's unseen device is remembered.
	InboxTTL time.Duration `env:"INBOX_TTL" envDefault:"720h"`
	// InboxMaxPerNode caps one node's pending messages. A message for a full
	// inbox is rejected with inbox_full; stored messages are never dropped
	// to make room.
	InboxMaxPerNode int64 `env:"INBOX_MAX_PER_NODE" envDefault:"10000"`
	// InboxMaxBytes caps all pending messages together (the stream's
	// MaxBytes): past it a store fails and the sender is answered rejected
	// "overloaded"; nothing stored is dropped to make room. One node holds
	// at most InboxMaxPerNode × MaxFrameBytes.
	InboxMaxBytes int64 `env:"INBOX_MAX_BYTES" envDefault:"4294967296"`
	// Undelivered events (for push workers) are kept UndeliveredTTL and
	// UndeliveredMaxBytes, the oldest dropped first (a lost event costs a
	// notification, not a message); UndeliveredEvents=false publishes none.
	UndeliveredEvents   bool          `env:"UNDELIVERED_EVENTS" envDefault:"true"`
	UndeliveredTTL      time.Duration `env:"UNDELIVERED_TTL" envDefault:"24h"`
	UndeliveredMaxBytes int64         `env:"UNDELIVERED_MAX_BYTES" envDefault:"268435456"`
	// HistoryTTL and HistoryMaxPerSession bound session history; older
	// messages can no longer be synced.
	HistoryTTL           time.Duration `env:"HISTORY_TTL" envDefault:"720h"`
	HistoryMaxPerSession int64         `env:"HISTORY_MAX_PER_SESSION" envDefault:"10000"`
	// AllowedOrigins lists the web origins browsers may call this edge from
	// (CORS, and the Origin check of the websocket upgrade):
	// scheme://host[:port] entries, or "*". Empty: same origin only.
	AllowedOrigins []string `env:"ALLOWED_ORIGINS"`
	// DevTokens serves POST /v1/dev/token, which mints an auth_key for any
	// node id without authentication. Development only: cmd/edge refuses it
	// together with a configured ALLSPARK_AUTH_SECRET.
	DevTokens bool `env:"DEV_TOKENS"`
	// SessionMaxMembers caps one session's members (a join past it answers
	// 409 conflict); NodeMaxSessions caps the sessions one node is in (a
	// join or create past it answers 409 conflict). 0 means the default.
	SessionMaxMembers int `env:"SESSION_MAX_MEMBERS" envDefault:"100000"`
	NodeMaxSessions   int `env:"NODE_MAX_SESSIONS" envDefault:"1000"`
	// SessionPageDefault and SessionPageMax are the members one page of
	// GET /v1/sessions/{id} holds without ?limit= and at most; a limit
	// outside 1..SessionPageMax answers 400 bad_request. 0 means 1000.
	SessionPageDefault int `env:"SESSION_PAGE_DEFAULT" envDefault:"1000"`
	SessionPageMax     int `env:"SESSION_PAGE_MAX" envDefault:"1000"`
	// StoreTimeout bounds the storing of one message's inbox copies (or its
	// session history append), retries included; a copy not durable by then
	// fails "unavailable". StoreAttemptTimeout is how long one publish waits
	// for its PubAck before it is retried with the same Nats-Msg-Id.
	StoreTimeout        time.Duration `env:"STORE_TIMEOUT" envDefault:"10s"`
	StoreAttemptTimeout time.Duration `env:"STORE_ATTEMPT_TIMEOUT" envDefault:"2s"`
	// StoreQueue and StoreQueueBytes bound the copies this edge is storing at
	// once; a copy past them fails at once with "overloaded".
	StoreQueue      int   `env:"STORE_QUEUE" envDefault:"16384"`
	StoreQueueBytes int64 `env:"STORE_QUEUE_BYTES" envDefault:"67108864"`
	// BackendQueue bounds the allspark.send requests waiting to be routed;
	// past it they are answered rejected "overloaded".
	BackendQueue int `env:"BACKEND_QUEUE" envDefault:"1024"`
	// SyncMaxLimit caps a session sync's limit (a larger one is capped, not
	// refused). 0 means the default.
	SyncMaxLimit int `env:"SYNC_MAX_LIMIT" envDefault:"1000"`
	// MaxJSONDepth is the deepest nesting of arrays and objects a client
	// frame or backend message may have; a deeper one is bad_frame, so no
	// payload that would overflow a recursive parser is stored. 0 means the
	// default.
	MaxJSONDepth int `env:"MAX_JSON_DEPTH" envDefault:"64"`
	// MaxConns caps this edge's websocket connections: past it an upgrade is
	// refused with 503 unavailable ("edge full") and the edge is not offered
	// by /v1/connect until it has room. 0 means the default.
	MaxConns int `env:"MAX_CONNS" envDefault:"100000"`
	// MaxConnsPerNode caps one node's connections on this edge: past it a new
	// connection is refused (409 conflict, or close 4011 for a browser), and
	// the node's open connections are kept. 0 means the default.
	MaxConnsPerNode int `env:"MAX_CONNS_PER_NODE" envDefault:"16"`
	// SingleConnection keeps one connection per node on this edge: a new
	// connection replaces the node's older ones, which are closed with 4011
	// "replaced".
	SingleConnection bool `env:"SINGLE_CONNECTION"`
	// RateLimit is the frames per second a connection may send, as a token
	// bucket of RateBurst frames (acks are never counted). A frame over the
	// rate is answered rate_limited; a connection over it for RateLimitGrace
	// is closed with 4008. 0 disables the limit.
	RateLimit      int           `env:"RATE_LIMIT" envDefault:"500"`
	RateBurst      int           `env:"RATE_BURST" envDefault:"1000"`
	RateLimitGrace time.Duration `env:"RATE_LIMIT_GRACE" envDefault:"5s"`
	// MaxInboxReads bounds the inbox reads this edge has in flight at once,
	// across all its nodes; further reads wait their turn. 0 means the default.
	MaxInboxReads int `env:"MAX_INBOX_READS" envDefault:"64"`
	// InboxPage is how many messages one inbox read returns at most (a
	// batched direct get; also at most half of SendQueueBytes). 0 means
	// the default.
	InboxPage int `env:"INBOX_PAGE" envDefault:"256"`

	// Issue 14, backends as nodes (edge/services.go; 0 means the default).
	// ServiceDrainWindow is how many stored messages for a service id are
	// in flight to its replicas at once while its backlog drains.
	ServiceDrainWindow int `env:"SERVICE_DRAIN_WINDOW" envDefault:"64"`
	// Events publishes lifecycle events on allspark.events.> and keeps them
	// in a stream for EventsTTL (and at most EventsMaxBytes, 0: no limit).
	Events         bool          `env:"EVENTS" envDefault:"true"`
	EventsTTL      time.Duration `env:"EVENTS_TTL" envDefault:"24h"`
	EventsMaxBytes int64         `env:"EVENTS_MAX_BYTES" envDefault:"1073741824"`
	// PresenceMaxNodes caps the node ids of one presence query, and
	// PresenceMaxInFlight the backend presence queries running at once on
	// this edge (past it: answered overloaded).
	PresenceMaxNodes    int `env:"PRESENCE_MAX_NODES" envDefault:"1000"`
	PresenceMaxInFlight int `env:"PRESENCE_MAX_INFLIGHT" envDefault:"64"`
	// ServiceMaxDrains caps the service backlogs this edge drains at once
	// (past it a ready request is dropped; replicas ask again).
	ServiceMaxDrains int `env:"SERVICE_MAX_DRAINS" envDefault:"256"`

	// Presence summaries (edge/presence_summary.go; 0 means the default).
	// A session with more than PresenceMaxMembers members gets no
	// per-member presence frames; its members get the number of members
	// online, at most once per PresenceSummaryInterval and only when it
	// changed. An edge trusts a session's member count for PresenceSizeTTL,
	// remembers at most PresenceSizeCache of them, and reads at most
	// PresenceSizeReads at once for the counting.
	PresenceMaxMembers      int           `env:"PRESENCE_MAX_MEMBERS" envDefault:"100"`
	PresenceSummaryInterval time.Duration `env:"PRESENCE_SUMMARY_INTERVAL" envDefault:"1s"`
	PresenceSizeTTL         time.Duration `env:"PRESENCE_SIZE_TTL" envDefault:"30s"`
	PresenceSizeCache       int           `env:"PRESENCE_SIZE_CACHE" envDefault:"10000"`
	PresenceSizeReads       int           `env:"PRESENCE_SIZE_READS" envDefault:"16"`
}

// Defaults of the limits whose zero value means "the default" (a Config
// built in code, not from the environment).
const (
	defaultMaxConns        = 100_000
	defaultMaxConnsPerNode = 16
	defaultRateBurst       = 1000
	defaultRateLimitGrace  = 5 * time.Second
	defaultMaxInboxReads   = 64
	defaultInboxPage       = 256
	defaultSyncMaxLimit    = 1000
	defaultServiceDrain    = 64
	defaultEventsTTL       = 24 * time.Hour
	defaultPresenceNodes   = 1000
	defaultSessionPage     = 1000
)

// withDefaults fills the limits left at zero.
func (c Config) withDefaults() Config {
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns
	}
	if c.MaxConnsPerNode == 0 {
		c.MaxConnsPerNode = defaultMaxConnsPerNode
	}
	if c.RateBurst == 0 {
		c.RateBurst = max(defaultRateBurst, c.RateLimit)
	}
	if c.RateLimitGrace == 0 {
		c.RateLimitGrace = defaultRateLimitGrace
	}
	if c.MaxInboxReads == 0 {
		c.MaxInboxReads = defaultMaxInboxReads
	}
	if c.InboxPage == 0 {
		c.InboxPage = defaultInboxPage
	}
	if c.SyncMaxLimit == 0 {
		c.SyncMaxLimit = defaultSyncMaxLimit
	}
	if c.MaxJSONDepth == 0 {
		c.MaxJSONDepth = allspark.DefaultMaxJSONDepth
	}
	if c.ServiceDrainWindow == 0 {
		c.ServiceDrainWindow = defaultServiceDrain
	}
	if c.EventsTTL == 0 {
		c.EventsTTL = defaultEventsTTL
	}
	if c.PresenceMaxNodes == 0 {
		c.PresenceMaxNodes = defaultPresenceNodes
	}
	if c.SessionPageMax == 0 {
		c.SessionPageMax = defaultSessionPage
	}
	if c.SessionPageDefault == 0 {
		c.SessionPageDefault = min(defaultSessionPage, c.SessionPageMax)
	}
	return c.presenceDefaults()
}

// Validate reports the first invalid field by its environment name.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ALLSPARK_%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if !allspark.ValidID(c.ID) {
		bad("EDGE_ID", "must be a valid id (1-128 bytes, no control characters), got %q", c.ID)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("PUBLIC_URL", "must be an http(s) URL with a host, got %q", c.PublicURL)
	}
	if c.ProxyURL != "" {
		if u, err := url.Parse(c.ProxyURL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			bad("PROXY_URL", "must be a ws(s) URL, got %q", c.ProxyURL)
		}
	}
	if c.MaxFrameBytes < 256 || c.MaxFrameBytes > 16<<20 {
		bad("MAX_FRAME_BYTES", "must be between 256 and 16777216, got %d", c.MaxFrameBytes)
	}
	if c.SendQueueBytes < c.MaxFrameBytes {
		bad("SEND_QUEUE_BYTES", "must be at least MAX_FRAME_BYTES (%d), got %d", c.MaxFrameBytes, c.SendQueueBytes)
	}
	for name, d := range map[string]time.Duration{"ACK_TIMEOUT": c.AckTimeout, "VALIDATION_TTL": c.ValidationTTL,
		"HEARTBEAT": c.Heartbeat, "WRITE_TIMEOUT": c.WriteTimeout, "DRAIN_TIMEOUT": c.DrainTimeout, "INBOX_TTL": c.InboxTTL,
		"PING_INTERVAL": c.PingInterval, "INBOX_READ_GRACE": c.InboxReadGrace,
		"HISTORY_TTL": c.HistoryTTL, "STORE_TIMEOUT": c.StoreTimeout, "STORE_ATTEMPT_TIMEOUT": c.StoreAttemptTimeout} {
		if d <= 0 {
			bad(name, "must be a positive duration, got %s", d)
		}
	}
	if c.InboxMaxBytes < 0 {
		bad("INBOX_MAX_BYTES", "must be 0 (no cap but the servers') or positive, got %d", c.InboxMaxBytes)
	}
	if c.UndeliveredTTL < 0 || c.UndeliveredMaxBytes < 0 {
		bad("UNDELIVERED_TTL", "UNDELIVERED_TTL and UNDELIVERED_MAX_BYTES must not be negative, got %s and %d", c.UndeliveredTTL, c.UndeliveredMaxBytes)
	}
	if c.InboxMaxPerNode < 1 {
		bad("INBOX_MAX_PER_NODE", "must be positive, got %d", c.InboxMaxPerNode)
	}
	if c.HistoryMaxPerSession < 1 {
		bad("HISTORY_MAX_PER_SESSION", "must be positive, got %d", c.HistoryMaxPerSession)
	}
	if _, err := parseOrigins(c.AllowedOrigins); err != nil {
		bad("ALLOWED_ORIGINS", "%v", err)
	}
	if c.SessionMaxMembers < 0 || c.SessionMaxMembers > 1_000_000 {
		bad("SESSION_MAX_MEMBERS", "must be 0 (default) to 1000000, got %d", c.SessionMaxMembers)
	}
	if c.SessionPageMax < 0 || c.SessionPageMax > 100_000 {
		bad("SESSION_PAGE_MAX", "must be 0 (default) to 100000, got %d", c.SessionPageMax)
	}
	if d := c.withDefaults(); c.SessionPageDefault < 0 || d.SessionPageDefault > d.SessionPageMax {
		bad("SESSION_PAGE_DEFAULT", "must be 0 (default) to SESSION_PAGE_MAX (%d), got %d", d.SessionPageMax, c.SessionPageDefault)
	}
	if c.NodeMaxSessions < 0 || c.NodeMaxSessions > 100_000 {
		bad("NODE_MAX_SESSIONS", "must be 0 (default) to 100000, got %d", c.NodeMaxSessions)
	}
	if c.StoreAttemptTimeout > c.StoreTimeout {
		bad("STORE_ATTEMPT_TIMEOUT", "must not exceed STORE_TIMEOUT (%s), got %s", c.StoreTimeout, c.StoreAttemptTimeout)
	}
	if c.StoreQueue < 1 {
		bad("STORE_QUEUE", "must be positive, got %d", c.StoreQueue)
	}
	if c.StoreQueueBytes < int64(c.MaxFrameBytes) {
		bad("STORE_QUEUE_BYTES", "must be at least MAX_FRAME_BYTES (%d), got %d", c.MaxFrameBytes, c.StoreQueueBytes)
	}
	if c.BackendQueue < 1 {
		bad("BACKEND_QUEUE", "must be positive, got %d", c.BackendQueue)
	}
	if c.SyncMaxLimit < 0 || c.SyncMaxLimit > 100_000 {
		bad("SYNC_MAX_LIMIT", "must be 0 (default) to 100000, got %d", c.SyncMaxLimit)
	}
	if c.MaxJSONDepth < 0 || c.MaxJSONDepth > 10_000 {
		bad("MAX_JSON_DEPTH", "must be 0 (default) to 10000, got %d", c.MaxJSONDepth)
	}
	if c.MaxConns < 0 || c.MaxConns > 10_000_000 {
		bad("MAX_CONNS", "must be 0 (default) to 10000000, got %d", c.MaxConns)
	}
	if c.MaxConnsPerNode < 0 || c.MaxConnsPerNode > 100_000 {
		bad("MAX_CONNS_PER_NODE", "must be 0 (default) to 100000, got %d", c.MaxConnsPerNode)
	}
	if c.RateLimit < 0 || c.RateLimit > 1_000_000 {
		bad("RATE_LIMIT", "must be 0 (off) to 1000000 frames per second, got %d", c.RateLimit)
	}
	if c.RateBurst < 0 || c.RateBurst > 1_000_000 {
		bad("RATE_BURST", "must be 0 (default) to 1000000 frames, got %d", c.RateBurst)
	}
	if c.RateLimitGrace < 0 {
		bad("RATE_LIMIT_GRACE", "must not be negative, got %s", c.RateLimitGrace)
	}
	if c.MaxInboxReads < 0 || c.MaxInboxReads > 10_000 {
		bad("MAX_INBOX_READS", "must be 0 (default) to 10000, got %d", c.MaxInboxReads)
	}
	if c.InboxPage < 0 || c.InboxPage > 10_000 {
		bad("INBOX_PAGE", "must be 0 (default) to 10000, got %d", c.InboxPage)
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("STREAM_REPLICAS", "must be 1..5, got %d", c.StreamReplicas)
	}
	errs = append(errs, c.servicesErrors()...)
	errs = append(errs, c.presenceErrors()...)
	return errors.Join(errs...)
}

// wsURL derives the websocket URL from PublicURL.
func (c Config) wsURL() string {
	u, _ := url.Parse(c.PublicURL)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/ws"
	return u.String()
}
