package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A cluster whose servers would each generate their own passwords is refused.
func TestClusterNeedsGivenCredentials(t *testing.T) {
	err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-store", t.TempDir(), "-cluster-name", "c"},
		func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ALLSPARK_NATS_PASSWORD") {
		t.Fatalf("err = %v", err)
	}
}

// Three processes' worth of run() form a JetStream cluster that serves an R3 stream.
func TestThreeServerCluster(t *testing.T) {
	ports := []int{testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)}
	routes := ""
	for i, p := range ports {
		if i > 0 {
			routes += ","
		}
		routes += fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 3)
	dones := make(chan error, 3)
	for i := range 3 {
		pr, pw := io.Pipe()
		args := []string{"-name", fmt.Sprintf("n%d", i), "-listen", "127.0.0.1:0", "-store", t.TempDir(),
			"-cluster-name", "test", "-cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "-routes", routes}
		env := map[string]string{"ALLSPARK_NATS_PASSWORD": "svc-secret", "ALLSPARK_NATS_BACKEND_PASSWORD": "be-secret"}
		go func() { dones <- run(ctx, args, func(k string) string { return env[k] }, pw); pw.Close() }()
		go func() {
			re := regexp.MustCompile(`embedded-nats ready" client_url=(\S+)`)
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					urls <- m[1]
				}
			}
		}()
	}
	var url string
	for range 3 {
		select {
		case url = <-urls:
		case <-time.After(30 * time.Second):
			t.Fatal("servers not ready")
		}
	}
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	nc, err := nats.Connect(url, nats.UserInfo("allspark", "svc-secret"), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	testutil.Eventually(t, 30*time.Second, func() error {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateStream(c, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		return err
	})
	nc.Close()
	cancel()
	for range 3 {
		if err := <-dones; err != nil {
			t.Fatal(err)
		}
	}
}
