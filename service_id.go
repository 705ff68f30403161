package allspark

import "strings"

// ServicePrefix starts every service id: a node id claimed by a backend
// service (svc:matchmaker) rather than a device. Messages to a service id
// are load-balanced over the service's replicas, which receive them on
// NATS. A websocket client cannot claim one unless its auth_key says so.
const ServicePrefix = "svc:"

// IsServiceID reports whether id is in the service namespace.
func IsServiceID(id string) bool {
	return strings.HasPrefix(id, ServicePrefix) && len(id) > len(ServicePrefix) && ValidID(id)
}
