package toolworkers

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// publishQueue is the queue of a worker's stream publisher (usage events,
// audit records): bounded, never waited on, drained by one goroutine that
// starts with the first item and, on close, stops after a last flush.
type publishQueue[T any] struct {
	mu      sync.Mutex
	started bool
	closed  bool
	queue   chan T // made with the first item, unless already made (tests)
	stop    chan struct{}
	done    chan struct{}
}

// offer hands v over without waiting. On the first item it makes the queue
// (size) and calls start, under its lock, which starts the goroutine (that
// closes q.done when it returns). full is true when the queue had no room
// (v is lost); after close v is ignored.
func (q *publishQueue[T]) offer(v T, size int, start func()) (full bool, queue chan T) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false, nil
	}
	if !q.started {
		q.started = true
		if q.queue == nil {
			q.queue = make(chan T, size)
		}
		q.stop, q.done = make(chan struct{}), make(chan struct{})
		start()
	}
	queue = q.queue
	q.mu.Unlock()
	select {
	case queue <- v:
		return false, queue
	default:
		return true, queue
	}
}

// close stops the goroutine after its last flush; later items are ignored.
func (q *publishQueue[T]) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	started := q.started
	q.mu.Unlock()
	if started {
		close(q.stop)
		<-q.done
	}
}

// flush publishes what is still queued, then waits until js has its
// acknowledgements or deadline fires, whichever comes first.
func (q *publishQueue[T]) flush(js jetstream.JetStream, deadline *time.Timer, publish func(T)) {
	for {
		select {
		case <-deadline.C:
			return
		case v := <-q.queue:
			publish(v)
		default:
			select {
			case <-js.PublishAsyncComplete():
			case <-deadline.C:
			}
			return
		}
	}
}
