package llmrouter

import (
	"net/http"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// Cooldowns, LiteLLM's rule (router_utils/cooldown_handlers.py): a
// deployment that fails is left out of its group's picks for cooldown_time
// (default 5 s) when
//
//   - the provider refused its key or does not know its model (401, 403,
//     404), or rate-limited it (429): at once;
//   - with allowed_fails set: it failed more than that many times this
//     minute;
//   - otherwise: more than half its calls this minute failed, and there
//     were at least 5.
//
// A group of one deployment is never cooled (there is nothing else to
// try), and a request the provider refused for what it asked (400, a
// context window, a content policy) counts as no failure of the
// deployment. Each router replica keeps its own cooldowns.

// DefaultCooldown applies when cooldown_time is unset.
const DefaultCooldown = 5 * time.Second

// minCallsForRate is the least calls in a minute before the failure rate
// can cool a deployment.
const minCallsForRate = 5

type health struct {
	mu           sync.Mutex
	now          func() time.Time
	cooldown     time.Duration
	allowedFails int
	byID         map[string]*deploymentHealth
}

type deploymentHealth struct {
	minute       int64 // the minute calls and fails count
	calls, fails int
	until        time.Time // cooled until
}

func newHealth(now func() time.Time, cooldown time.Duration, allowedFails int) *health {
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	return &health{now: now, cooldown: cooldown, allowedFails: allowedFails, byID: map[string]*deploymentHealth{}}
}

// get is id's record, its counts reset at a new minute. h.mu is held.
func (h *health) get(id string, now time.Time) *deploymentHealth {
	d := h.byID[id]
	if d == nil {
		d = &deploymentHealth{}
		h.byID[id] = d
	}
	if m := now.Unix() / 60; m != d.minute {
		d.minute, d.calls, d.fails = m, 0, 0
	}
	return d
}

// coolingUntil is when id's cooldown ends (zero: it is not cooling).
func (h *health) coolingUntil(id string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if d := h.byID[id]; d != nil && now.Before(d.until) {
		return d.until
	}
	return time.Time{}
}

// succeeded counts a call that answered.
func (h *health) succeeded(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.get(id, h.now()).calls++
}

// failed counts a failed call of id, in a group of size deployments, and
// reports whether it cooled the deployment.
func (h *health) failed(id string, size int, e *bus.Error, status int) bool {
	if !deploymentFault(e) {
		h.succeeded(id) // the request's fault, not the deployment's
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	d := h.get(id, now)
	d.calls++
	d.fails++
	if size < 2 {
		return false
	}
	cool := false
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound || status == http.StatusTooManyRequests:
		cool = true
	case e.Kind == bus.ErrUpstreamAuth || e.Kind == bus.ErrRateLimited:
		cool = true
	case h.allowedFails > 0:
		cool = d.fails > h.allowedFails
	default:
		cool = d.calls >= minCallsForRate && 2*d.fails > d.calls
	}
	if cool {
		d.until = now.Add(h.cooldown)
	}
	return cool
}

// deploymentFault reports whether e says the deployment failed, rather
// than the request (which any deployment would refuse) or the caller.
func deploymentFault(e *bus.Error) bool {
	return retryable(e) && e.Kind != bus.ErrServiceUnavailable
}
