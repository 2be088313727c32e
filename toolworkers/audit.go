package toolworkers

import (
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Audit records (docs/AUDIT.md) leave the call path the way usage events do
// (usage.go): a channel send that never waits, and one goroutine per worker
// that publishes them asynchronously with the request id as Nats-Msg-Id.
// Unlike usage events they are not retried: a record the stream does not
// acknowledge is counted and warned about (at most once per usageWarnEvery).
// With audit off a worker has no publisher, and a call does no audit work
// beyond a nil check.
const auditQueueSize = 4096

// AuditStats counts one worker replica's audit records since it started.
type AuditStats struct {
	Stored  uint64 // acknowledged by the audit stream
	Dropped uint64 // the queue was full
	Failed  uint64 // not stored (no stream, refused, no acknowledgement)
}

// AuditStats reports the replica's audit record counts (zero with audit off).
func (w *Worker) AuditStats() AuditStats {
	p := w.audit
	if p == nil {
		return AuditStats{}
	}
	return AuditStats{Stored: p.stored.Load(), Dropped: p.dropped.Load(), Failed: p.failed.Load()}
}

// auditPublisher is a worker's queue of audit records and the goroutine that
// publishes them; it starts with the first record.
type auditPublisher struct {
	args bus.AuditArguments
	nc   *nats.Conn
	log  *slog.Logger

	publishQueue[auditItem]

	stored, dropped, failed atomic.Uint64
	lastWarn                atomic.Int64
}

// newAuditPublisher is the publisher of a worker with audit a; nil when off.
func newAuditPublisher(a config.Audit, nc *nats.Conn, log *slog.Logger) *auditPublisher {
	if !a.Enabled {
		return nil
	}
	return &auditPublisher{args: a.Arguments, nc: nc, log: log}
}

// auditCall records a tools/call rec (all the worker knows of it) that
// ended now with outcome. Other methods are not audited. The record is
// built (arguments hashed, JSON encoded) on the publisher's goroutine, not
// the call's.
func (w *Worker) auditCall(rec callRecord, outcome string) {
	p := w.audit
	if p == nil || rec.method != bus.MethodToolsCall {
		return
	}
	p.enqueue(w, auditItem{rec: rec, outcome: outcome, end: time.Now()})
}

// auditItem is a finished call waiting for its record to be built.
type auditItem struct {
	rec     callRecord
	outcome string
	end     time.Time
}

// auditRecord builds the record of rec, which ended at end.
func (w *Worker) auditRecord(rec callRecord, outcome string, end time.Time) bus.AuditRecord {
	received := rec.received
	if received.IsZero() {
		received = rec.start
	}
	r := bus.AuditRecord{
		Time:      received.UTC(),
		RequestID: rec.env.RequestID,
		KeyID:     rec.env.Caller.KeyID,
		KeyAlias:  rec.env.Caller.Alias,
		User:      rec.env.Caller.User,
		Team:      rec.env.Caller.Team,
		OrgID:     rec.env.Caller.Org,
		IPClass:   rec.env.IPClass,
		Server:    w.up.Name,
		Method:    rec.method,
		Tool:      rec.tool,
		Outcome:   outcome,
		ErrorCode: rec.errCode,
		Guards:    rec.guards,
		// µs resolution, as usage events
		DurationMS: float64(end.Sub(received).Microseconds()) / 1000,
	}
	if !rec.start.IsZero() {
		r.UpstreamMS = float64(end.Sub(rec.start).Microseconds()) / 1000
	}
	var params struct {
		Arguments json.RawMessage `json:"arguments"`
	}
	_ = json.Unmarshal(rec.params, &params) // params that are no object have no arguments
	r.SetArguments(w.audit.args, params.Arguments)
	return r
}

// auditOutcome is the outcome of a call the worker answered with status.
func auditOutcome(rec callRecord) string {
	switch {
	case rec.cancelled:
		return bus.AuditCancelled
	case rec.errCode == bus.ErrGuardBlocked.Code: // guards.go
		return bus.AuditDenied
	case rec.status == "ok":
		return bus.AuditOK
	}
	return bus.AuditError
}

// enqueue hands it to the publisher without ever waiting.
func (p *auditPublisher) enqueue(w *Worker, it auditItem) {
	if full, _ := p.offer(it, auditQueueSize, func() { go p.run(w) }); full {
		p.dropped.Add(1)
		p.warn("audit records dropped: the publish queue is full (is NATS slow or disconnected?)", nil)
	}
}

func (p *auditPublisher) warn(msg string, err error) {
	now := time.Now().UnixNano()
	prev := p.lastWarn.Load()
	if now-prev >= int64(usageWarnEvery) && p.lastWarn.CompareAndSwap(prev, now) {
		p.log.Warn(msg, "stream", bus.StreamAudit, "dropped_total", p.dropped.Load(), "failed_total", p.failed.Load(), "err", err)
	}
}

// run publishes queued records until close, then gives what is still queued
// or unacknowledged usageFlushWait to get out.
func (p *auditPublisher) run(w *Worker) {
	defer close(p.done)
	js, err := jetstream.New(p.nc,
		jetstream.WithPublishAsyncMaxPending(usageMaxPending),
		jetstream.WithPublishAsyncTimeout(usageAckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { p.stored.Add(1) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			p.failed.Add(1)
			p.warn("audit record not stored (is the stream there?)", err)
		}))
	if err != nil { // only bad options fail here
		p.log.Error("audit records off: no JetStream context", "err", err)
		<-p.stop
		return
	}
	defer js.CleanupPublisher()
	publish := func(it auditItem) {
		r := w.auditRecord(it.rec, it.outcome, it.end)
		data, err := json.Marshal(r)
		if err == nil {
			err = r.Validate()
		}
		if err == nil && !stalled(js) {
			m := &nats.Msg{Subject: bus.AuditSubject(r.Server, r.Outcome), Data: data, Header: nats.Header{}}
			m.Header.Set(jetstream.MsgIDHeader, r.RequestID)
			_, err = js.PublishMsgAsync(m)
		} else if err == nil {
			err = errUsageStalled
		}
		if err != nil {
			p.failed.Add(1)
			p.warn("audit record not stored", err)
		}
	}
	for {
		select {
		case it := <-p.queue:
			publish(it)
		case <-p.stop:
			deadline := time.NewTimer(usageFlushWait)
			defer deadline.Stop()
			p.flush(js, deadline, publish)
			return
		}
	}
}

// close stops the publisher after a last flush; later records are ignored.
func (p *auditPublisher) close() {
	if p != nil {
		p.publishQueue.close()
	}
}

// auditRefused records a tools/call the worker refused before sending it
// upstream: denied when the tool filter or the caller's tool permissions
// refused it, else error (a missing per-user credential, bad parameter
// headers, ...). received is zero with audit off.
func (w *Worker) auditRefused(env bus.Envelope, msg *bus.Message, tool string, received time.Time, e *bus.Error) {
	if w.audit == nil {
		return
	}
	outcome := bus.AuditError
	if e.Kind == bus.ErrToolNotAllowed || e.Kind == bus.ErrNotPermitted {
		outcome = bus.AuditDenied
	}
	w.auditCall(callRecord{env: env, method: msg.Method, tool: tool, received: received, params: msg.Params, errCode: e.Kind.Code}, outcome)
}
