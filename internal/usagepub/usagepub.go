// Package usagepub publishes usage events (bus.UsageEvent) off the call
// path, for the services whose calls are few beside tool calls (LLM and
// agent calls): a bounded queue (a send that never waits) and one
// goroutine that publishes each event with its request id as Nats-Msg-Id
// (the stream drops a second copy) and waits for the stream's
// acknowledgement. What cannot be kept (queue full, no acknowledgement) is
// counted and warned about, at most once per WarnEvery; nothing here fails
// or slows a call. The tool workers' publisher (toolworkers/usage.go) adds
// a retry buffer for their volume.
package usagepub

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

const (
	QueueSize  = 1024
	AckTimeout = 5 * time.Second
	WarnEvery  = 10 * time.Second
	FlushWait  = 2 * time.Second
)

// Publisher is one service's publisher.
type Publisher struct {
	nc          *nats.Conn
	log         *slog.Logger
	what        string                         // names the events in warnings ("agent", "LLM")
	subject     func(ev bus.UsageEvent) string // where an event goes
	mu          sync.RWMutex                   // closed and the queue's close
	closed      bool
	queue       chan bus.UsageEvent
	done        chan struct{}
	closeOnce   sync.Once
	stored      atomic.Uint64
	lost        atomic.Uint64
	lastWarning atomic.Int64
}

// New starts a publisher of events (named what in warnings) to the
// subject subject gives each.
func New(nc *nats.Conn, log *slog.Logger, what string, subject func(bus.UsageEvent) string) *Publisher {
	p := &Publisher{nc: nc, log: log, what: what, subject: subject, queue: make(chan bus.UsageEvent, QueueSize), done: make(chan struct{})}
	go p.run()
	return p
}

// Enqueue hands ev to the publisher without waiting; after Close, the
// event is lost (counted).
func (p *Publisher) Enqueue(ev bus.UsageEvent) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.lost.Add(1)
		return
	}
	select {
	case p.queue <- ev:
	default:
		p.drop("the usage queue is full (is NATS slow or disconnected?)", nil)
	}
}

// Stats reports the events stored and lost since the start.
func (p *Publisher) Stats() (stored, lost uint64) { return p.stored.Load(), p.lost.Load() }

func (p *Publisher) run() {
	defer close(p.done)
	js, err := jetstream.New(p.nc)
	if err != nil {
		p.log.Error(p.what+" usage events off: no JetStream context", "err", err)
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
		m := &nats.Msg{Subject: p.subject(ev), Data: data, Header: nats.Header{}}
		if ev.RequestID != "" {
			m.Header.Set(jetstream.MsgIDHeader, ev.RequestID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), AckTimeout)
		_, err = js.PublishMsg(ctx, m)
		cancel()
		if err != nil {
			p.drop("the "+bus.StreamUsage+" stream did not store an event (is it there?)", err)
			continue
		}
		p.stored.Add(1)
	}
}

// drop counts a lost event and warns, at most once per WarnEvery.
func (p *Publisher) drop(why string, err error) {
	n := p.lost.Add(1)
	now := time.Now().UnixNano()
	if prev := p.lastWarning.Load(); now-prev >= int64(WarnEvery) && p.lastWarning.CompareAndSwap(prev, now) {
		p.log.Warn(p.what+" usage events lost: "+why, "lost_total", n, "err", err)
	}
}

// Close stops taking events and gives those queued FlushWait to go out.
// It may be called more than once.
func (p *Publisher) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.queue)
		p.mu.Unlock()
		select {
		case <-p.done:
		case <-time.After(FlushWait):
		}
	})
}
