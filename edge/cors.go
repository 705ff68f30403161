package edge

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/allspark-rt/allspark"
)

// Browsers. ALLSPARK_ALLOWED_ORIGINS decides which web origins may call the
// endpoints clients use (CORS) and open the websocket (an Origin check: a
// browser sends Origin on every websocket upgrade, and CORS does not apply
// to websockets, so without the check any page could open a connection with
// a key it holds). Requests without an Origin header come from native apps
// and servers and are never affected.

// originPolicy is a parsed ALLSPARK_ALLOWED_ORIGINS.
type originPolicy struct {
	any     bool
	origins map[string]struct{} // normalized scheme://host:port
}

// parseOrigins reads the configured list: origins written
// scheme://host[:port], or "*". Empty means same-origin only.
func parseOrigins(list []string) (originPolicy, error) {
	p := originPolicy{origins: map[string]struct{}{}}
	for _, raw := range list {
		o := strings.TrimSpace(raw)
		switch o {
		case "":
			continue
		case "*":
			p.any = true
			continue
		}
		key, ok := normalizeOrigin(o)
		if !ok {
			return p, fmt.Errorf("%q is not an origin (want scheme://host[:port] or *)", o)
		}
		p.origins[key] = struct{}{}
	}
	return p, nil
}

// normalizeOrigin lower-cases scheme and host and makes the port explicit,
// so "https://App.example.com" and "https://app.example.com:443" match.
func normalizeOrigin(o string) (string, bool) {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme + "://" + hostPort(u.Host, scheme), true
}

// hostPort lower-cases host and adds the scheme's default port when none is given.
func hostPort(host, scheme string) string {
	host = strings.ToLower(host)
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" || scheme == "wss" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// allows reports whether a request from origin to host may proceed: a
// listed origin, or the same origin (the Origin's host and port equal the
// request's Host), which is always allowed so the edge's own pages (/demo)
// work whatever the list says.
func (p originPolicy) allows(origin, host string) bool {
	if p.any {
		return true
	}
	key, ok := normalizeOrigin(origin)
	if !ok {
		return false // "null" and other opaque origins need "*"
	}
	if _, ok := p.origins[key]; ok {
		return true
	}
	scheme, originHost, _ := strings.Cut(key, "://")
	return host != "" && originHost == hostPort(host, scheme)
}

// corsPath reports whether path is an endpoint browsers call. Backend and
// operator endpoints (/v1/messages, /healthz, /readyz; /metrics is on the ops listener) are not:
// they never send CORS headers and ignore Origin.
func corsPath(path string) bool {
	switch path {
	case "/", "/v1/connect", "/v1/ws", "/v1/dev/token", "/v1/sessions", "/v1/push-tokens",
		"/create_session", "/join_session", "/unjoin_session",
		"/v1/create_session", "/v1/join_session", "/v1/unjoin_session":
		return true
	}
	return strings.HasPrefix(path, "/v1/sessions/") || strings.HasPrefix(path, "/v1/push-tokens/")
}

const (
	corsMethods = "GET, POST, DELETE, OPTIONS"
	corsHeaders = "Authorization, Content-Type"
	corsMaxAge  = "600" // seconds a browser may cache a preflight answer
)

// withCORS applies the origin policy in front of next: a disallowed origin
// is answered 403 (also before a websocket upgrade), a preflight from an
// allowed one 204, and other requests from an allowed origin get
// Access-Control-Allow-Origin. The origin is echoed, never "*", and no
// credentials header is sent: clients authenticate with bearer keys, not
// cookies.
func withCORS(p originPolicy, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !corsPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if !p.allows(origin, r.Host) {
			writeError(w, http.StatusForbidden, allspark.CodeForbidden, "origin not allowed: "+allspark.Truncate(origin, 100))
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
