package toolworkers

import (
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Usage events leave the call path at once: publishUsage puts the event on a
// bounded queue (a channel send that never waits) and one goroutine per
// worker replica publishes it to JetStream asynchronously, with the request id
// as Nats-Msg-Id so the stream drops a second copy. When the queue is full the
// event is dropped and counted, never waited for; so is one the stream refuses
// (no stream, no JetStream) or does not acknowledge in time. Neither ever
// fails or slows the call.
const (
	usageQueueSize  = 4096            // events waiting for the publisher, per replica
	usageMaxPending = 512             // published events waiting for their ack
	usageAckTimeout = 5 * time.Second // an event not acknowledged by then counts as failed
	usageWarnEvery  = 10 * time.Second
	usageFlushWait  = 2 * time.Second // what Stop gives queued events to get out
)

// UsageStats counts one worker replica's usage events since it started.
type UsageStats struct {
	Stored  uint64 // acknowledged by the usage stream (a duplicate counts too)
	Dropped uint64 // the queue was full: never published
	Failed  uint64 // refused or not acknowledged: no stream, no JetStream, timeout, disconnected
}

// UsageStats reports the replica's usage event counts.
func (w *Worker) UsageStats() UsageStats {
	return UsageStats{Stored: w.usage.stored.Load(), Dropped: w.usage.dropped.Load(), Failed: w.usage.failed.Load()}
}

// publishUsage queues the usage event of one finished call.
func (w *Worker) publishUsage(rec callRecord) {
	w.usage.enqueue(w, w.usageEvent(rec, time.Now()))
}

// usageEvent builds the event of rec, which ended at end. The caller is named
// by its key id (the key's hash, or "master" / "anonymous") and alias; the
// key itself never reaches a worker. Cost is charged for tools/call answered
// "ok" only: a call the upstream refused or the gateway failed costs nothing.
func (w *Worker) usageEvent(rec callRecord, end time.Time) bus.UsageEvent {
	ev := bus.UsageEvent{
		Time:       rec.start.UTC(),
		RequestID:  rec.env.RequestID,
		KeyID:      rec.env.Caller.KeyID,
		KeyAlias:   rec.env.Caller.Alias,
		Team:       rec.env.Caller.Team,
		Server:     w.up.Name,
		Tool:       rec.tool,
		Method:     rec.method,
		Status:     rec.status,
		DurationMS: float64(end.Sub(rec.start).Microseconds()) / 1000,
		BytesIn:    rec.bytesIn,
		BytesOut:   rec.bytesOut,
		IPClass:    rec.env.IPClass,
		ErrorCode:  rec.errCode,
	}
	if rec.method == "tools/call" && rec.status == "ok" {
		ev.Cost = w.up.Cost(rec.tool)
	}
	return ev
}

// usagePublisher is a worker's queue of usage events and the goroutine that
// publishes them. The zero value is ready: the goroutine starts with the
// first event.
type usagePublisher struct {
	mu      sync.Mutex
	started bool
	closed  bool
	queue   chan bus.UsageEvent
	stop    chan struct{}
	done    chan struct{}

	stored, dropped, failed    atomic.Uint64
	lastDropWarn, lastFailWarn atomic.Int64 // unix nanoseconds
}

// enqueue hands ev to the publisher without ever waiting.
func (p *usagePublisher) enqueue(w *Worker, ev bus.UsageEvent) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if !p.started {
		p.started = true
		if p.queue == nil {
			p.queue = make(chan bus.UsageEvent, usageQueueSize)
		}
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.run(w.nc, w.log)
	}
	q := p.queue
	p.mu.Unlock()
	select {
	case q <- ev:
	default:
		n := p.dropped.Add(1)
		if p.due(&p.lastDropWarn) {
			w.log.Warn("usage events dropped: the publish queue is full (is NATS slow or disconnected?)",
				"dropped_total", n, "queue", cap(q))
		}
	}
}

// due reports whether a rate-limited warning may be logged now.
func (p *usagePublisher) due(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	prev := last.Load()
	return now-prev >= int64(usageWarnEvery) && last.CompareAndSwap(prev, now)
}

// run publishes queued events until close, then gives what is still queued
// or unacknowledged usageFlushWait to get out.
func (p *usagePublisher) run(nc *nats.Conn, log *slog.Logger) {
	defer close(p.done)
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(usageMaxPending),
		jetstream.WithPublishAsyncTimeout(usageAckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { p.stored.Add(1) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { p.fail(log, m, err) }))
	if err != nil { // only bad options fail here
		log.Error("usage events off: no JetStream context", "err", err)
		<-p.stop
		return
	}
	// Ends the ack subscription (and its goroutine) once the flush is over;
	// events still unacknowledged then count as failed.
	defer js.CleanupPublisher()
	publish := func(ev bus.UsageEvent) {
		data, err := json.Marshal(ev)
		if err != nil {
			p.fail(log, nil, err)
			return
		}
		m := &nats.Msg{Subject: bus.UsageSubject(ev.Team, ev.Server, ev.Tool), Data: data, Header: nats.Header{}}
		if ev.RequestID != "" {
			m.Header.Set(jetstream.MsgIDHeader, ev.RequestID)
		}
		if _, err := js.PublishMsgAsync(m); err != nil {
			p.fail(log, m, err)
		}
	}
	for {
		select {
		case ev := <-p.queue:
			publish(ev)
		case <-p.stop:
			deadline := time.NewTimer(usageFlushWait)
			defer deadline.Stop()
			for {
				select {
				case <-deadline.C:
					return
				case ev := <-p.queue:
					publish(ev)
				default:
					select {
					case <-js.PublishAsyncComplete():
					case <-deadline.C:
					}
					return
				}
			}
		}
	}
}

func (p *usagePublisher) fail(log *slog.Logger, m *nats.Msg, err error) {
	n := p.failed.Add(1)
	if p.due(&p.lastFailWarn) {
		subject := ""
		if m != nil {
			subject = m.Subject
		}
		log.Warn("usage event not stored (is the "+bus.StreamUsage+" stream there?)", "failed_total", n, "subject", subject, "err", err)
	}
}

// close stops the publisher after a last flush; later events are ignored.
func (p *usagePublisher) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	started := p.started
	p.mu.Unlock()
	if started {
		close(p.stop)
		<-p.done
	}
}
