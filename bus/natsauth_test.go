package bus_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
)

// violations collects the permission errors the server reports to a client.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

func (v *violations) waitFor(t *testing.T, what string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, e := range v.errs {
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, what) {
				return nil
			}
		}
		return errors.New("no permissions violation for " + what + " yet; have " + strings.Join(v.errs, "; "))
	})
}

// Issue 13, acceptance 7: without credentials nobody connects; a backend
// with the backend role can send and read its replies and events, and
// cannot read nodes' messages, the edges' replies or the JetStream API.
func TestEmbeddedNATSRequiresCredentials(t *testing.T) {
	ns, err := bus.StartServer(bus.ServerConfig{Name: "auth-test", Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
		Users: []bus.NATSUser{{Name: "edge", Password: "edge-pw", Role: bus.RoleService}, {Name: "backend", Password: "backend-pw", Role: bus.RoleBackend}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	url := ns.ClientURL()

	for name, opts := range map[string][]nats.Option{
		"no credentials": nil,
		"wrong password": {nats.UserInfo("backend", "guess")},
		"unknown user":   {nats.UserInfo("root", "edge-pw")},
	} {
		if nc, err := nats.Connect(url, opts...); err == nil {
			nc.Close()
			t.Fatalf("%s: connected", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("%s: %v, want an authorization error", name, err)
		}
	}

	svc, err := nats.Connect(url, nats.UserInfo("edge", "edge-pw"), nats.CustomInboxPrefix(bus.EdgeInboxPrefix), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	// The service role may do anything, JetStream included.
	if _, err := svc.Request("$JS.API.INFO", nil, 5*time.Second); err != nil {
		t.Fatalf("service user: JetStream API: %v", err)
	}
	if _, err := svc.Subscribe("allspark.send", func(m *nats.Msg) { _ = m.Respond([]byte(`{"status":"delivered"}`)) }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}

	var v violations
	be, err := nats.Connect(url, nats.UserInfo("backend", "backend-pw"), nats.ErrorHandler(v.handler), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if reply, err := be.Request("allspark.send", []byte(`{"src_id":"billing","dest_id":"bob","payload":"hi"}`), 5*time.Second); err != nil {
		t.Fatalf("backend cannot send: %v", err)
	} else if !strings.Contains(string(reply.Data), "delivered") {
		t.Fatalf("backend send answered %q", reply.Data)
	}

	// What a backend must not read: nodes' messages, the edges' private
	// replies, session and inbox data through the JetStream API.
	got := make(chan string, 16)
	for _, subj := range []string{"allspark.node.>", bus.EdgeInboxPrefix + ".>", "$JS.API.>", "allspark.live.>",
		"allspark.events.undelivered", "allspark.events.message.stored", "allspark.events.>"} {
		if _, err := be.Subscribe(subj, func(m *nats.Msg) { got <- m.Subject }); err != nil {
			t.Fatal(err)
		}
		v.waitFor(t, `Subscription to "`+subj+`"`)
	}
	// Nor send as an edge, bypassing the router.
	if err := be.Publish("allspark.node.Ym9i", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	v.waitFor(t, `Publish to "allspark.node.Ym9i"`)

	// A barrier: events are allowed; the server delivers one publisher's
	// messages in order, so whatever leaked would arrive before it.
	events := make(chan struct{}, 1)
	if _, err := be.Subscribe("allspark.events.node.*", func(*nats.Msg) { events <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := be.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"allspark.node.Ym9i", bus.EdgeInboxPrefix + ".x.1", "allspark.live.cm9vbQ", "allspark.events.undelivered", "allspark.events.node.online"} {
		if err := svc.Publish(subj, []byte("private")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-events:
	case <-time.After(10 * time.Second):
		t.Fatal("backend did not receive an event")
	}
	select {
	case subj := <-got:
		t.Fatalf("backend read %s", subj)
	default:
	}
}

// Issue 14: a backend may be a service replica: receive what is sent to
// service ids (allspark.svc.*), answer each once even on the edges'
// private reply prefix, and ask for its backlog (allspark.svcready.*); it
// still cannot forge messages to a service, answer what it did not
// receive, or read devices' subjects.
func TestBackendMayServeServiceIDs(t *testing.T) {
	ns, err := bus.StartServer(bus.ServerConfig{Name: "svc-auth-test", Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
		Users: []bus.NATSUser{{Name: "edge", Password: "edge-pw", Role: bus.RoleService}, {Name: "backend", Password: "backend-pw", Role: bus.RoleBackend}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	url := ns.ClientURL()
	svc, err := nats.Connect(url, nats.UserInfo("edge", "edge-pw"), nats.CustomInboxPrefix(bus.EdgeInboxPrefix), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	var v violations
	be, err := nats.Connect(url, nats.UserInfo("backend", "backend-pw"), nats.ErrorHandler(v.handler), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	subj, _ := bus.NewSubjects("allspark")
	id := "svc:matchmaker"
	if subj.Node(id) != subj.Service(id) || subj.Node("alice") == subj.Service("alice") {
		t.Fatalf("service ids must route to the service subject space: %s", subj.Node(id))
	}

	// Receive and answer, as a replica.
	if _, err := be.QueueSubscribe(subj.Service(id), bus.ServiceQueue, func(m *nats.Msg) { _ = m.Respond([]byte("+")) }); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{}, 1)
	if _, err := svc.Subscribe(subj.ServiceReadyAll(), func(*nats.Msg) { ready <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(be.Flush(), svc.Flush()); err != nil {
		t.Fatal(err)
	}
	reply, err := svc.Request(subj.Node(id), []byte(`{"msg_id":"m1"}`), 5*time.Second)
	if err != nil || string(reply.Data) != "+" {
		t.Fatalf("replica answer: %v %v", reply, err)
	}
	if err := be.Publish(subj.ServiceReady(id), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("backlog request did not reach the edges")
	}

	// Not allowed: forging a service message, answering on an edge's reply
	// subject it never received, reading a device's subject.
	for _, s := range []string{subj.Service(id), bus.EdgeInboxPrefix + ".forged.1", subj.Node("alice")} {
		if err := be.Publish(s, []byte("+")); err != nil {
			t.Fatal(err)
		}
		v.waitFor(t, `Publish to "`+s+`"`)
	}
	if _, err := be.Subscribe(subj.ServiceReadyAll(), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	v.waitFor(t, `Subscription to "`+subj.ServiceReadyAll()+`"`)
}
