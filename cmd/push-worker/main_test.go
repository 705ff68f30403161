package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigErrorsNameTheVariable(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"no nats":        {map[string]string{"ALLSPARK_APNS_KEY_FILE": "k.p8"}, "ALLSPARK_NATS_URL"},
		"no provider":    {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1"}, "ALLSPARK_APNS_KEY_FILE"},
		"missing key":    {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_APNS_KEY_FILE": "/nonexistent.p8"}, "ALLSPARK_APNS_KEY_FILE"},
		"bad window":     {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_PUSH_COLLAPSE_WINDOW": "soon"}, "PUSH_COLLAPSE_WINDOW"},
		"bad nats ca":    {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_APNS_KEY_FILE": "k.p8", "ALLSPARK_NATS_CA_FILE": "/nonexistent.pem"}, "ALLSPARK_NATS_CA_FILE"},
		"no concurrency": {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_APNS_KEY_FILE": "k.p8", "ALLSPARK_PUSH_CONCURRENCY": "0"}, "ALLSPARK_PUSH_CONCURRENCY"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), nil, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
		})
	}
}
