package edge

import (
	"net/http"
	"strings"

	"github.com/allspark-rt/allspark"
)

// upgradeProblem says why r is not a websocket upgrade the edge can accept
// ("" if it is). handleWS checks it before any work: a plain GET must not
// record a device, load memberships or register a connection, whose
// teardown would then announce the node offline to its sessions.
func upgradeProblem(r *http.Request) string {
	switch {
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return "websocket upgrade required: Connection: Upgrade missing"
	case !strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket"):
		return "websocket upgrade required: Upgrade: websocket missing"
	case r.Header.Get("Sec-WebSocket-Key") == "":
		return "websocket upgrade required: Sec-WebSocket-Key missing"
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "websocket upgrade required: Sec-WebSocket-Version must be 13"
	}
	return ""
}

// headerHasToken reports whether the comma-separated header name has token,
// ignoring case (Connection: keep-alive, Upgrade).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// refuseNonUpgrade answers 426 with the JSON error when r is not a
// websocket upgrade, and reports whether it did.
func refuseNonUpgrade(w http.ResponseWriter, r *http.Request) bool {
	problem := upgradeProblem(r)
	if problem == "" {
		return false
	}
	w.Header().Set("Upgrade", "websocket")
	w.Header().Set("Sec-WebSocket-Version", "13")
	writeError(w, http.StatusUpgradeRequired, allspark.CodeBadRequest, problem)
	return true
}
