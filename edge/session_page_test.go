package edge_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/edge"
)

// GET /v1/sessions/{id} answers one page of members at a time: ?limit=
// (SESSION_PAGE_DEFAULT without it, at most SESSION_PAGE_MAX) and the
// opaque next_cursor of the page before. Every member is on exactly one
// page, the last page has no next_cursor, and member_count counts them
// all. online is answered for a page's named members.
func TestSessionMembersPaged(t *testing.T) {
	c := newCluster(t)
	a := c.edge("a", func(cfg *edge.Config) { cfg.SessionPageDefault, cfg.SessionPageMax = 4, 10 })
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "paged"}, 201)
	const joiners = 24
	for i := range joiners {
		c.mustCall(a, "POST", "/v1/sessions/paged/join", fmt.Sprintf("m%02d", i), fmt.Sprintf("m%02d", i), nil, 200)
	}
	m05 := c.dial(a, "m05", "m05") // online
	defer m05.Close()

	pages := func(query string) (seen map[string]bool, sizes []int) {
		t.Helper()
		seen = map[string]bool{}
		cursor := ""
		for range 100 {
			q := query
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			view := c.mustCall(a, "GET", "/v1/sessions/paged?"+q, "m00", "m00", nil, 200)
			if n := view["member_count"]; n != float64(joiners+1) {
				t.Fatalf("member_count %v, want %d", n, joiners+1)
			}
			members := view["members"].([]any)
			sizes = append(sizes, len(members))
			for _, m := range members {
				m := m.(map[string]any)
				id := m["member_id"].(string)
				if seen[id] {
					t.Fatalf("%s on two pages", id)
				}
				seen[id] = true
				if online, want := m["online"], id == "m05"; online != want {
					t.Errorf("%s online=%v, want %v", id, online, want)
				}
			}
			next, more := view["next_cursor"].(string)
			if !more {
				return seen, sizes
			}
			cursor = next
		}
		t.Fatal("pages never ended")
		return nil, nil
	}
	for _, tc := range []struct {
		query string
		pages int
	}{{"", 7}, {"limit=10", 3}, {"limit=1", 25}} {
		seen, sizes := pages(tc.query)
		if len(seen) != joiners+1 || len(sizes) != tc.pages {
			t.Fatalf("?%s: %d members over pages %v, want %d over %d pages", tc.query, len(seen), sizes, joiners+1, tc.pages)
		}
	}
	for _, q := range []string{"limit=0", "limit=11", "limit=x", "limit=", "cursor=", "cursor=zz", "cursor=" + url.QueryEscape("bTEuMA"), "cursor=%21"} {
		status, body := c.call(a, "GET", "/v1/sessions/paged?"+q, "m00", "m00", nil)
		if status != 400 || !strings.Contains(body, `"bad_request"`) {
			t.Errorf("?%s: %d %s, want 400 bad_request", q, status, body)
		}
	}
}
