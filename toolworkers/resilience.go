package toolworkers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// limiter bounds one server's concurrent calls in this worker replica
// (max_concurrent_requests). Calls beyond it wait, at most maxQueued of them
// and at most until their own deadline; past either they fail with a clear
// error instead of piling up unseen.
type limiter struct {
	server    string
	slots     chan struct{}
	waiting   atomic.Int64
	maxQueued int64
}

// newLimiter returns nil (no bound) when max is 0.
func newLimiter(server string, max, maxQueued int) *limiter {
	if max <= 0 {
		return nil
	}
	return &limiter{server: server, slots: make(chan struct{}, max), maxQueued: int64(maxQueued)}
}

// acquire takes a slot and returns its release.
func (l *limiter) acquire(ctx context.Context) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	release := func() { <-l.slots }
	select {
	case l.slots <- struct{}{}:
		return release, nil
	default:
	}
	if l.waiting.Add(1) > l.maxQueued {
		l.waiting.Add(-1)
		return nil, bus.Errorf(bus.ErrUpstreamBusy, "upstream server %q is at its limit of %d concurrent calls and %d waiting; try again later",
			l.server, cap(l.slots), l.maxQueued)
	}
	defer l.waiting.Add(-1)
	select {
	case l.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, bus.Errorf(bus.ErrUpstreamBusy, "upstream server %q had no free call slot (limit %d) before the call's deadline", l.server, cap(l.slots))
	}
}

// inFlight and queued report the limiter's state (for metrics and tests).
func (l *limiter) inFlight() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}

func (l *limiter) queued() int {
	if l == nil {
		return 0
	}
	return int(l.waiting.Load())
}

// breaker is a circuit breaker per server and replica: after threshold
// consecutive failures it opens and fails calls at once for cooldown, then lets
// one probe call through (half-open); the probe's outcome closes or re-opens it.
// Failures are the gateway's view of an unhealthy upstream: it is unreachable,
// too slow, or speaks broken MCP. A JSON-RPC error from the upstream is an
// answer, not a failure.
type breaker struct {
	server    string
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	open      bool
	openedAt  time.Time
	downSince time.Time
	probing   bool
}

func newBreaker(server string, threshold int, cooldown time.Duration) *breaker {
	return &breaker{server: server, threshold: threshold, cooldown: cooldown, now: time.Now}
}

// allow admits a call or refuses it with the reason. An admitted call must
// report its outcome with the returned done.
func (b *breaker) allow() (done func(err error), refused error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		now := b.now()
		if now.Before(b.openedAt.Add(b.cooldown)) || b.probing {
			return nil, bus.Errorf(bus.ErrUpstreamUnavailable,
				"upstream server %q is unavailable since %s (%d consecutive failures); the gateway tries it again after %s",
				b.server, b.downSince.UTC().Format(time.RFC3339), b.failures, b.openedAt.Add(b.cooldown).UTC().Format(time.RFC3339))
		}
		b.probing = true
		return b.report(true), nil
	}
	return b.report(false), nil
}

// errCancelled reports a call that was cancelled (its key revoked): it says
// nothing about the upstream's health, so it neither counts nor resets.
var errCancelled = errors.New("call cancelled")

func (b *breaker) report(probe bool) func(error) {
	return func(err error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if probe {
			b.probing = false
		}
		if err == errCancelled {
			return
		}
		if !countsAsFailure(err) {
			b.failures, b.open = 0, false
			return
		}
		b.failures++
		if probe || b.failures >= b.threshold {
			if !b.open {
				b.downSince = b.now()
			}
			b.open, b.openedAt = true, b.now()
		}
	}
}

// state is "closed", "open" or "half-open" (for metrics and tests).
func (b *breaker) state() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return "closed"
	case b.probing || !b.now().Before(b.openedAt.Add(b.cooldown)):
		return "half-open"
	}
	return "open"
}

func countsAsFailure(err error) bool {
	if err == nil {
		return false
	}
	switch bus.AsError(err).Kind {
	case bus.ErrUpstreamUnavailable, bus.ErrUpstreamTimeout, bus.ErrUpstreamProtocol, bus.ErrInternal:
		return true
	}
	return false
}

// retryable reports whether a failed call may be sent again: only list calls,
// only once, and only when the upstream could not be reached (a timeout has
// spent the deadline; a tools/call may have had effects and is never retried).
func retryable(method string, err error) bool {
	switch method {
	case bus.MethodToolsList, bus.MethodPromptsList, bus.MethodResourcesList, bus.MethodResourcesTemplatesList:
		return bus.AsError(err).Kind == bus.ErrUpstreamUnavailable
	}
	return false
}
