package natsnode

import (
	"errors"
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// A connection's events are logged: disconnects and reconnects (Warn and
// Info, each as it happens: they are rare and an operator needs each one)
// and asynchronous errors such as a slow consumer, which can come once per
// dropped message, so at most one line per kind per bus.WarnEvery with the count
// since the last line.

// connEvents are the nats.go handlers that log one connection's events.
func connEvents(name string, log *slog.Logger) []nats.Option {
	var errs bus.RateLimited
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus disconnected; reconnecting", "connection", name, "server", bus.RedactURL(nc.ConnectedUrl()), "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("bus reconnected", "connection", name, "server", bus.RedactURL(nc.ConnectedUrl()), "reconnects", nc.Reconnects)
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
