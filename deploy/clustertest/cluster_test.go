// Package clustertest runs AllSpark as operators do, with real processes:
// three embedded-nats servers in a JetStream cluster, three edges with R3
// streams, and HAProxy in TCP mode in front. Clients connect only through
// the load balancer. Then it SIGTERMs an edge and SIGKILLs a NATS server
// mid-stream, and counts.
package clustertest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/internal/loadtest"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

const secret = "cluster-test-secret-0123456789"

// The cluster's NATS credentials, as an operator sets them on every server.
var natsCredentials = []string{"ALLSPARK_NATS_PASSWORD=svc-pw-0123456789", "ALLSPARK_NATS_BACKEND_PASSWORD=be-pw-0123456789"}

const natsUser = "allspark:svc-pw-0123456789"

// authKeys mints auth_keys (node = client) with the cluster's secret.
func authKeys(t *testing.T) func(node string) string {
	t.Helper()
	keys, err := auth.NewKeys(secret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return func(node string) string {
		k, err := keys.MintAuthKey(auth.Identity{NodeID: node, ClientID: node}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
}

// build compiles the commands once into dir.
func build(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/edge", "./cmd/embedded-nats")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
}

// proc is a child process whose output goes to a log file shown on failure.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log (tail) ---\n%s", name, tail(string(b), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// connections reads an edge's allspark_connections gauge from its ops
// listener.
func connections(opsAddr string) int {
	resp, err := http.Get("http://" + opsAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "allspark_connections "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

// loadBalancer puts an L4 balancer on lb in front of edges: HAProxy when
// installed, else a small Go TCP proxy with the same readiness checks.
func loadBalancer(t *testing.T, dir string, lb string, edges []string) {
	t.Helper()
	if path, err := exec.LookPath("haproxy"); err == nil {
		cfg := fmt.Sprintf(`global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
frontend websockets
  bind %s
  default_backend edges
backend edges
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 200ms fall 1 rise 2
`, lb)
		for i, e := range edges {
			cfg += fmt.Sprintf("  server edge%d %s check\n", i, e)
		}
		file := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		start(t, dir, "haproxy", nil, path, "-f", file, "-db")
		t.Logf("load balancer: HAProxy (%s) on %s", path, lb)
		return
	}
	t.Logf("load balancer: HAProxy not installed; using the Go TCP proxy on %s", lb)
	ln, err := net.Listen("tcp", lb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var next atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for range edges {
					e := edges[int(next.Add(1))%len(edges)]
					if !ready(e) {
						continue
					}
					u, err := net.Dial("tcp", e)
					if err != nil {
						continue
					}
					defer u.Close()
					go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
					_, _ = io.Copy(c, u)
					return
				}
			}()
		}
	}()
}

// cluster is three embedded-nats processes in one JetStream cluster and
// three edge processes on it with R3 streams.
type cluster struct {
	dir       string
	natsURL   string
	natsProcs []*proc
	edgeAddrs []string
	opsAddrs  []string // each edge's ALLSPARK_OPS_LISTEN (/metrics)
	edgeProcs []*proc
	// ready is how long the three edges, started together on the fresh
	// cluster, took to all answer /readyz 200.
	ready time.Duration
}

// startCluster builds the commands and starts the processes; every edge's
// public URL is publicURL (the balancer's, when there is one).
func startCluster(t *testing.T, publicURL string, edgeEnv ...string) *cluster {
	t.Helper()
	c := &cluster{dir: t.TempDir()}
	build(t, c.dir)

	var natsAddrs, routes []string
	routePorts := []int{testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)}
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i := range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		natsAddrs = append(natsAddrs, addr)
		c.natsProcs = append(c.natsProcs, start(t, c.dir, fmt.Sprintf("nats%d", i), natsCredentials, filepath.Join(c.dir, "embedded-nats"), "-log-level", "debug",
			"-name", fmt.Sprintf("nats%d", i), "-listen", addr, "-store", filepath.Join(c.dir, fmt.Sprintf("store%d", i)),
			"-cluster-name", "allspark", "-cluster-listen", fmt.Sprintf("127.0.0.1:%d", routePorts[i]), "-routes", strings.Join(routes, ",")))
	}
	for _, a := range natsAddrs {
		waitTCP(t, a)
	}
	c.natsURL = "nats://" + natsUser + "@" + strings.Join(natsAddrs, ",nats://"+natsUser+"@")

	began := time.Now()
	for i := range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		public := publicURL
		if public == "" {
			public = "http://" + addr
		}
		ops := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		c.edgeAddrs, c.opsAddrs = append(c.edgeAddrs, addr), append(c.opsAddrs, ops)
		env := append([]string{
			"ALLSPARK_EDGE_ID=edge" + strconv.Itoa(i), "ALLSPARK_LISTEN=" + addr, "ALLSPARK_OPS_LISTEN=" + ops, "ALLSPARK_PUBLIC_URL=" + public,
			"ALLSPARK_NATS_URL=" + c.natsURL, "ALLSPARK_AUTH_SECRET=" + secret, "ALLSPARK_STREAM_REPLICAS=3",
			"ALLSPARK_HEARTBEAT=500ms", "ALLSPARK_DRAIN_TIMEOUT=10s", "ALLSPARK_LOG_LEVEL=warn",
		}, edgeEnv...) // later entries win
		c.edgeProcs = append(c.edgeProcs, start(t, c.dir, fmt.Sprintf("edge%d", i), env, filepath.Join(c.dir, "edge")))
	}
	// The deadline is generous for a loaded CI machine; the time it took is
	// the figure that matters, and it is logged.
	testutil.Eventually(t, 90*time.Second, func() error {
		for _, a := range c.edgeAddrs {
			if !ready(a) {
				return fmt.Errorf("edge %s not ready", a)
			}
		}
		return nil
	})
	c.ready = time.Since(began)
	t.Logf("three edges started together on a fresh 3-server cluster: all ready in %s", c.ready.Round(10*time.Millisecond))
	return c
}

func TestClusterBehindL4(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs 7 processes; skipped with -short")
	}
	lb := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	c := startCluster(t, "http://"+lb)
	dir, edgeAddrs, opsAddrs, edgeProcs, natsProcs := c.dir, c.edgeAddrs, c.opsAddrs, c.edgeProcs, c.natsProcs
	loadBalancer(t, dir, lb, edgeAddrs)
	waitTCP(t, lb)

	authKey := authKeys(t)
	ws := "ws://" + lb + "/v1/ws"
	l := loadtest.New(t, authKey)
	l.RedialSender = func(i int) *wstest.Client {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, _, err := wstest.DialErr(ws + "?auth_key=" + authKey(fmt.Sprintf("sender%02d", i)))
			if err == nil {
				return c
			}
			if time.Now().After(deadline) {
				t.Errorf("sender %d: cannot reconnect through the balancer for 30s: %v", i, err)
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	lbURL := func(int) string { return ws }
	l.ConnectRecipients(loadtest.Scale(90), lbURL, lbURL, stop, &wg)
	var senders []*wstest.Client
	for i := range 9 {
		senders = append(senders, l.Dial(ws, fmt.Sprintf("sender%02d", i)))
	}
	// Routing across edges: the balancer spread the clients over all three.
	testutil.Eventually(t, 10*time.Second, func() error {
		for i, a := range edgeAddrs {
			if connections(opsAddrs[i]) <= 0 {
				return fmt.Errorf("edge %s holds no connections", a)
			}
		}
		return nil
	})

	perSender := loadtest.Scale(1000)
	total := int64(9 * perSender)
	faults := make(chan string, 2)
	go func() {
		if !l.WaitAnswered(total/4, 2*time.Minute) {
			faults <- "no fault injected: traffic stalled"
			faults <- "no fault injected: traffic stalled"
			return
		}
		busiest := 0
		for i, a := range opsAddrs {
			if connections(a) > connections(opsAddrs[busiest]) {
				busiest = i
			}
		}
		_ = edgeProcs[busiest].cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-edgeProcs[busiest].done:
			faults <- fmt.Sprintf("SIGTERM edge%d: drained and exited", busiest)
		case <-time.After(20 * time.Second):
			faults <- fmt.Sprintf("SIGTERM edge%d: still running after 20s", busiest)
		}
		if !l.WaitAnswered(total/2, 2*time.Minute) {
			faults <- "nats1 not killed: traffic stalled"
			return
		}
		_ = natsProcs[1].cmd.Process.Kill()
		faults <- "SIGKILL nats1"
	}()
	l.RunSenders(senders, perSender, 50)
	if t.Failed() {
		t.FailNow()
	}
	for range 2 {
		select {
		case f := <-faults:
			t.Log(f)
			if strings.Contains(f, "still running") {
				t.Fatal(f)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("faults were not all injected")
		}
	}
	l.Verify()
}
