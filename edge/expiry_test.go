package edge_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// A connection ends with 4001 when the auth_key behind it expires, whether
// it was opened with the key or with a validation token minted for it, even
// one minted just before the key expired.
func TestConnectionClosedWhenKeyExpires(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	base := "http://" + a.http.Listener.Addr().String()
	cases := []struct {
		name  string
		query func(key string) string
	}{
		{"auth_key", func(key string) string { return "auth_key=" + url.QueryEscape(key) }},
		{"validation_token", func(key string) string {
			vt := getConnect(t, base, "/v1/connect", key).ValidationToken
			return "validation_token=" + url.QueryEscape(vt)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Token expiries have second precision: this key lives 2–3 s.
			key, err := c.keys.MintAuthKey(auth.Identity{NodeID: "short-" + tc.name}, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, keyExp, err := c.keys.VerifyAuthKey(key)
			if err != nil {
				t.Fatal(err)
			}
			cl := wstest.Dial(t, a.wsURL(tc.query(key)))
			cl.Until(t, 5*time.Second, func(f wstest.Frame) bool { return f.Type == "sync_done" })
			if code := cl.WaitClose(t, 15*time.Second); code != allspark.CloseAuthExpired {
				t.Fatalf("close code %d, want %d", code, allspark.CloseAuthExpired)
			}
			if early := time.Until(keyExp); early > 100*time.Millisecond {
				t.Fatalf("closed %s before the key expired", early)
			}
		})
	}
}
