package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestDemoServesPageAndSDK checks /demo serves the page and that every
// module the page loads (demo.js, then the SDK's relative imports) is
// embedded, so a bundle committed without one of its files fails here.
func TestDemoServesPageAndSDK(t *testing.T) {
	m := http.NewServeMux()
	demoRoutes(m)
	srv := httptest.NewServer(m)
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := noRedirect.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, _, _ := get("/demo"); code != http.StatusMovedPermanently {
		t.Fatalf("GET /demo: status %d, want 301 to /demo/", code)
	}
	code, ctype, body := get("/demo/")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, `src="demo.js"`) {
		t.Fatalf("GET /demo/: %d %s, body %.80q", code, ctype, body)
	}
	importRE := regexp.MustCompile(`(?m)^(?:import|export)[^'"]*from\s+'(\./[^']+)'`)
	seen := map[string]bool{}
	queue := []string{"/demo/demo.js"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		code, ctype, body := get(p)
		if code != http.StatusOK || !strings.Contains(ctype, "javascript") {
			t.Fatalf("GET %s: status %d, Content-Type %q; want 200 JavaScript (run npm run build in clients/js)", p, code, ctype)
		}
		dir := p[:strings.LastIndex(p, "/")+1]
		for _, m := range importRE.FindAllStringSubmatch(body, -1) {
			queue = append(queue, dir+strings.TrimPrefix(m[1], "./"))
		}
	}
	if !seen["/demo/sdk/index.js"] || !seen["/demo/sdk/client.js"] {
		t.Fatalf("the SDK was not reached from demo.js: %v", seen)
	}
}
