package toolworkers

import "github.com/nats-io/nats.go/micro"

// Liveness, the worker's side (bus.Responder): a request that asks for it is
// acknowledged as soon as this replica takes it from the bus, and gets a
// heartbeat until it is answered, so its sender learns within seconds that
// this replica died or froze. A request taken after its accept-by time is
// dropped before anything else: it never reaches the upstream or counts
// toward the breaker.
func (w *Worker) takeLive(req micro.Request) (ok bool, finished func()) {
	ok, finished = w.beats.Take(req)
	if !ok {
		w.log.Debug("request dropped: taken after its accept-by time (this replica was late; its sender has moved on)")
	}
	return ok, finished
}
