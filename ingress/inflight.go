package ingress

import (
	"context"
	"errors"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// errRevoked is the cancellation cause of calls whose key was revoked.
var errRevoked = errors.New("key revoked")

// errShutdown is the cancellation cause of calls still running when the
// gateway's drain time ran out (Abort).
var errShutdown = errors.New("gateway shutting down")

// inflight tracks the calls in progress per key id, so that when a key is
// revoked (deleted, blocked, expired) its calls end at once, on every ingress.
type inflight struct {
	mu    sync.Mutex
	byKey map[string]map[string]context.CancelCauseFunc // key id -> request id -> cancel
}

func (f *inflight) add(keyID, requestID string, cancel context.CancelCauseFunc) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byKey == nil {
		f.byKey = map[string]map[string]context.CancelCauseFunc{}
	}
	if f.byKey[keyID] == nil {
		f.byKey[keyID] = map[string]context.CancelCauseFunc{}
	}
	f.byKey[keyID][requestID] = cancel
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.byKey[keyID], requestID)
		if len(f.byKey[keyID]) == 0 {
			delete(f.byKey, keyID)
		}
	}
}

// revoke cancels every call of keyID and returns their request ids.
func (f *inflight) revoke(keyID string) []string {
	f.mu.Lock()
	calls := f.byKey[keyID]
	delete(f.byKey, keyID)
	f.mu.Unlock()
	ids := make([]string, 0, len(calls))
	for id, cancel := range calls {
		cancel(errRevoked)
		ids = append(ids, id)
	}
	return ids
}

// abortAll cancels every call with cause and says how many there were.
func (f *inflight) abortAll(cause error) int {
	f.mu.Lock()
	all := f.byKey
	f.byKey = nil
	f.mu.Unlock()
	n := 0
	for _, calls := range all {
		for _, cancel := range calls {
			cancel(cause)
			n++
		}
	}
	return n
}

// Abort ends every call and stream still open on this ingress with a
// JSON-RPC error saying the gateway is stopping (the drain time ran out),
// and returns how many it ended. Their handlers then answer and return.
func (g *Ingress) Abort() int {
	return g.calls.abortAll(errShutdown)
}

// startRevocationWatch is called by New; it follows key revocations so a revoked
// key's in-flight calls are cancelled here and, through bus.SubjectCancel, at
// the workers running them upstream.
func (g *Ingress) startRevocationWatch() {
	sub, err := g.nc.Subscribe(bus.SubjectKeyRevoked, func(m *nats.Msg) {
		keyID := string(m.Data)
		if g.verified != nil {
			g.verified.clear()
		}
		for _, id := range g.calls.revoke(keyID) {
			_ = g.nc.Publish(bus.SubjectCancel, []byte(id))
			g.log.Info("cancelled an in-flight call of a revoked key", "request_id", id)
		}
	})
	if err != nil {
		g.log.Error("cannot follow key revocations; in-flight calls of revoked keys will run to the end", "err", err)
		return
	}
	g.revocations = sub
}
