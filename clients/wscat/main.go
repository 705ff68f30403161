// Command wscat is a small AllSpark client for trying an edge by hand,
// built on package client: it connects as a node, acknowledges every
// message it receives and deduplicates them, and reconnects by itself.
//
//	wscat -key $BOB -listen [URL]            stay connected, print each message (never reads stdin)
//	wscat -key $ALICE -send '<json>' [URL]   send one message, print its sent answer, exit
//	wscat -key $ALICE [URL] < frames.jsonl   send each stdin line, print each answer, exit at EOF
//
// URL is the edge's base URL (default http://localhost:8080; the
// ALLSPARK_URL variable also sets it). -key defaults to $ALLSPARK_AUTH_KEY.
// A message frame is {"id"?,"dest_id"|"dest_client_id"|"dest_session_id",
// "member_id"?,"payload"?,"payload1"?,"payload2"?}.
//
// Exit status: 0 when every message was delivered or stored (or -listen
// was interrupted), 1 when the edge could not be reached or refused the
// key, 2 for bad usage or a frame that is not a message, 3 when the edge
// rejected a message.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/client"
)

const (
	exitOK       = 0
	exitConnect  = 1
	exitUsage    = 2
	exitRejected = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

type options struct {
	url, key, send string
	listen, direct bool
	timeout        time.Duration
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("wscat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.key, "key", getenv("ALLSPARK_AUTH_KEY"), "auth_key (default $ALLSPARK_AUTH_KEY)")
	fs.BoolVar(&o.listen, "listen", false, "stay connected and print every message; never read stdin")
	fs.StringVar(&o.send, "send", "", "send this one message frame instead of reading stdin")
	fs.BoolVar(&o.direct, "direct", false, "open the websocket on URL itself, not on the edge /v1/connect offers")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the connection and for each answer")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.url = getenv("ALLSPARK_URL")
	if o.url == "" {
		o.url = "http://localhost:8080"
	}
	switch fs.NArg() {
	case 0:
	case 1:
		o.url = fs.Arg(0)
	default:
		return o, errors.New("at most one URL")
	}
	// The old form, ws://host:port/v1/ws?auth_key=…, still works.
	if u, err := url.Parse(o.url); err == nil && (u.Scheme == "ws" || u.Scheme == "wss") {
		if k := u.Query().Get("auth_key"); k != "" && o.key == "" {
			o.key = k
		}
		u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
		u.Path, u.RawQuery = "", ""
		o.url = u.String()
	}
	if o.key == "" {
		return o, errors.New("no auth_key: pass -key or set ALLSPARK_AUTH_KEY")
	}
	if o.listen && o.send != "" {
		return o, errors.New("-listen and -send exclude each other")
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "wscat:", err)
		}
		return exitUsage
	}
	out := &lockedWriter{w: stdout}
	stderr = &lockedWriter{w: stderr}
	cfg := client.Config{URL: o.url, AuthKey: o.key, Direct: o.direct,
		OnState: func(s client.StateChange) {
			if !o.listen && s.Err == nil {
				return // sending: only trouble is worth a line
			}
			if s.Err != nil {
				fmt.Fprintf(stderr, "wscat: %s: %v\n", s.State, s.Err)
			} else {
				fmt.Fprintf(stderr, "wscat: %s\n", s.State)
			}
		},
		OnError: func(err error) { fmt.Fprintln(stderr, "wscat:", err) },
		OnPresence: func(p client.Presence) {
			b, _ := json.Marshal(struct {
				Type string `json:"type"`
				client.Presence
			}{"presence", p})
			out.println(string(b))
		},
	}
	if o.listen {
		cfg.OnMessage = func(_ context.Context, m *client.Message) {
			b, _ := json.Marshal(m.Message)
			out.println(string(b))
		}
	}
	dctx, cancel := context.WithTimeout(ctx, o.timeout)
	cl, err := client.Dial(dctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "wscat:", err)
		return exitConnect
	}
	defer cl.Close()
	if o.listen {
		<-ctx.Done()
		return exitOK
	}
	if o.send != "" {
		return sendFrames(ctx, cl, o.timeout, strings.NewReader(o.send), out, stderr)
	}
	return sendFrames(ctx, cl, o.timeout, stdin, out, stderr)
}

// sendFrames sends each line of r and prints its answer.
func sendFrames(ctx context.Context, cl *client.Client, timeout time.Duration, r io.Reader, out *lockedWriter, stderr io.Writer) int {
	code := exitOK
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		m, err := parseFrame(line)
		if err != nil {
			fmt.Fprintln(stderr, "wscat:", err)
			return exitUsage
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := cl.Send(sctx, m)
		cancel()
		if err != nil {
			fmt.Fprintln(stderr, "wscat: send:", err)
			return exitConnect
		}
		b, _ := json.Marshal(res)
		out.println(string(b))
		if res.Status == allspark.StatusRejected {
			code = exitRejected
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(stderr, "wscat: read stdin:", err)
		return exitUsage
	}
	return code
}

// parseFrame reads one message frame.
func parseFrame(line string) (client.Outgoing, error) {
	var f struct {
		Type          string          `json:"type"`
		ID            string          `json:"id"`
		DestID        string          `json:"dest_id"`
		DestClientID  string          `json:"dest_client_id"`
		DestSessionID string          `json:"dest_session_id"`
		MemberID      string          `json:"member_id"`
		Payload       json.RawMessage `json:"payload"`
		Payload1      json.RawMessage `json:"payload1"`
		Payload2      json.RawMessage `json:"payload2"`
	}
	if err := json.Unmarshal([]byte(line), &f); err != nil {
		return client.Outgoing{}, fmt.Errorf("frame %q is not a JSON object: %w", allspark.Truncate(line, 60), err)
	}
	if f.Type != "" && f.Type != "message" {
		return client.Outgoing{}, fmt.Errorf("wscat sends messages only, not %q frames (acks and syncs are automatic)", f.Type)
	}
	m := client.Outgoing{ID: f.ID, DestID: f.DestID, DestClientID: f.DestClientID, DestSessionID: f.DestSessionID, MemberID: f.MemberID}
	// Absent payloads stay nil so they are left out of the frame.
	if f.Payload != nil {
		m.Payload = f.Payload
	}
	if f.Payload1 != nil {
		m.Payload1 = f.Payload1
	}
	if f.Payload2 != nil {
		m.Payload2 = f.Payload2
	}
	return m, nil
}
