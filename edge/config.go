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

	// Issue 14, backends as nodes (edge/services.go; 0 means the default).
	// ServiceDrainWindow is how many stored messages for a service id are
	// in flight to its replicas at once while its backlog drains.
	ServiceDrainWindow int `env:"SERVICE_DRAIN_WINDOW" envDefault:"64"`
	// Events publishes lifecycle events on allspark.events.> and keeps them
	// in a stream for EventsTTL (and at most EventsMaxBytes, 0: no limit).
	Events         bool          `env:"EVENTS" envDefault:"true"`
	EventsTTL      time.Duration `env:"EVENTS_TTL" envDefault:"24h"`
	EventsMaxBytes int64         `env:"EVENTS_MAX_BYTES" envDefault:"1073741824"`
	// PresenceMaxNodes caps the node ids of one presence query.
	PresenceMaxNodes int `env:"PRESENCE_MAX_NODES" envDefault:"1000"`
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
		"HISTORY_TTL": c.HistoryTTL} {
		if d <= 0 {
			bad(name, "must be a positive duration, got %s", d)
		}
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
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("STREAM_REPLICAS", "must be 1..5, got %d", c.StreamReplicas)
	}
	errs = append(errs, c.servicesErrors()...)
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
