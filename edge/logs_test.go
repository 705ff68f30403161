package edge_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// logRecorder is an slog.Handler that keeps every record, so a test can
// wait for a log line or check that none of a kind was written.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord // guarded by mu
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := logRecord{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, lr)
	r.mu.Unlock()
	return nil
}

// WithAttrs and WithGroup drop the logger's fixed attributes (the edge
// id): tests match on the message and the record's own attributes.
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// count is how many records at level with message msg were written.
func (r *logRecorder) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if rec.level == level && rec.msg == msg {
			n++
		}
	}
	return n
}

// has returns nil once a record at level with message msg was written.
func (r *logRecorder) has(level slog.Level, msg string) error {
	if r.count(level, msg) == 0 {
		return fmt.Errorf("no %s log %q yet", level, msg)
	}
	return nil
}

func recordLogs(c *cluster) *logRecorder {
	c.logs = &logRecorder{}
	return c.logs
}
