package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/allspark-rt/allspark/internal/fdlimit"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/lxzan/gws"
)

// A session of 20,000 members, spread over two edges, receives one message
// on every member (issue 12; the benchmark's "big" scenario measures
// 100,000). It runs in the default suite, also under -race:
//
//   - NATS and the two edges are real binaries (cmd/embedded-nats,
//     cmd/edge) built without -race into t.TempDir(): an edge holding
//     10,000 connections runs 20,000 goroutines, past the race detector's
//     8,128, and a race-built NATS would make the 20,000 joins crawl.
//   - The members are held by child processes (this test binary again,
//     TestBigSessionChild) of bigClientsPerChildRace connections under
//     -race, 10,000 without: one goroutine per
//     connection keeps each under the race detector's limit, and no
//     process holds more sockets than RLIMIT_NOFILE's hard limit (20,000
//     on the project's CI machine) allows.
//   - Every member joins named, through the per-member store (HTTP joins,
//     64 at a time). The session is past ALLSPARK_PRESENCE_MAX_MEMBERS, so
//     members coming online get presence summaries and not one presence
//     frame per member (which would be n²/2 = 2·10⁸ frames): the test
//     checks that no per-member frame arrives. ALLSPARK_BIG_TEST_ANONYMOUS=1
//     joins them anonymously instead (no presence at all); fan-out is the
//     same for both kinds.
//
// -short skips it; ALLSPARK_BIG_TEST_MEMBERS sets another size (≥ 3).
func TestBigSessionEveryMemberReceives(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a 20,000-member session over several processes")
	}
	members := 20_000
	if v := os.Getenv("ALLSPARK_BIG_TEST_MEMBERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 {
			t.Fatalf("ALLSPARK_BIG_TEST_MEMBERS=%q: want a number ≥ 3", v)
		}
		members = n
	}
	named := os.Getenv("ALLSPARK_BIG_TEST_ANONYMOUS") != "1"
	_, _ = fdlimit.Raise(1 << 20) // the children inherit it
	keys, err := auth.NewKeys(testSecret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bins := buildBigBinaries(t)
	natsURL := startBigNATS(t, bins)
	addrs := []string{startBigEdge(t, bins, "big-a", natsURL, members), startBigEdge(t, bins, "big-b", natsURL, members)}
	t.Logf("built and started NATS and 2 edges in %s", time.Since(start).Round(time.Millisecond))

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
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
	if err := call(addrs[0], "/v1/sessions", bigMember(0), `{"session_id":"big","allow_anonymous":true}`); err != nil {
		t.Fatal(err)
	}
	joinPath := "/v1/sessions/big/join?anonymous=true"
	if named {
		joinPath = "/v1/sessions/big/join"
	}
	start = time.Now()
	var joinErr error
	var once sync.Once
	var wg sync.WaitGroup
	work := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := call(addrs[i%2], joinPath, bigMember(i), ""); err != nil {
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
	el := time.Since(start)
	t.Logf("%d members joined in %s (%.0f joins/s)", members-1, el.Round(time.Millisecond), float64(members-1)/el.Seconds())
	hc.CloseIdleConnections()

	// Child processes hold members 1..n-1; this one holds the sender.
	start = time.Now()
	var clients []*child
	perChild := 10_000
	if raceEnabled {
		perChild = bigClientsPerChildRace
	}
	for from := 1; from < members; from += perChild {
		to := min(from+perChild, members)
		clients = append(clients, startChild(t, "clients", "ALLSPARK_BIG_URLS="+strings.Join(addrs, ","),
			fmt.Sprintf("ALLSPARK_BIG_FROM=%d", from), fmt.Sprintf("ALLSPARK_BIG_TO=%d", to)))
	}
	total := func(field string) int64 {
		var n int64
		for _, c := range clients {
			n += c.stat(field)
		}
		return n
	}
	testutil.Eventually(t, 10*time.Minute, func() error {
		for _, c := range clients {
			select {
			case <-c.done:
				t.Fatalf("a client process exited (%d of %d members synced)", total("synced"), members-1)
			default:
			}
		}
		if n := total("synced"); n != int64(members-1) {
			return fmt.Errorf("%d of %d members online and synced (%d presence frames so far)", n, members-1, total("presence"))
		}
		return nil
	})
	t.Logf("%d members online in %s over %d client processes, after %d per-member presence frames", members-1, time.Since(start).Round(time.Millisecond), len(clients), total("presence"))
	if n := total("presence"); n != 0 && members > 100 {
		t.Fatalf("%d per-member presence frames in a session of %d members: want summaries only", n, members)
	}

	sender := wstest.Dial(t, "ws://"+addrs[0]+"/v1/ws?auth_key="+url.QueryEscape(mustKey(t, keys, bigMember(0))))
	defer sender.Close()
	for f := sender.Next(t, time.Minute); f.Type != "sync_done"; f = sender.Next(t, time.Minute) {
	}
	start = time.Now()
	sender.SendRaw(t, `{"dest_session_id":"big","payload":{"big":"`+bigMarker+`"}}`)
	testutil.Eventually(t, 5*time.Minute, func() error {
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

// bigClientsPerChildRace bounds one client process under -race: a
// connection costs it a goroutine, and a process may have 8,128. Without
// -race, a process holds 10,000 (20,000 sockets' worth of descriptors
// stay with the edges).
const bigClientsPerChildRace = 4_000

// buildBigBinaries builds cmd/edge and cmd/embedded-nats without -race.
func buildBigBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/edge", "./cmd/embedded-nats")
	cmd.Dir = ".." // the module root: this package is edge/
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// bigProc runs bin with env, its output in a log file shown if the test
// fails, and kills it at the end (a crash, not a drain: nothing of it is
// being tested then).
func bigProc(t *testing.T, name, bin string, env []string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log (last 2000 bytes):\n%s", name, b[max(0, len(b)-2000):])
		}
		logf.Close()
	})
}

func startBigNATS(t *testing.T, bins string) string {
	t.Helper()
	addr := freeAddr(t)
	bigProc(t, "nats", filepath.Join(bins, "embedded-nats"),
		[]string{"ALLSPARK_NATS_PASSWORD=big-test-password", "ALLSPARK_NATS_BACKEND_PASSWORD=big-test-backend", "ALLSPARK_NATS_LOG_LEVEL=warn"},
		"-name", "big", "-listen", addr, "-store", t.TempDir())
	testutil.Eventually(t, time.Minute, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("NATS at %s: %w", addr, err)
		}
		return c.Close()
	})
	return "nats://allspark:big-test-password@" + addr
}

func startBigEdge(t *testing.T, bins, id, natsURL string, members int) string {
	t.Helper()
	addr := freeAddr(t)
	bigProc(t, id, filepath.Join(bins, "edge"), []string{
		"ALLSPARK_NATS_URL=" + natsURL, "ALLSPARK_EDGE_ID=" + id, "ALLSPARK_LISTEN=" + addr,
		"ALLSPARK_DATA_DIR=" + t.TempDir(), "ALLSPARK_AUTH_SECRET=" + testSecret, "ALLSPARK_LOG_LEVEL=warn",
		"ALLSPARK_OPS_LISTEN=off", "ALLSPARK_SEND_QUEUE_BYTES=8388608",
		fmt.Sprintf("ALLSPARK_SESSION_MAX_MEMBERS=%d", max(members, 1)),
	})
	testutil.Eventually(t, 2*time.Minute, func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return fmt.Errorf("edge %s: %w", id, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("edge %s: /readyz %d", id, resp.StatusCode)
		}
		return nil
	})
	return addr
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
	case "clients":
		runClientsChild(t)
	default:
		t.Fatalf("ALLSPARK_BIG_CHILD=%q", role)
	}
	// The parent ends a child by closing its stdin; the child's
	// connections are torn down with the process, not one by one.
	os.Exit(0)
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
	case bytes.HasPrefix(b, []byte(`{"type":"presence","`)): // per member, not presence_summary
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
