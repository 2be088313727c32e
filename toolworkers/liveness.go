package toolworkers

import (
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Liveness, the worker's side (bus/liveness.go): a request that asks for it
// is acknowledged as soon as this replica takes it from the bus, and gets a
// heartbeat every bus.HeartbeatEvery until it is answered, so its sender
// learns within seconds that this replica died or froze. A request taken
// after its accept-by time (it waited in a frozen process's buffers, and its
// sender has given it to another replica or up) is dropped before anything
// else: it never reaches the upstream or counts toward the breaker.

// heartbeats sends the heartbeats of one worker's running calls.
type heartbeats struct {
	nc      *nats.Conn
	mu      sync.Mutex
	replies map[string]beat // reply subject -> the calls running under it
	started bool
	stop    chan struct{}
	done    chan struct{}
}

// beat is what a reply subject's heartbeats say: the accept-by they echo,
// and how many calls run under it.
type beat struct {
	acceptBy string
	calls    int
}

func (b *heartbeats) add(reply, acceptBy string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.replies == nil {
		b.replies = map[string]beat{}
	}
	r := b.replies[reply]
	r.acceptBy = acceptBy
	r.calls++
	b.replies[reply] = r
	if !b.started && b.stop == nil {
		b.started = true
		b.stop, b.done = make(chan struct{}), make(chan struct{})
		go b.run(b.stop, b.done)
	}
}

func (b *heartbeats) remove(reply string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.replies[reply]; r.calls <= 1 {
		delete(b.replies, reply)
	} else {
		r.calls--
		b.replies[reply] = r
	}
}

func (b *heartbeats) run(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(bus.HeartbeatEvery)
	defer t.Stop()
	type target struct{ reply, acceptBy string }
	var batch []target
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		batch = batch[:0]
		for r, v := range b.replies {
			batch = append(batch, target{r, v.acceptBy})
		}
		b.mu.Unlock()
		for _, r := range batch {
			bus.Progress(b.nc, r.reply, bus.ProgressRunning, r.acceptBy)
		}
	}
}

// close stops the heartbeats; a later add does not start them again.
func (b *heartbeats) close() {
	b.mu.Lock()
	stop, done := b.stop, b.done
	if stop == nil {
		b.stop = make(chan struct{}) // marks closed
	}
	b.mu.Unlock()
	if stop != nil && done != nil {
		close(stop)
		<-done
	}
}

// takeLive is the liveness step of taking req from the bus: false when the
// request is dropped (too late). A request that asks for liveness is
// acknowledged, and its heartbeats run until the returned func is called.
func (w *Worker) takeLive(req micro.Request) (ok bool, finished func()) {
	h := nats.Header(req.Headers())
	acceptBy, live := bus.AcceptBy(h)
	if !live || req.Reply() == "" {
		return true, func() {}
	}
	tag := h.Get(bus.HeaderAcceptBy)
	if time.Now().After(acceptBy) {
		bus.Progress(w.nc, req.Reply(), bus.ProgressExpired, tag)
		w.log.Debug("request dropped: taken after its accept-by time (this replica was late; its sender has moved on)",
			"late_by", time.Since(acceptBy).Round(time.Millisecond))
		w.lateDropped.Add(1)
		return false, nil
	}
	bus.Progress(w.nc, req.Reply(), bus.ProgressAccepted, tag)
	w.beats.add(req.Reply(), tag)
	return true, func() { w.beats.remove(req.Reply()) }
}
