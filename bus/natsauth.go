package bus

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/allspark-rt/allspark/internal/secretfile"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// Role is what a NATS user may do on an AllSpark cluster.
type Role string

const (
	// RoleService is edges and push workers: they read every node's
	// messages and run JetStream, so they may do anything.
	RoleService Role = "service"
	// RoleBackend is application backends: they may send messages
	// (allspark.send), query presence (allspark.presence.nodes) and read
	// lifecycle events (allspark.events.>). They may also be service-node
	// replicas: receive what is sent to service ids (allspark.svc.*, in a
	// queue group), answer each such request once (allow_responses), and
	// ask the edges for a service's backlog (allspark.svcready.*). They
	// cannot read devices' messages, the inbox, the session store or the
	// JetStream API: the edges read a service's backlog for it.
	RoleBackend Role = "backend"
)

// EdgeInboxPrefix is the reply-subject prefix of AllSpark's own processes.
// Backends may subscribe to the default _INBOX.> for their replies; a
// different prefix keeps the replies edges receive (delivery verdicts,
// JetStream API answers holding session data) out of their reach.
const EdgeInboxPrefix = "_ALLSPARK_INBOX"

// NATSUser is one user of an embedded NATS server.
type NATSUser struct {
	Name     string `json:"user"`
	Password string `json:"password"`
	Role     Role   `json:"-"`
}

// BackendPermissions is what RoleBackend may do under subject prefix p:
//
//	publish:   p.send, p.presence.nodes          requests (answers on _INBOX.>)
//	           p.svcready.*                      "drain my service's backlog"
//	subscribe: _INBOX.>                          its own replies
//	           p.events.>                        lifecycle events
//	           p.svc.*                           messages to service ids (svc:...)
//	respond:   once to each message it received (the ack of a service message)
//
// Service ids have a subject space of their own (p.svc.<b64(id)>) because a
// base64 token cannot be matched by prefix: a wildcard on p.node.* would
// hand a backend every device's messages.
func BackendPermissions(p string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{p + ".send", p + ".presence.nodes", p + ".svcready.*"}},
		// Node and session events only: message.stored and the push work
		// queue (events.undelivered) carry the message itself, which a
		// backend must not read; webhooks deliver message.stored to the
		// application's own endpoint instead.
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", p + ".events.node.*", p + ".events.session.*", p + ".svc.*"}},
		Response:  &server.ResponsePermission{MaxMsgs: 1},
	}
}

// serverUsers turns users into nats-server users; prefix is the subject
// prefix whose permissions a backend gets.
func serverUsers(users []NATSUser, prefix string) ([]*server.User, error) {
	out := make([]*server.User, 0, len(users))
	for _, u := range users {
		if u.Name == "" || u.Password == "" {
			return nil, fmt.Errorf("nats user %q: name and password are required", u.Name)
		}
		// The server keeps only a bcrypt hash, like a password file would:
		// nothing in its memory or its config dumps is a usable password.
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
		if err != nil {
			return nil, fmt.Errorf("nats user %q: hash password: %w", u.Name, err)
		}
		su := &server.User{Username: u.Name, Password: string(hash)}
		switch u.Role {
		case RoleService:
		case RoleBackend:
			su.Permissions = BackendPermissions(prefix)
		default:
			return nil, fmt.Errorf("nats user %q: unknown role %q", u.Name, u.Role)
		}
		out = append(out, su)
	}
	return out, nil
}

// NewPassword returns a random password for a generated NATS user.
func NewPassword() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate nats password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Credentials are the two users of an embedded NATS server.
type Credentials struct {
	Service NATSUser `json:"service"`
	Backend NATSUser `json:"backend"`
}

// Users lists c for ServerConfig.Users.
func (c Credentials) Users() []NATSUser { return []NATSUser{c.Service, c.Backend} }

// LoadCredentials returns the credentials kept in path (JSON), generating
// random ones there on first use, then overrides any name or password set
// in override. Processes sharing a data dir agree, even when they start
// at the same moment.
func LoadCredentials(path string, override Credentials) (c Credentials, created bool, err error) {
	b, created, err := secretfile.LoadOrCreate(path, func() ([]byte, error) {
		svc, err := NewPassword()
		if err != nil {
			return nil, err
		}
		be, err := NewPassword()
		if err != nil {
			return nil, err
		}
		return json.MarshalIndent(Credentials{
			Service: NATSUser{Name: "allspark", Password: svc},
			Backend: NATSUser{Name: "backend", Password: be},
		}, "", "  ")
	})
	if err != nil {
		return c, false, fmt.Errorf("nats credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, false, fmt.Errorf("nats credentials in %s: %w", path, err)
	}
	for _, p := range []struct{ dst, src *NATSUser }{{&c.Service, &override.Service}, {&c.Backend, &override.Backend}} {
		if p.src.Name != "" {
			p.dst.Name = p.src.Name
		}
		if p.src.Password != "" {
			p.dst.Password = p.src.Password
		}
	}
	c.Service.Role, c.Backend.Role = RoleService, RoleBackend
	if c.Service.Name == c.Backend.Name {
		return c, false, fmt.Errorf("nats credentials: the service and backend users are both named %q", c.Service.Name)
	}
	return c, created, nil
}

// URL is clientURL (nats://host:port) with u's name and password in it.
func (u NATSUser) URL(clientURL string) string {
	p, err := url.Parse(clientURL)
	if err != nil {
		return clientURL
	}
	p.User = url.UserPassword(u.Name, u.Password)
	return p.String()
}
