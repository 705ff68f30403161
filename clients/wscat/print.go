package main

import (
	"fmt"
	"io"
	"sync"
)

// lockedWriter keeps whole the lines written by the handler goroutine and
// by the sender.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer // guarded by mu
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) println(s string) { fmt.Fprintln(l, s) }
