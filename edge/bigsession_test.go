package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/allspark-rt/allspark/internal/fdlimit"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/lxzan/gws"
)

// A session of 20,000 members, spread over two edges, receives one message
// on every member (issue 12, acceptance 4; the benchmark's "big" scenario
// measures 100,000).
//
// 20,000 websockets are 40,000 sockets, more than one process may hold
// where RLIMIT_NOFILE's hard limit is 20,000 and cannot be raised (as on
// the project's CI machine). So the test runs as five processes: this one
// (NATS, the joins, the sender), two edges and two client processes, each
// holding at most 10,000 connections. The children are this test binary
// again, running TestBigSessionChild in the role named by
// ALLSPARK_BIG_CHILD.
//
// It is opt-in, ALLSPARK_BIG_TESTS=1, because today it is slow: every
// member that comes online announces its presence to every member already
// online (n²/2 = 2·10⁸ presence frames for 20,000 members), and every join
// rewrites the session's one KV value, which grows with the session.
// ALLSPARK_BIG_TEST_MEMBERS sets another size (at least 3).
func TestBigSessionEveryMemberReceives(t *testing.T) {
	if os.Getenv("ALLSPARK_BIG_TESTS") != "1" {
		t.Skip("opt-in: ALLSPARK_BIG_TESTS=1 (a 20,000-member session over five processes; see the comment)")
	}
	if raceEnabled {
		t.Skip("the race detector allows 8,128 live goroutines; 10,000 connections per process need more")
	}
	members := 20_000
	if v := os.Getenv("ALLSPARK_BIG_TEST_MEMBERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 {
			t.Fatalf("ALLSPARK_BIG_TEST_MEMBERS=%q: want a number ≥ 3", v)
		}
		members = n
	}
	ns := testutil.RunNATS(t)
	keys, err := auth.NewKeys(testSecret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	mc := strconv.Itoa(members)
	edgeA := startChild(t, "edge", "ALLSPARK_BIG_NATS="+ns.ClientURL(), "ALLSPARK_BIG_EDGE=big-a", "ALLSPARK_BIG_MEMBERS="+mc)
	edgeB := startChild(t, "edge", "ALLSPARK_BIG_NATS="+ns.ClientURL(), "ALLSPARK_BIG_EDGE=big-b", "ALLSPARK_BIG_MEMBERS="+mc)
	addrs := []string{edgeA.waitLine(t, "LISTEN", 30*time.Second), edgeB.waitLine(t, "LISTEN", 30*time.Second)}

	// Everyone joins before connecting (member i on edge i%2), so the
	// joins do not wait for presence.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	call := func(addr, path, node string, body string) error {
		req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(body))
		k, err := keys.MintAuthKey(auth.Identity{NodeID: node, ClientID: node}, time.Hour)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("POST %s as %s: %d %s", path, node, resp.StatusCode, b)
		}
		return nil
	}
	if err := call(addrs[0], "/v1/sessions", bigMember(0), `{"session_id":"big"}`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var joinErr error
	var once sync.Once
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := call(addrs[i%2], "/v1/sessions/big/join", bigMember(i), ""); err != nil {
					once.Do(func() { joinErr = err })
				}
			}
		}()
	}
	for i := 1; i < members; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if joinErr != nil {
		t.Fatal(joinErr)
	}
	t.Logf("%d members joined in %s", members, time.Since(start).Round(time.Millisecond))

	// Two client processes hold members 1..n-1; this one holds the sender.
	start = time.Now()
	half := members / 2
	var clients []*child
	for _, r := range [][2]int{{1, half}, {half, members}} {
		clients = append(clients, startChild(t, "clients", "ALLSPARK_BIG_URLS="+strings.Join(addrs, ","),
			fmt.Sprintf("ALLSPARK_BIG_FROM=%d", r[0]), fmt.Sprintf("ALLSPARK_BIG_TO=%d", r[1])))
	}
	total := func(field string) int64 {
		var n int64
		for _, c := range clients {
			n += c.stat(field)
		}
		return n
	}
	testutil.Eventually(t, 30*time.Minute, func() error {
		if n := total("synced"); n != int64(members-1) {
			return fmt.Errorf("%d of %d members online and synced (%d presence frames so far)", n, members-1, total("presence"))
		}
		return nil
	})
	t.Logf("%d members online in %s, after %d presence frames", members-1, time.Since(start).Round(time.Millisecond), total("presence"))

	sender := wstest.Dial(t, "ws://"+addrs[0]+"/v1/ws?auth_key="+url.QueryEscape(mustKey(t, keys, bigMember(0))))
	for f := sender.Next(t, time.Minute); f.Type != "sync_done"; f = sender.Next(t, time.Minute) {
	}
	start = time.Now()
	sender.SendRaw(t, `{"dest_session_id":"big","payload":{"big":"`+bigMarker+`"}}`)
	testutil.Eventually(t, 10*time.Minute, func() error {
		if n := total("got"); n != int64(members-1) {
			return fmt.Errorf("%d of %d members received the message", n, members-1)
		}
		return nil
	})
	t.Logf("%d members received the message in %s", members-1, time.Since(start).Round(time.Millisecond))
	if d := total("dup"); d != 0 {
		t.Fatalf("%d members received the message more than once", d)
	}
}

// bigMarker is in the one message the test sends; presence frames and
// anything else a member receives does not count.
const bigMarker = "every-member-gets-this"

func bigMember(i int) string { return fmt.Sprintf("big%06d", i) }

func mustKey(t testing.TB, keys *auth.Keys, node string) string {
	t.Helper()
	k, err := keys.MintAuthKey(auth.Identity{NodeID: node, ClientID: node}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// child is a helper process: this test binary in another role. It prints
// "LISTEN addr" and "STAT field=n ..." lines; closing its stdin stops it.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string         // guarded by mu
	stats map[string]int64 // guarded by mu
	done  chan struct{}
}

func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBigSessionChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), append(env, "ALLSPARK_BIG_CHILD="+role)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, stats: map[string]int64{}, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			if rest, ok := strings.CutPrefix(sc.Text(), "STAT "); ok {
				for _, kv := range strings.Fields(rest) {
					k, v, _ := strings.Cut(kv, "=")
					c.stats[k], _ = strconv.ParseInt(v, 10, 64)
				}
			} else {
				c.lines = append(c.lines, sc.Text())
			}
			c.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// waitLine returns the rest of the child's first line starting with prefix.
func (c *child) waitLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	var out string
	testutil.Eventually(t, timeout, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, l := range c.lines {
			if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
				out = rest
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("child exited before printing %s", prefix)
		default:
		}
		return fmt.Errorf("child has not printed %s yet", prefix)
	})
	return out
}

func (c *child) stat(field string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats[field]
}

// TestBigSessionChild is a helper process of TestBigSessionEveryMemberReceives,
// not a test of its own: without ALLSPARK_BIG_CHILD it skips.
func TestBigSessionChild(t *testing.T) {
	role := os.Getenv("ALLSPARK_BIG_CHILD")
	if role == "" {
		t.Skip("helper process of TestBigSessionEveryMemberReceives")
	}
	_, _ = fdlimit.Raise(1 << 20) // as many as allowed: the parent sized the work to the limit
	switch role {
	case "edge":
		runEdgeChild(t)
	case "clients":
		runClientsChild(t)
	default:
		t.Fatalf("ALLSPARK_BIG_CHILD=%q", role)
	}
	// The parent ends a child by closing its stdin; the child's
	// connections are torn down with the process, not one by one.
	os.Exit(0)
}

func runEdgeChild(t *testing.T) {
	keys, err := auth.NewKeys(testSecret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	members, _ := strconv.Atoi(os.Getenv("ALLSPARK_BIG_MEMBERS"))
	c := &cluster{t: t, url: os.Getenv("ALLSPARK_BIG_NATS"), keys: keys}
	e := c.edge(os.Getenv("ALLSPARK_BIG_EDGE"), func(cfg *edge.Config) {
		cfg.SessionMaxMembers = members
		cfg.SendQueueBytes = 8 << 20
	})
	fmt.Printf("LISTEN %s\n", e.http.Listener.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
}

// bigCounter counts what one member receives: sync_done, presence, and
// the test's message.
type bigCounter struct {
	synced, got, dup, presence *atomic.Int64
	seen                       atomic.Int32
}

func (*bigCounter) OnOpen(*gws.Conn)             {}
func (*bigCounter) OnClose(*gws.Conn, error)     {}
func (*bigCounter) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }
func (*bigCounter) OnPong(*gws.Conn, []byte)     {}
func (c *bigCounter) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	b := m.Bytes()
	switch {
	case bytes.Contains(b, []byte(bigMarker)):
		if c.seen.Add(1) == 1 {
			c.got.Add(1)
		} else {
			c.dup.Add(1)
		}
	case bytes.HasPrefix(b, []byte(`{"type":"sync_done"`)):
		c.synced.Add(1)
	case bytes.HasPrefix(b, []byte(`{"type":"presence"`)):
		c.presence.Add(1)
	}
}

func runClientsChild(t *testing.T) {
	keys, err := auth.NewKeys(testSecret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	urls := strings.Split(os.Getenv("ALLSPARK_BIG_URLS"), ",")
	from, _ := strconv.Atoi(os.Getenv("ALLSPARK_BIG_FROM"))
	to, _ := strconv.Atoi(os.Getenv("ALLSPARK_BIG_TO"))
	var synced, got, dup, presence atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	go func() {
		for ctx.Err() == nil {
			fmt.Printf("STAT synced=%d got=%d dup=%d presence=%d\n", synced.Load(), got.Load(), dup.Load(), presence.Load())
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	work := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				node := bigMember(i)
				u := "ws://" + urls[i%2] + "/v1/ws?auth_key=" + url.QueryEscape(mustKey(t, keys, node))
				h := &bigCounter{synced: &synced, got: &got, dup: &dup, presence: &presence}
				conn, _, err := gws.NewClient(h, &gws.ClientOption{Addr: u, ReadBufferSize: 1024, HandshakeTimeout: time.Minute})
				if err != nil {
					fmt.Fprintf(os.Stderr, "dial %s: %v\n", node, err)
					os.Exit(1)
				}
				go conn.ReadLoop()
			}
		}()
	}
	for i := from; i < to && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	<-ctx.Done()
}
