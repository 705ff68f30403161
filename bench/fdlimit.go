package main

import (
	"fmt"
	"hash/fnv"
	"net"
	"syscall"
)

// fdHeadroom is what a process needs besides its connections: listeners,
// NATS, logs, the Go runtime's own descriptors.
const fdHeadroom = 200

// raiseNofile lifts RLIMIT_NOFILE towards want (both limits when allowed,
// which root may do up to fs.nr_open). Processes the harness starts
// inherit it. It returns the soft limit in force and, when it stays below
// want, why.
func raiseNofile(want uint64) (uint64, string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Sprintf("cannot read RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur >= want {
		return lim.Cur, ""
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}); err == nil {
		return want, ""
	}
	hard := lim.Max
	// Raising the hard limit needs CAP_SYS_RESOURCE; the soft one may
	// always go up to it. Setting it explicitly also makes children inherit it.
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: hard, Max: hard})
	return hard, fmt.Sprintf("RLIMIT_NOFILE hard limit is %d here and raising it was refused (needs CAP_SYS_RESOURCE)", hard)
}

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
