// Package fdlimit raises the open-file limit, for tests and benchmarks
// that hold thousands of sockets in one process.
package fdlimit

import (
	"fmt"
	"syscall"
)

// Raise lifts RLIMIT_NOFILE towards want: both limits when allowed (root
// may, up to fs.nr_open), else the soft one to the hard one. Processes
// started afterwards inherit it. It returns the soft limit in force and,
// when that stays below want, why.
func Raise(want uint64) (uint64, string) {
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
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: hard, Max: hard})
	return hard, fmt.Sprintf("RLIMIT_NOFILE hard limit is %d here and raising it was refused (needs CAP_SYS_RESOURCE)", hard)
}
