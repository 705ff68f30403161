package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// server is one system under test, running as its own process so its RSS
// and CPU can be read from /proc.
type server struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	pprof string // AllSpark: its pprof address
	// parts, when set, makes this a group (several edges and their NATS):
	// RSS and CPU are their sums, and stop stops them all.
	parts []*server
}

// group is one system made of several processes.
func group(name string, parts ...*server) *server { return &server{name: name, parts: parts} }

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startProc(dir, name string, env []string, bin string, args ...string) (*server, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	return s, nil
}

func (s *server) stop() {
	if s.parts != nil {
		for i := len(s.parts) - 1; i >= 0; i-- { // edges before their NATS
			s.parts[i].stop()
		}
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// rssKB is the process's resident memory.
func (s *server) rssKB() int64 {
	if s.parts != nil {
		var sum int64
		for _, p := range s.parts {
			sum += p.rssKB()
		}
		return sum
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// cpuSeconds is the process's user+system CPU time so far.
func (s *server) cpuSeconds() float64 {
	if s.parts != nil {
		var sum float64
		for _, p := range s.parts {
			sum += p.cpuSeconds()
		}
		return sum
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; 100 Hz on Linux
}

func waitHTTP(ctx context.Context, url string) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitTCP(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not listening: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const benchSecret = "bench-secret-0123456789abcdef"

// startAllSpark runs the all-in-one edge (embedded NATS + JetStream).
func startAllSpark(ctx context.Context, dir, bin string) (*server, string, error) {
	port := freePort()
	data, err := os.MkdirTemp(dir, "allspark-data-") // every run starts empty
	if err != nil {
		return nil, "", err
	}
	pprofAddr := "127.0.0.1:" + strconv.Itoa(freePort())
	s, err := startProc(dir, "allspark", []string{
		"ALLSPARK_OPS_LISTEN=" + pprofAddr, "ALLSPARK_PPROF=true",
		"ALLSPARK_LISTEN=127.0.0.1:" + strconv.Itoa(port),
		"ALLSPARK_EMBEDDED_NATS_LISTEN=127.0.0.1:" + strconv.Itoa(freePort()),
		"ALLSPARK_DATA_DIR=" + data,
		"ALLSPARK_AUTH_SECRET=" + benchSecret, "ALLSPARK_LOG_LEVEL=warn",
		"ALLSPARK_INBOX_MAX_PER_NODE=1000000", "ALLSPARK_SEND_QUEUE_BYTES=8388608",
		// Throughput runs pump one connection far past the abuse limit.
		"ALLSPARK_RATE_LIMIT=0",
	}, bin)
	if err != nil {
		return nil, "", err
	}
	s.pprof = pprofAddr
	base := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP(ctx, "http://"+base+"/readyz"); err != nil {
		s.stop()
		return nil, "", err
	}
	return s, base, nil
}

// startNATS runs a plain nats-server (the embedded-nats binary, no
// JetStream use), with a random service password like any AllSpark NATS;
// it returns the URL carrying it.
func startNATS(ctx context.Context, dir, bin string) (*server, string, error) {
	creds, err := newNATSCreds()
	if err != nil {
		return nil, "", err
	}
	return startNATSProc(ctx, dir, bin, "nats", creds)
}

const centrifugoAPIKey = "bench-api-key"

// startCentrifugo runs Centrifugo v6 with the memory engine: HMAC
// connection tokens whose "channels" claim subscribes the client
// server-side, and the HTTP API for publishing.
func startCentrifugo(ctx context.Context, dir, bin string) (*server, string, error) {
	port := freePort()
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": strconv.Itoa(port)},
		"log":         map[string]any{"level": "error"},
		"engine":      map[string]any{"type": "memory"},
		"client":      map[string]any{"token": map[string]any{"hmac_secret_key": benchSecret}, "allowed_origins": []string{"*"}},
		"http_api":    map[string]any{"key": centrifugoAPIKey},
	}
	b, _ := json.Marshal(cfg)
	file := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, "", err
	}
	s, err := startProc(dir, "centrifugo", nil, bin, "-c", file)
	if err != nil {
		return nil, "", err
	}
	base := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP(ctx, "http://"+base+"/health"); err != nil {
		s.stop()
		return nil, "", err
	}
	return s, base, nil
}

// findCentrifugo returns a Centrifugo v6 binary: on PATH, in the bench
// cache, or installed there with `go install` (which takes minutes once).
func findCentrifugo(cache string, log func(string, ...any)) (string, error) {
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	bin := filepath.Join(cache, "centrifugo")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	log("installing Centrifugo %s with go install (once; a few minutes)…", centrifugoVersion)
	cmd := exec.Command("go", "install", "github.com/centrifugal/centrifugo/v6@"+centrifugoVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+cache)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install centrifugo: %v: %s", err, tail(string(out), 400))
	}
	return bin, nil
}

const centrifugoVersion = "v6.9.1"

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// cpuProfile saves a CPU profile of the server taken over d.
func (s *server) cpuProfile(d time.Duration, file string) error {
	if s.parts != nil {
		return s.parts[len(s.parts)-1].cpuProfile(d, file)
	}
	if s.pprof == "" {
		return nil
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
