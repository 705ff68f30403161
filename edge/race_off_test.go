//go:build !race

package edge_test

// raceEnabled: the race detector caps live goroutines at 8,128.
const raceEnabled = false
