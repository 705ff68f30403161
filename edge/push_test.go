package edge_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/push"
	"github.com/allspark-rt/allspark/push/pushtest"
	"github.com/nats-io/nats.go/jetstream"
)

// Acceptance 1 (issue 5): offline bob has an APNs and an FCM token; alice
// sends; both providers get an authenticated request whose notification
// follows the template.
func TestPushForOfflineRecipient(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	c.mustCall(a, "POST", "/v1/push-tokens", "bob", "bob", map[string]any{"platform": "apns", "token": "apns-bob-device"}, 200)
	c.mustCall(a, "POST", "/v1/push-tokens", "bob", "bob", map[string]any{"platform": "fcm", "token": "fcm-bob-device"}, 200)

	apns, fcm := pushtest.NewAPNs(t), pushtest.NewFCM(t)
	cfg := push.Config{APNs: apns.Config, FCM: fcm.Config, Title: "{{.SrcID}}", Body: "{{.Payload.text}}",
		CollapseWindow: time.Minute, AckWait: 5 * time.Second, MaxRetries: 3, Batch: 100, Concurrency: 100}
	nc := testutil.Connect(t, c.url)
	js, _ := jetstream.New(nc)
	subj, _ := bus.NewSubjects("allspark")
	tokens, err := push.OpenTokens(t.Context(), js, subj, 1, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := push.NewAPNs(cfg.APNs, apns.Client)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := push.NewFCM(t.Context(), cfg.FCM, fcm.Client)
	if err != nil {
		t.Fatal(err)
	}
	w, err := push.NewWorker(t.Context(), cfg, push.Deps{JS: js, Subjects: subj, Tokens: tokens,
		Providers: map[push.Platform]push.Provider{push.APNs: ap, push.FCM: fp}, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	alice := c.dial(a, "alice", "alice")
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": map[string]string{"text": "are you there?"}})
	if s := alice.Until(t, wait, isSent); s.Status != "stored" {
		t.Fatalf("got %s", s.Raw)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if len(apns.Requests()) != 1 || len(fcm.Requests()) != 1 {
			return fmt.Errorf("apns %d, fcm %d requests", len(apns.Requests()), len(fcm.Requests()))
		}
		return nil
	})
	ar := apns.Requests()[0]
	if ar.Token != "apns-bob-device" || ar.Header.Get("apns-collapse-id") == "" ||
		fmt.Sprint(ar.Body["aps"]) != "map[alert:map[body:are you there? title:alice] mutable-content:1]" {
		t.Fatalf("apns request: token %s headers %v body %v", ar.Token, ar.Header, ar.Body)
	}
	fr := fcm.Requests()[0]
	msg := fmt.Sprint(fr.Body["message"])
	if fr.Token != "fcm-bob-device" || !strings.Contains(msg, "notification:map[body:are you there? title:alice]") {
		t.Fatalf("fcm request: %v", fr.Body)
	}
}

// Acceptance 3 (issue 5): bad registrations get 400 JSON.
func TestPushTokenBadInput(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	cases := []struct {
		name string
		body any
		want string
	}{
		{"unknown platform", map[string]any{"platform": "gcm", "token": "x"}, `platform must be`},
		{"empty token", map[string]any{"platform": "apns", "token": ""}, `token is empty`},
		{"oversized token", map[string]any{"platform": "fcm", "token": strings.Repeat("t", push.MaxTokenLen+1)}, `token is over`},
		{"token with spaces", map[string]any{"platform": "fcm", "token": "a b"}, `spaces or control`},
		{"not json", "nope", `body must be`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.call(a, "POST", "/v1/push-tokens", "bob", "bob", tc.body)
			if status != 400 || !strings.Contains(body, `"code":"bad_request"`) || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	if status, body := c.call(a, "DELETE", "/v1/push-tokens/some-token", "bob", "bob", nil); status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	resp, err := http.Post(a.http.URL+"/v1/push-tokens", "application/json", strings.NewReader(`{"platform":"apns","token":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("unauthenticated registration: %d", resp.StatusCode)
	}
}
