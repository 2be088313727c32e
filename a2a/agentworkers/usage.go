package agentworkers

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Usage events of agent calls (docs/USAGE.md): one per call that reached
// the agent, published to bus.AgentUsageSubject with the request id as
// Nats-Msg-Id (the stream drops a second copy). They leave the call path
// at once: a bounded queue (a send that never waits) and one goroutine
// that publishes each and waits for the stream's acknowledgement. What
// cannot be kept (queue full, no acknowledgement) is counted and warned
// about, at most once per usageWarnEvery; nothing here fails or slows a
// call. Agent calls are far fewer than tool calls, so this publisher does
// not keep a retry buffer as the tool workers' does.
const (
	usageQueueSize  = 1024
	usageAckTimeout = 5 * time.Second
	usageWarnEvery  = 10 * time.Second
	usageFlushWait  = 2 * time.Second
)

type usagePublisher struct {
	nc          *nats.Conn
	log         *slog.Logger
	queue       chan bus.UsageEvent
	done        chan struct{}
	closeOnce   sync.Once
	stored      atomic.Uint64
	lost        atomic.Uint64
	lastWarning atomic.Int64
}

func newUsagePublisher(nc *nats.Conn, log *slog.Logger) *usagePublisher {
	p := &usagePublisher{nc: nc, log: log, queue: make(chan bus.UsageEvent, usageQueueSize), done: make(chan struct{})}
	go p.run()
	return p
}

// usageEvent is the call's event, ended at end.
func (c *call) usageEvent(start, end time.Time) bus.UsageEvent {
	status := c.status
	if status == "" {
		status = "failed"
	}
	return bus.UsageEvent{
		Time: start.UTC(), RequestID: c.env.RequestID,
		KeyID: c.env.Caller.KeyID, KeyAlias: c.env.Caller.Alias, Team: c.env.Caller.Team,
		Kind: bus.UsageKindAgent, Server: c.a.c.Name, Method: c.method, Status: status,
		DurationMS: float64(end.Sub(start).Microseconds()) / 1000,
		BytesIn:    c.bytesIn, BytesOut: c.bytesOut, IPClass: c.env.IPClass, ErrorCode: c.errCode,
	}
}

// enqueue hands ev to the publisher without waiting.
func (p *usagePublisher) enqueue(ev bus.UsageEvent) {
	select {
	case p.queue <- ev:
	default:
		p.drop("the usage queue is full (is NATS slow or disconnected?)", nil)
	}
}

func (p *usagePublisher) run() {
	defer close(p.done)
	js, err := jetstream.New(p.nc)
	if err != nil {
		p.log.Error("agent usage events off: no JetStream context", "err", err)
		for range p.queue {
			p.lost.Add(1)
		}
		return
	}
	for ev := range p.queue {
		data, err := json.Marshal(ev)
		if err != nil {
			p.drop("an event could not be encoded", err)
			continue
		}
		m := &nats.Msg{Subject: bus.AgentUsageSubject(ev.Team, ev.Server, ev.Method), Data: data, Header: nats.Header{}}
		if ev.RequestID != "" {
			m.Header.Set(jetstream.MsgIDHeader, ev.RequestID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), usageAckTimeout)
		_, err = js.PublishMsg(ctx, m)
		cancel()
		if err != nil {
			p.drop("the "+bus.StreamUsage+" stream did not store an event (is it there?)", err)
			continue
		}
		p.stored.Add(1)
	}
}

// drop counts a lost event and warns, at most once per usageWarnEvery.
func (p *usagePublisher) drop(why string, err error) {
	n := p.lost.Add(1)
	now := time.Now().UnixNano()
	if prev := p.lastWarning.Load(); now-prev >= int64(usageWarnEvery) && p.lastWarning.CompareAndSwap(prev, now) {
		p.log.Warn("agent usage events lost: "+why, "lost_total", n, "err", err)
	}
}

// close stops taking events and gives those queued usageFlushWait to go out.
func (p *usagePublisher) close() {
	p.closeOnce.Do(func() {
		close(p.queue)
		select {
		case <-p.done:
		case <-time.After(usageFlushWait):
		}
	})
}
