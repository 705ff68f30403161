package main

import (
	"fmt"
	"github.com/allspark-rt/allspark/internal/fdlimit"
	"hash/fnv"
	"net"
)

// fdHeadroom is what a process needs besides its connections: listeners,
// NATS, logs, the Go runtime's own descriptors.
const fdHeadroom = 200

// raiseNofile lifts RLIMIT_NOFILE towards want; see fdlimit.Raise.
func raiseNofile(want uint64) (uint64, string) { return fdlimit.Raise(want) }

// fit caps a wanted number of connections, held by one process on each
// side, to what RLIMIT_NOFILE allows, and says so when it had to.
func fit(want int) (int, string) {
	lim, why := raiseNofile(uint64(want + fdHeadroom))
	n := min(want, int(lim)-fdHeadroom)
	if n >= want {
		return want, ""
	}
	return n, fmt.Sprintf("ran %d of the %d asked: %s", n, want, why)
}

// sourceIPs is how many loopback source addresses dialers spread over:
// one address gives about 28,000 ephemeral ports towards one listener.
const sourceIPs = 16

// sourceAddr picks the loopback source address of a client by its name:
// 127.0.0.2 to 127.0.0.17, so 100k+ connections do not run out of ports.
func sourceAddr(name string) *net.TCPAddr {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+h.Sum32()%sourceIPs))}
}

// dialerFor is a net.Dialer bound to name's source address.
func dialerFor(name string) *net.Dialer {
	return &net.Dialer{LocalAddr: sourceAddr(name)}
}
