package ingress

import (
	"sync"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// maxQueued bounds the messages waiting for one slow client. Past it new ones
// are dropped (and a server-to-client request among them is not acknowledged,
// so its worker tells the upstream the client is unreachable) rather than
// holding up the one dispatcher every stream of the process shares.
const maxQueued = 1024

// sink collects the messages bound for one client stream: a POST's related
// messages and its answer (streams.go), or a session's GET stream (events.go).
// Producers never block; the stream's handler waits on wake and takes what
// has arrived, in arrival order.
type sink struct {
	mu      sync.Mutex
	queue   []*nats.Msg
	reply   *nats.Msg // the router's answer to a POST (hub sinks only)
	dropped int
	wake    chan struct{} // capacity 1: "something arrived"
	// Liveness of a POST sent straight to a server's workers
	// (bus/liveness.go): the accept-by of the current try, how many
	// acknowledgements and heartbeats came for it, and whether a worker
	// dropped it as too late.
	liveTag  string
	beats    int
	expired  bool
	lastLive nats.Header // the last liveness message's header (HeaderResponder, HeaderNow)
}

func newSink() *sink { return &sink{wake: make(chan struct{}, 1)} }

// push queues a message for the client and wakes the handler. It reports
// false when the message was dropped: the queue is full, or the POST it
// relates to has its answer already (the answer ends that stream).
func (s *sink) push(m *nats.Msg) bool {
	s.mu.Lock()
	if len(s.queue) >= maxQueued || s.reply != nil {
		s.dropped++
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	s.signal()
	return true
}

// answer records the router's reply and wakes the handler. A worker's
// liveness message for the current try is counted instead.
func (s *sink) answer(m *nats.Msg) {
	if p := m.Header.Get(bus.HeaderProgress); p != "" {
		s.mu.Lock()
		if s.liveTag != "" && m.Header.Get(bus.HeaderAcceptBy) == s.liveTag {
			if p == bus.ProgressExpired {
				s.expired = true
			} else {
				s.beats++
			}
			s.lastLive = m.Header
		}
		s.mu.Unlock()
		s.signal()
		return
	}
	s.mu.Lock()
	if s.reply == nil {
		s.reply = m
	}
	s.mu.Unlock()
	s.signal()
}

// lost is how many messages were dropped (the queue was full).
func (s *sink) lost() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// try starts a try of a live send with accept-by tag ("" for none).
func (s *sink) try(tag string) {
	s.mu.Lock()
	s.liveTag, s.beats, s.expired, s.lastLive = tag, 0, false, nil
	s.mu.Unlock()
}

// liveness is what the current try's worker said so far: how many
// acknowledgements and heartbeats, whether it dropped the try as too late,
// and the last liveness message's header.
func (s *sink) liveness() (beats int, expired bool, last nats.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.beats, s.expired, s.lastLive
}

// retract forgets the reply taken last, so the next one can be recorded: a
// POST whose direct send was refused asks the router again (target.go).
func (s *sink) retract() {
	s.mu.Lock()
	s.reply = nil
	s.mu.Unlock()
}

func (s *sink) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the queued messages (in arrival order; all arrived before
// reply, if it is set) and the reply, if in. buf is reused for the
// returned slice so a long stream does not allocate per batch.
func (s *sink) take(buf []*nats.Msg) ([]*nats.Msg, *nats.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = append(buf[:0], s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	return buf, s.reply
}

// reset empties the sink for reuse.
func (s *sink) reset() {
	s.mu.Lock()
	clear(s.queue)
	s.queue = s.queue[:0]
	s.reply = nil
	s.dropped = 0
	s.liveTag, s.beats, s.expired = "", 0, false
	s.mu.Unlock()
	select {
	case <-s.wake:
	default:
	}
}
