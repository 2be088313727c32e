package upstream

// Resource subscriptions on a stateless-era server (MCP 2026-07-28), which
// has no resources/subscribe: the client's one subscriptions/listen
// (listen.go) carries them as resourceSubscriptions. A resources/subscribe
// sent through the client (the worker's shared link subscribes once per URI,
// for every session and listen lease that wants it) adds the URI and
// reopens the listen with the new set; it succeeds once the server's
// acknowledgement agrees to the URI, and fails with the server's refusal
// (-32602) when it does not. resources/unsubscribe removes the URI and
// reopens the listen without it. The server's resources/updated reaches
// Events like a session's, with its URI.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
)

// errListenRestart ends a listen the subscriptions changed under: reopen it
// at once, with no backoff.
var errListenRestart = errors.New("the resource subscriptions changed")

// resourceSubs are the URIs the client's listen asks for, the generation
// of that set, and what the server agreed to for the generation it last
// acknowledged.
type resourceSubs struct {
	mu      sync.Mutex
	uris    map[string]bool
	gen     uint64
	restart context.CancelFunc // ends the open listen (nil: none open)
	acked   uint64             // the generation of the last acknowledgement
	agreed  map[string]bool
	refused bool          // the server refused subscriptions/listen itself
	wake    chan struct{} // closed on every change and acknowledgement
}

// notifyLocked wakes everyone waiting for a change; mu is held.
func (r *resourceSubs) notifyLocked() {
	if r.wake != nil {
		close(r.wake)
	}
	r.wake = make(chan struct{})
}

// changed returns a channel closed at the next change or acknowledgement.
func (r *resourceSubs) changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	return r.wake
}

// open snapshots the set for a listen about to open under parent: its
// sorted URIs, their generation and the context that a change ends.
func (r *resourceSubs) open(parent context.Context) ([]string, uint64, context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithCancel(parent)
	r.restart = cancel
	uris := make([]string, 0, len(r.uris))
	for u := range r.uris {
		uris = append(uris, u)
	}
	slices.Sort(uris)
	return uris, r.gen, ctx
}

// ack records the server's acknowledgement of the listen of generation gen.
func (r *resourceSubs) ack(gen uint64, agreed []string, refused bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen < r.acked {
		return
	}
	r.acked, r.refused = gen, refused
	r.agreed = map[string]bool{}
	for _, u := range agreed {
		r.agreed[u] = true
	}
	r.notifyLocked()
}

// change adds or removes uri and ends the open listen, so that it reopens
// with the new set; it returns the new generation.
func (r *resourceSubs) change(uri string, add bool) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.uris == nil {
		r.uris = map[string]bool{}
	}
	if add {
		r.uris[uri] = true
	} else {
		delete(r.uris, uri)
	}
	r.gen++
	if r.restart != nil {
		r.restart()
	}
	r.notifyLocked()
	return r.gen
}

// outcome reports, for generation gen, whether the server acknowledged it
// yet, and if so whether it agreed to uri.
func (r *resourceSubs) outcome(gen uint64, uri string) (done, agreed, refused bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused {
		return true, false, true
	}
	return r.acked >= gen, r.agreed[uri], false
}

// subscribable reports whether a discover result (initialize's shape)
// declares resource subscriptions.
func subscribable(info json.RawMessage) bool {
	var i struct {
		Capabilities struct {
			Resources struct {
				Subscribe bool `json:"subscribe"`
			} `json:"resources"`
		} `json:"capabilities"`
	}
	return json.Unmarshal(info, &i) == nil && i.Capabilities.Resources.Subscribe
}

// resourceSubscription answers resources/subscribe or unsubscribe (request
// id) for a stateless-era server through the listen of modern session s.
func (c *streamableClient) resourceSubscription(ctx context.Context, s *session, method string, params json.RawMessage, id int64) (*bus.Message, error) {
	rid := json.RawMessage(fmt.Sprint(id))
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(params, &p) != nil || p.URI == "" {
		return rpcError(rid, CodeInvalidParams, method+": params.uri is required"), nil
	}
	if !subscribable(s.init) || c.events == nil {
		return rpcError(rid, CodeMethodNotFound, "upstream server does not support resource subscriptions"), nil
	}
	if method == bus.MethodResourcesUnsubscribe {
		c.res.change(p.URI, false)
		return &bus.Message{JSONRPC: "2.0", ID: rid, Result: json.RawMessage(`{}`)}, nil
	}
	gen := c.res.change(p.URI, true)
	c.listenFor(s) // a listen with nothing to hear before did not open
	for {
		wake := c.res.changed()
		done, agreed, refused := c.res.outcome(gen, p.URI)
		switch {
		case refused:
			c.res.change(p.URI, false)
			return rpcError(rid, CodeMethodNotFound, "upstream server refused subscriptions/listen, so no resource subscription"), nil
		case done && agreed:
			return &bus.Message{JSONRPC: "2.0", ID: rid, Result: json.RawMessage(`{}`)}, nil
		case done:
			c.res.change(p.URI, false)
			return rpcError(rid, CodeInvalidParams, "upstream server did not agree to subscribe to "+bus.Shorten(p.URI, 256)), nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			c.res.change(p.URI, false)
			return nil, c.classify(ctx, ctx.Err())
		}
	}
}

// rpcError is a JSON-RPC error response.
func rpcError(id json.RawMessage, code int, message string) *bus.Message {
	e, _ := json.Marshal(map[string]any{"code": code, "message": message})
	return &bus.Message{JSONRPC: "2.0", ID: id, Error: e}
}
