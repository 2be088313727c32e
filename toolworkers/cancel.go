package toolworkers

// Cancelling calls in flight. Every call is registered under its envelope
// request id while it runs, so that
//
//   - bus.SubjectCancel (the request id of a call whose key was revoked, or
//     of a stateless-era call whose client went away) and
//   - bus.SubjectCancelRequest (a client's notifications/cancelled, as a
//     bus.CancelRequest: same session, same key, same JSON-RPC id)
//
// end its context. The upstream client then tells the upstream with
// notifications/cancelled for the id it used on its leg. A call cancelled by
// its client answers with an error saying so (the client ignores it, as the
// spec says; it only keeps the router from waiting). A dropped HTTP
// connection cancels only a stateless-era call (there, closing the stream is
// the cancellation); for a session's call the ingress sends nothing.

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// inflightCall is one registered call. Pooled: registering costs the hot
// path no allocation. mu guards against a canceller that found the entry
// just as its call ended and the entry went to another call.
type inflightCall struct {
	mu       sync.Mutex
	live     bool
	cancel   context.CancelFunc
	session  string
	keyID    string
	id       json.RawMessage
	byClient bool
}

var inflightPool = sync.Pool{New: func() any { return new(inflightCall) }}

// track registers a call; the result goes to untrack when the call ends.
func (w *Worker) track(env *bus.Envelope, id json.RawMessage, cancel context.CancelFunc) *inflightCall {
	c := inflightPool.Get().(*inflightCall)
	c.mu.Lock()
	c.live, c.cancel, c.session, c.keyID, c.id, c.byClient = true, cancel, env.Session, env.Caller.KeyID, id, false
	c.mu.Unlock()
	if env.RequestID != "" {
		w.inflight.Store(env.RequestID, c)
	}
	return c
}

func (w *Worker) untrack(requestID string, c *inflightCall) {
	if requestID != "" {
		w.inflight.CompareAndDelete(requestID, c)
	}
	c.mu.Lock()
	c.live, c.cancel, c.session, c.keyID, c.id = false, nil, "", "", nil
	c.mu.Unlock()
	inflightPool.Put(c)
}

// cancelledByClient reports whether the client cancelled the call.
func (c *inflightCall) cancelledByClient() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byClient
}

// stop cancels the call if it is still live (and, if match is set, matches).
func (c *inflightCall) stop(match func(*inflightCall) bool, byClient bool) bool {
	c.mu.Lock()
	if !c.live || (match != nil && !match(c)) {
		c.mu.Unlock()
		return false
	}
	c.byClient = c.byClient || byClient
	cancel := c.cancel
	c.mu.Unlock()
	cancel()
	return true
}

// onCancel ends the call with the request id in the message (a revoked key,
// or a stateless-era client that went away).
func (w *Worker) onCancel(m *nats.Msg) {
	if v, ok := w.inflight.Load(string(m.Data)); ok && v.(*inflightCall).stop(nil, false) {
		w.log.Info("cancelling an in-flight call", "request_id", string(m.Data))
	}
}

// onCancelRequest ends the call a client's notifications/cancelled names.
func (w *Worker) onCancelRequest(m *nats.Msg) {
	var cr bus.CancelRequest
	if json.Unmarshal(m.Data, &cr) != nil || len(cr.ID) == 0 {
		return
	}
	want := bus.CanonicalID(cr.ID)
	if want == "" {
		return
	}
	match := func(c *inflightCall) bool {
		return c.session == cr.Session && c.keyID == cr.KeyID && bus.CanonicalID(c.id) == want
	}
	w.inflight.Range(func(k, v any) bool {
		if v.(*inflightCall).stop(match, true) {
			w.log.Info("the client cancelled an in-flight call", "request_id", k)
			return false
		}
		return true
	})
}

// clientCancelled is the answer to a call its client cancelled.
func (w *Worker) clientCancelled(id json.RawMessage) *bus.Error {
	return bus.Errorf(bus.ErrUpstreamUnavailable, "request %s was cancelled by the client (notifications/cancelled); upstream server %q was told to stop", id, w.up.Name)
}
