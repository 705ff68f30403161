package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/allspark-rt/allspark/bus"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Several edges on one NATS: the deployed shape, where a message crosses
// NATS between edges. NATS requires credentials (bus/natsauth.go): the
// harness gives its private server a random service password and hands
// the edges a URL carrying it, as an operator would.

// natsCreds are the users of the harness's NATS servers.
type natsCreds struct{ bus.Credentials }

func newNATSCreds() (natsCreds, error) {
	svc, err := bus.NewPassword()
	if err != nil {
		return natsCreds{}, err
	}
	be, err := bus.NewPassword()
	if err != nil {
		return natsCreds{}, err
	}
	c := bus.Credentials{
		Service: bus.NATSUser{Name: "allspark", Password: svc, Role: bus.RoleService},
		Backend: bus.NATSUser{Name: "backend", Password: be, Role: bus.RoleBackend},
	}
	return natsCreds{c}, nil
}

// startNATSProc runs cmd/embedded-nats with JetStream and these credentials;
// it returns the service user's URL.
func startNATSProc(ctx context.Context, dir, bin, name string, creds natsCreds) (*server, string, error) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort())
	store, err := os.MkdirTemp(dir, name+"-store-")
	if err != nil {
		return nil, "", err
	}
	s, err := startProc(dir, name, []string{
		"ALLSPARK_NATS_PASSWORD=" + creds.Service.Password,
		"ALLSPARK_NATS_BACKEND_PASSWORD=" + creds.Backend.Password,
		"ALLSPARK_NATS_LOG_LEVEL=warn",
	}, bin, "-name", name, "-listen", addr, "-store", store)
	if err != nil {
		return nil, "", err
	}
	if err := waitTCP(ctx, addr); err != nil {
		s.stop()
		return nil, "", err
	}
	return s, creds.Service.URL("nats://" + addr), nil
}

// startNATSInProcess runs nats-server inside the harness, where its
// counters (subscriptions, messages, JetStream API calls) can be read
// directly; the reconnect storm reports them per reconnect.
func startNATSInProcess(dir string, creds natsCreds) (*natsserver.Server, string, error) {
	store, err := os.MkdirTemp(dir, "nats-inproc-")
	if err != nil {
		return nil, "", err
	}
	ns, err := bus.StartServer(bus.ServerConfig{Name: "bench", Listen: "127.0.0.1:0", StoreDir: store, Users: creds.Users()}, nil)
	if err != nil {
		return nil, "", err
	}
	return ns, creds.Service.URL(ns.ClientURL()), nil
}

// startEdge runs one edge process on the NATS at natsURL.
func startEdge(ctx context.Context, dir, bin, id, natsURL string, env ...string) (*server, string, error) {
	port := freePort()
	data, err := os.MkdirTemp(dir, id+"-data-")
	if err != nil {
		return nil, "", err
	}
	pprofAddr := "127.0.0.1:" + strconv.Itoa(freePort())
	s, err := startProc(dir, id, append([]string{
		"ALLSPARK_NATS_URL=" + natsURL,
		"ALLSPARK_EDGE_ID=" + id,
		// Its own ops port, not the fixed default (127.0.0.1:9090): two edges,
		// or two runs on one machine, would fight over it and the loser exit.
		"ALLSPARK_OPS_LISTEN=" + pprofAddr, "ALLSPARK_PPROF=true",
		// As the single edge (servers.go): the per-connection rate limit is an
		// abuse guard, and these clients send as fast as their window allows.
		"ALLSPARK_RATE_LIMIT=0",
		"ALLSPARK_LISTEN=127.0.0.1:" + strconv.Itoa(port),
		"ALLSPARK_DATA_DIR=" + data,
		"ALLSPARK_AUTH_SECRET=" + benchSecret, "ALLSPARK_LOG_LEVEL=warn",
		"ALLSPARK_INBOX_MAX_PER_NODE=1000000", "ALLSPARK_SEND_QUEUE_BYTES=8388608",
	}, env...), bin)
	if err != nil {
		return nil, "", err
	}
	s.pprof = pprofAddr
	base := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP(ctx, "http://"+base+"/readyz"); err != nil {
		s.stop()
		return nil, "", fmt.Errorf("edge %s: %w (log: %s)", id, err, tail(readLog(dir, id), 600))
	}
	return s, base, nil
}

// twoEdges runs an embedded-nats process and two edges on it: one system
// whose RSS and CPU are the three processes' sums.
func (h *harness) twoEdges(ctx context.Context, env ...string) (grp *server, bases [2]string, err error) {
	creds, err := newNATSCreds()
	if err != nil {
		return nil, bases, err
	}
	ns, url, err := startNATSProc(ctx, h.dir, filepath.Join(h.dir, "embedded-nats"), "nats-shared", creds)
	if err != nil {
		return nil, bases, err
	}
	parts := []*server{ns}
	for i := range 2 {
		e, base, err := startEdge(ctx, h.dir, filepath.Join(h.dir, "edge"), "edge-"+strconv.Itoa(i+1), url, env...)
		if err != nil {
			group("", parts...).stop()
			return nil, bases, err
		}
		parts, bases[i] = append(parts, e), base
	}
	return group("AllSpark, 2 edges", parts...), bases, nil
}

func readLog(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
	return string(b)
}

// kill ends the process at once (SIGKILL), as a crash would: no drain.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}
