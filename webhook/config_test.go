package webhook_test

import (
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/webhook"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func good() webhook.Config {
	return webhook.Config{URL: "https://127.0.0.1/hook", Secret: "0123456789abcdef", BatchSize: 100, BatchWait: time.Second,
		Timeout: time.Second, MinBackoff: time.Millisecond, MaxBackoff: time.Second, Consumer: "webhook"}
}

func TestValidateNamesTheVariable(t *testing.T) {
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for want, mod := range map[string]func(*webhook.Config){
		"ALLSPARK_WEBHOOK_URL":         func(c *webhook.Config) { c.URL = "ftp://x" },
		"ALLSPARK_WEBHOOK_SECRET":      func(c *webhook.Config) { c.Secret = "short" },
		"ALLSPARK_WEBHOOK_BATCH_SIZE":  func(c *webhook.Config) { c.BatchSize = 10001 },
		"ALLSPARK_WEBHOOK_BATCH_WAIT":  func(c *webhook.Config) { c.BatchWait = 0 },
		"ALLSPARK_WEBHOOK_MAX_BACKOFF": func(c *webhook.Config) { c.MaxBackoff = time.Microsecond },
		"ALLSPARK_WEBHOOK_CONSUMER":    func(c *webhook.Config) { c.Consumer = "" },
	} {
		c := good()
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
}

func TestVerifyAcceptsOneOfSeveralSignatures(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"events":[]}`)
	sig := webhook.Sign("0123456789abcdef", now.Unix(), body)
	if err := webhook.Verify("0123456789abcdef", "1800000000", "v1=00, "+sig, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify("0123456789abcdef", "soon", sig, body, now, time.Minute); err == nil {
		t.Fatal("a non-numeric timestamp verified")
	}
}
