package main

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// newHTTPServer is the public listener's server: every phase of a
// connection has a deadline, so slow or idle clients cannot pile up.
// Websocket connections are hijacked after the upgrade and then keep
// their own deadlines (heartbeat-based), which replace these.
func newHTTPServer(n NetConfig, h http.Handler, now func() time.Time, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           bodyDeadline(min(n.HTTPBodyTimeout, n.HTTPReadTimeout), now, h),
		ReadHeaderTimeout: n.HTTPReadHeaderTimeout,
		ReadTimeout:       n.HTTPReadTimeout,
		IdleTimeout:       n.HTTPIdleTimeout,
		// TLS handshake failures and the like are a client's problem, not
		// the operator's: debug, not stderr.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// bodyDeadline gives a request body d from the moment its headers are in
// (ReadTimeout counts from the first byte; the headers themselves are
// bounded by ReadHeaderTimeout, which net/http uses instead when set): a
// client declaring a large body and trickling it is cut off, its handler
// sees a read error and answers 400. Websocket upgrades are left alone.
func bodyDeadline(d time.Duration, now func() time.Time, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			_ = http.NewResponseController(w).SetReadDeadline(now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}
