package bus

import (
	"log/slog"
	"sync"
	"time"
)

// WarnEvery is the least time between two log lines of one repeated warning.
const WarnEvery = 10 * time.Second

// RateLimited logs a repeated warning at most once per WarnEvery, with how
// many times it happened since the last line. The zero value is ready.
type RateLimited struct {
	mu    sync.Mutex
	last  map[string]time.Time
	count map[string]int
	now   func() time.Time
}

// Warn logs msg unless the same msg was logged less than WarnEvery ago; then
// it only counts it. It reports whether it logged.
func (r *RateLimited) Warn(log *slog.Logger, msg string, args ...any) bool {
	now := time.Now
	r.mu.Lock()
	if r.now != nil {
		now = r.now
	}
	if r.last == nil {
		r.last, r.count = map[string]time.Time{}, map[string]int{}
	}
	t := now()
	r.count[msg]++
	if last, seen := r.last[msg]; seen && t.Sub(last) < WarnEvery {
		r.mu.Unlock()
		return false
	}
	n := r.count[msg]
	r.last[msg], r.count[msg] = t, 0
	r.mu.Unlock()
	log.Warn(msg, append(args, "times", n)...)
	return true
}
