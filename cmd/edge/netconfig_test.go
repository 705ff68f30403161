package main

import (
	"strings"
	"testing"
)

func TestNetConfigErrorsNameTheVariable(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"creds without external nats": {map[string]string{"ALLSPARK_NATS_CREDS": "x.creds"}, "ALLSPARK_NATS_CREDS"},
		"ca without external nats":    {map[string]string{"ALLSPARK_NATS_CA_FILE": "ca.pem"}, "ALLSPARK_NATS_CA_FILE"},
		"embedded user with external": {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_AUTH_SECRET": secret,
			"ALLSPARK_EMBEDDED_NATS_PASSWORD": "pw"}, "ALLSPARK_EMBEDDED_NATS_"},
		"negative conn cap":  {map[string]string{"ALLSPARK_MAX_HTTP_CONNS": "-1"}, "ALLSPARK_MAX_HTTP_CONNS"},
		"bad ops listen":     {map[string]string{"ALLSPARK_OPS_LISTEN": "9090"}, "ALLSPARK_OPS_LISTEN"},
		"negative timeout":   {map[string]string{"ALLSPARK_HTTP_BODY_TIMEOUT": "-1s"}, "ALLSPARK_HTTP_BODY_TIMEOUT"},
		"tls key only":       {map[string]string{"ALLSPARK_TLS_KEY_FILE": "k.pem"}, "ALLSPARK_TLS_CERT_FILE"},
		"nats cert no key":   {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_AUTH_SECRET": secret, "ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_NATS_CERT_FILE": "c.pem"}, "ALLSPARK_NATS_KEY_FILE"},
		"missing nats creds": {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_AUTH_SECRET": secret, "ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_NATS_CREDS": "/nonexistent.creds"}, "ALLSPARK_NATS_CREDS"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.env["ALLSPARK_DATA_DIR"] = t.TempDir()
			if _, ok := tc.env["ALLSPARK_LISTEN"]; !ok {
				tc.env["ALLSPARK_LISTEN"] = "127.0.0.1:0"
			}
			err := run(t.Context(), nil, envOf(tc.env), &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
		})
	}
}
