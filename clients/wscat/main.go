// Command wscat is a minimal AllSpark websocket client for trying an edge by
// hand: it prints every frame received, sends each stdin line as a frame,
// and acknowledges messages as the official clients do.
//
//	go run ./clients/wscat "ws://localhost:8080/v1/ws?auth_key=$TOKEN"
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/lxzan/gws"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wscat:", err)
		os.Exit(1)
	}
}

type printer struct {
	out    io.Writer
	noAck  bool
	closed chan struct{}
}

func (p *printer) OnOpen(*gws.Conn)             {}
func (p *printer) OnPing(s *gws.Conn, b []byte) { _ = s.WritePong(b) }
func (p *printer) OnPong(*gws.Conn, []byte)     {}
func (p *printer) OnClose(_ *gws.Conn, err error) {
	fmt.Fprintln(p.out, "closed:", err)
	close(p.closed)
}

func (p *printer) OnMessage(s *gws.Conn, m *gws.Message) {
	defer m.Close()
	fmt.Fprintln(p.out, "<", m.Data.String())
	var f struct {
		Type  string `json:"type"`
		MsgID string `json:"msg_id"`
	}
	if !p.noAck && json.Unmarshal(m.Bytes(), &f) == nil && f.Type == "" && f.MsgID != "" {
		_ = s.WriteString(fmt.Sprintf(`{"type":"ack","msg_id":%q}`, f.MsgID))
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("wscat", flag.ContinueOnError)
	noAck := fs.Bool("no-ack", false, "do not acknowledge received messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: wscat [-no-ack] ws://host:port/v1/ws?auth_key=…")
	}
	p := &printer{out: stdout, noAck: *noAck, closed: make(chan struct{})}
	conn, resp, err := gws.NewClient(p, &gws.ClientOption{Addr: fs.Arg(0)})
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("dial: HTTP %d %s", resp.StatusCode, body)
		}
		return fmt.Errorf("dial: %w", err)
	}
	go conn.ReadLoop()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			_ = conn.WriteClose(1000, nil)
			<-p.closed
			return nil
		case <-p.closed:
			return nil
		case l, ok := <-lines:
			if !ok {
				_ = conn.WriteClose(1000, nil)
				<-p.closed
				return nil
			}
			if l != "" {
				if err := conn.WriteString(l); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
		}
	}
}
