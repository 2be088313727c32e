package toolworkers

import (
	"encoding/json"
	"errors"
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
// as Nats-Msg-Id so the stream drops a second copy. An event the stream does
// not acknowledge (no leader while a NATS node is lost, a timeout, no stream
// yet) waits in a bounded retry buffer and is published again, with the same
// id, until it is stored or is older than usageRetryFor, which stays inside
// the stream's duplicate window so a retry never counts a call twice. While
// usageMaxPending events wait for an acknowledgement, others go straight to
// the retry buffer: the publisher never stalls, so the queue keeps draining
// through an outage as long as the buffer lasts (usageRetryMax events). What
// cannot be kept (queue or buffer full, too old, refused for good) is counted
// and warned about once per usageWarnEvery, never per event. Nothing here ever
// fails or slows the call.
const (
	usageQueueSize  = 4096            // events waiting for the publisher, per replica
	usageMaxPending = 512             // published events waiting for their ack
	usageAckTimeout = 5 * time.Second // an event not acknowledged by then is retried
	usageWarnEvery  = 10 * time.Second
	usageFlushWait  = 2 * time.Second // what Stop gives queued events to get out
	usageRetryMax   = 16384           // events waiting to be published again, per replica
	usageRetryEvery = 500 * time.Millisecond
	// usageRetryFor is how long an event is retried: well inside
	// bus.DefaultUsageDuplicates, in which the stream drops a second copy.
	usageRetryFor = 90 * time.Second
)

// UsageStats counts one worker replica's usage events since it started.
type UsageStats struct {
	Stored  uint64 // acknowledged by the usage stream (a duplicate counts too)
	Retried uint64 // published again after the stream did not acknowledge them
	Dropped uint64 // the queue or the retry buffer was full: lost
	Failed  uint64 // refused for good, or not stored within usageRetryFor: lost
}

// UsageStats reports the replica's usage event counts.
func (w *Worker) UsageStats() UsageStats {
	return UsageStats{Stored: w.usage.stored.Load(), Retried: w.usage.retried.Load(),
		Dropped: w.usage.dropped.Load(), Failed: w.usage.failed.Load()}
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
		OrgID:      rec.env.Caller.Org,
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
	if rec.method == bus.MethodToolsCall && rec.status == "ok" {
		ev.Cost = w.up.Cost(rec.tool)
	}
	return ev
}

// usagePublisher is a worker's queue of usage events and the goroutine that
// publishes them. The zero value is ready: the goroutine starts with the
// first event.
type usagePublisher struct {
	publishQueue[bus.UsageEvent]

	stored, dropped, failed, retried          atomic.Uint64
	lastDropWarn, lastFailWarn, lastRetryWarn atomic.Int64 // unix nanoseconds

	// The retry buffer: events to publish again, and when each first failed.
	retryMu  sync.Mutex
	retry    []*nats.Msg
	firstErr map[*nats.Msg]time.Time
	retryFor time.Duration // usageRetryFor; tests shorten it
	metrics  *Metrics
}

// enqueue hands ev to the publisher without ever waiting.
func (p *usagePublisher) enqueue(w *Worker, ev bus.UsageEvent) {
	full, q := p.offer(ev, usageQueueSize, func() {
		p.metrics = w.metrics
		go p.run(w.nc, w.log)
	})
	if full {
		n := p.dropped.Add(1)
		p.metrics.usageEvent("dropped")
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
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { p.acked(m) }),
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
		p.send(js, log, m)
	}
	retry := time.NewTicker(usageRetryEvery)
	defer retry.Stop()
	republish := func() {
		for _, m := range p.takeRetries() {
			if stalled(js) {
				p.fail(log, m, errUsageStalled) // back in the buffer, not tried
				continue
			}
			p.retried.Add(1)
			p.metrics.usageEvent("retried")
			p.send(js, log, m)
		}
	}
	for {
		select {
		case ev := <-p.queue:
			publish(ev)
		case <-retry.C:
			republish()
		case <-p.stop:
			republish()
			deadline := time.NewTimer(usageFlushWait)
			defer deadline.Stop()
			p.flush(js, deadline, publish)
			return
		}
	}
}

// errUsageStalled: usageMaxPending events already wait for the stream's
// acknowledgement (it has no leader, or is slow), so an event waits in the
// retry buffer instead of in the publisher, which never blocks the queue.
var errUsageStalled = errors.New("too many usage events waiting for the stream's acknowledgement")

// stalled reports whether the stream has usageMaxPending events to
// acknowledge: publishing one more would wait for an acknowledgement (a
// stall of 200 ms each, so a leaderless stream would back the queue up).
func stalled(js jetstream.JetStream) bool { return js.PublishAsyncPending() >= usageMaxPending }

// send publishes m unless the stream is stalled.
func (p *usagePublisher) send(js jetstream.JetStream, log *slog.Logger, m *nats.Msg) {
	if stalled(js) {
		p.fail(log, m, errUsageStalled)
		return
	}
	if _, err := js.PublishMsgAsync(m); err != nil {
		p.fail(log, m, err)
	}
}

// acked counts an event the stream stored.
func (p *usagePublisher) acked(m *nats.Msg) {
	p.stored.Add(1)
	p.metrics.usageEvent("stored")
	p.retryMu.Lock()
	delete(p.firstErr, m)
	p.retryMu.Unlock()
}

// takeRetries empties the retry buffer.
func (p *usagePublisher) takeRetries() []*nats.Msg {
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	out := p.retry
	p.retry = nil
	return out
}

// fail handles an event the stream did not store: it goes back into the
// retry buffer while it may still be retried, else it is lost, counted.
func (p *usagePublisher) fail(log *slog.Logger, m *nats.Msg, err error) {
	if m != nil && usageRetryable(err) {
		now := time.Now()
		limit := p.retryFor
		if limit <= 0 {
			limit = usageRetryFor
		}
		p.retryMu.Lock()
		if p.firstErr == nil {
			p.firstErr = map[*nats.Msg]time.Time{}
		}
		first, seen := p.firstErr[m]
		if !seen {
			first = now
		}
		kept := now.Sub(first) < limit && len(p.retry) < usageRetryMax
		if kept {
			p.firstErr[m] = first
			p.retry = append(p.retry, m)
		} else {
			delete(p.firstErr, m)
		}
		waiting := len(p.retry)
		p.retryMu.Unlock()
		if kept {
			if p.due(&p.lastRetryWarn) {
				log.Warn("usage events not acknowledged by the "+bus.StreamUsage+" stream (no leader, or no stream yet); retrying them",
					"waiting", waiting, "err", err)
			}
			return
		}
	}
	n := p.failed.Add(1)
	p.metrics.usageEvent("lost")
	if p.due(&p.lastFailWarn) {
		subject := ""
		if m != nil {
			subject = m.Subject
		}
		log.Warn("usage event not stored (is the "+bus.StreamUsage+" stream there?)", "failed_total", n, "subject", subject, "err", err)
	}
}

// usageRetryable reports whether an event refused with err may be stored later:
// anything but an event too large for the connection or the stream.
func usageRetryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.Is(err, nats.ErrMaxPayload) || errors.As(err, &apiErr) && apiErr.ErrorCode == errMessageTooLarge {
		return false
	}
	return true
}

// errMessageTooLarge is JetStream's "message size exceeds maximum allowed"
// (NATS error code 10054).
const errMessageTooLarge = 10054

// close stops the publisher after a last flush; later events are ignored.
func (p *usagePublisher) close() { p.publishQueue.close() }
