package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// connectorRecords is a connector's source of the gateway's records of its
// servers (toolworkers.ManagerOptions.Source): the registry's answers on
// bus.ConnectorGet, then its news on bus.ConnectorChanged, and a fresh ask
// every refreshEvery, which also catches news missed while the leaf link
// was down.
func connectorRecords(nc *nats.Conn, names []string, log *slog.Logger) func(context.Context, func(bus.KVEntry)) (func(), error) {
	return func(ctx context.Context, apply func(bus.KVEntry)) (func(), error) {
		var subs []*nats.Subscription
		stop := func() {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
		}
		for _, n := range names {
			// Subscribed before the first ask, so no change falls between.
			s, err := nc.Subscribe(bus.ConnectorChanged(n), func(m *nats.Msg) {
				apply(bus.KVEntry{Key: n, Value: m.Data, Deleted: len(m.Data) == 0})
			})
			if err != nil {
				stop()
				return nil, err
			}
			subs = append(subs, s)
		}
		if err := askRecords(ctx, nc, names, apply, log); err != nil {
			stop()
			return nil, err
		}
		refreshCtx, cancel := context.WithCancel(ctx)
		go func() {
			t := time.NewTicker(refreshEvery)
			defer t.Stop()
			for {
				select {
				case <-refreshCtx.Done():
					return
				case <-t.C:
					if err := askRecords(refreshCtx, nc, names, apply, log); err != nil && refreshCtx.Err() == nil {
						log.Warn("connector: could not ask the gateway for its servers' records; serving the last ones", "err", err)
					}
				}
			}
		}()
		return func() { cancel(); stop() }, nil
	}
}

// refreshEvery is how often a connector asks again for its records;
// askTimeout bounds one ask.
const (
	refreshEvery = 30 * time.Second
	askTimeout   = 5 * time.Second
)

// askRecords asks the registry for each server's record and applies the
// answer: a record, or none (the gateway has no such server with transport
// connector). A request NATS refused is never answered: it times out.
func askRecords(ctx context.Context, nc *nats.Conn, names []string, apply func(bus.KVEntry), log *slog.Logger) error {
	for _, n := range names {
		rctx, cancel := context.WithTimeout(ctx, askTimeout)
		m, err := nc.RequestWithContext(rctx, bus.ConnectorGet(n), nil)
		cancel()
		if err != nil {
			if errors.Is(err, nats.ErrNoResponders) {
				err = errors.New("no registry answers (is the gateway's registry running?)")
			}
			return fmt.Errorf("the record of %s: %w", n, err)
		}
		if e := bus.ReplyError(m); e != nil {
			log.Warn("connector: the gateway does not list this server with transport connector; not served", "server", n, "reason", e.Message)
			apply(bus.KVEntry{Key: n, Deleted: true})
			continue
		}
		apply(bus.KVEntry{Key: n, Value: m.Data})
	}
	return nil
}
