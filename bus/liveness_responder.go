package bus

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// The responder's side of liveness (liveness.go), for any service a request
// with HeaderAcceptBy reaches (tool workers, the router): acknowledge as
// soon as the request is taken from the bus, send a heartbeat every
// HeartbeatEvery until it is answered, and drop one taken after its
// accept-by time (it waited in a frozen process's buffers, and its sender
// has given it to another replica or up) before doing anything else.

// Responder keeps the heartbeats of one service's running requests.
type Responder struct {
	nc      *nats.Conn
	id      string // its HeaderResponder; "" when it could not take recalls
	recall  *nats.Subscription
	mu      sync.Mutex
	replies map[string]beat // reply subject -> the requests running under it
	// Answers kept for a recall (liveness_recall.go), oldest first.
	kept      map[string]*kept
	keptOrder []*kept
	keptBytes int
	started   bool
	closed    bool
	stop      chan struct{}
	done      chan struct{}
	// Late counts requests dropped for arriving after their accept-by.
	Late atomic.Uint64
	// Recalled counts answers sent again for a recall.
	Recalled atomic.Uint64
}

type beat struct {
	acceptBy string
	n        int
}

// NewResponder makes the liveness responder of a service on nc. It takes
// recalls on its own subject; if it cannot subscribe, it runs without (its
// senders then fail a call whose answer was lost as lost).
func NewResponder(nc *nats.Conn) *Responder {
	r := &Responder{nc: nc}
	id := responderID()
	if sub, err := nc.Subscribe(RecallSubject(id), r.onRecall); err == nil {
		r.id, r.recall = id, sub
	}
	return r
}

// Take is the liveness step of taking req from the bus: false when the
// request is dropped (too late: ProgressExpired is sent). A request that
// asks for liveness is acknowledged, and its heartbeats run until the
// returned func is called.
func (r *Responder) Take(req micro.Request) (ok bool, finished func()) {
	h := nats.Header(req.Headers())
	acceptBy, live := AcceptBy(h)
	if !live || req.Reply() == "" {
		return true, func() {}
	}
	tag := h.Get(HeaderAcceptBy)
	if time.Now().After(acceptBy) {
		r.expired(req.Reply(), tag)
		r.Late.Add(1)
		return false, nil
	}
	r.progress(req.Reply(), ProgressAccepted, tag)
	r.add(req.Reply(), tag)
	return true, func() { r.remove(req.Reply()) }
}

func (r *Responder) add(reply, acceptBy string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.replies == nil {
		r.replies = map[string]beat{}
	}
	b := r.replies[reply]
	b.acceptBy = acceptBy
	b.n++
	r.replies[reply] = b
	if !r.started && !r.closed {
		r.started = true
		r.stop, r.done = make(chan struct{}), make(chan struct{})
		go r.run(r.stop, r.done)
	}
}

func (r *Responder) remove(reply string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.replies[reply]; b.n <= 1 {
		delete(r.replies, reply)
	} else {
		b.n--
		r.replies[reply] = b
	}
}

func (r *Responder) run(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	type target struct{ reply, acceptBy string }
	var batch []target
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		batch = batch[:0]
		for reply, b := range r.replies {
			batch = append(batch, target{reply, b.acceptBy})
		}
		r.mu.Unlock()
		for _, b := range batch {
			r.progress(b.reply, ProgressRunning, b.acceptBy)
		}
	}
}

// Close stops the heartbeats; a later request does not start them again.
func (r *Responder) Close() {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.closed = true
	r.stop = nil
	r.mu.Unlock()
	if r.recall != nil {
		_ = r.recall.Unsubscribe()
	}
	if stop != nil {
		close(stop)
		<-done
	}
}
