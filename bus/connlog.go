package bus

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A connection's events are logged: disconnects and reconnects (Warn and
// Info, each as it happens: they are rare and an operator needs each one)
// and asynchronous errors such as a slow consumer, which can come once per
// dropped message, so at most one line per kind per WarnEvery with the count
// since the last line.

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

// connEvents are the nats.go handlers that log one connection's events.
func connEvents(name string, log *slog.Logger) []nats.Option {
	var errs RateLimited
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus disconnected; reconnecting", "connection", name, "server", RedactURL(nc.ConnectedUrl()), "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("bus reconnected", "connection", name, "server", RedactURL(nc.ConnectedUrl()), "reconnects", nc.Reconnects)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				errs.Warn(log, "bus slow consumer: messages dropped because this process did not keep up", "connection", name, "subject", subject)
				return
			}
			errs.Warn(log, "bus error", "connection", name, "subject", subject, "err", err)
		}),
	}
}
