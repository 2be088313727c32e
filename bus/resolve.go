package bus

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// The routing rule, in one place. The router applies it to every message; the
// ingress applies it too, to send a request that the router would only forward
// byte for byte straight to the server's workers (Direct); the worker checks
// Visible and Permissions.AllowsServer again on every request it gets.

// Visible is the one public/internal rule (checked before key permissions, so a
// server hidden from a caller is never named to it): internal callers see every
// server, external callers only those marked available_on_public_internet.
func Visible(s ServerSpec, class IPClass) bool {
	return s.Public || class == Internal
}

// ServerSource is where servers are looked up: a process's copy of the
// servers bucket (internal/servercache), or a fixed set in tests.
type ServerSource interface {
	Get(name string) (ServerSpec, bool)
	List() []ServerSpec // sorted by name
}

// Resolve picks the servers a message is for: one server (many is nil), which
// gets the message as it came and answers with bare names, or several (many,
// in name order), which the router aggregates. Visibility decides first, then
// the key's permissions: a server an external caller may not see answers
// exactly like one that does not exist.
//
//   - no selection: every visible server the key may use, aggregated even
//     when there is one, so the names a client is given (server-prefixed) do
//     not change when it comes to see a second server (a server made
//     public, a key given one more);
//   - a selection (path, header, ?server= or x-mcp-servers): exactly those,
//     each of which must exist, be visible and be permitted; one selected
//     server answers with its own (bare) names.
func Resolve(cache ServerSource, env Envelope) (one ServerSpec, many []ServerSpec, e *Error) {
	switch len(env.Servers) {
	case 0:
		return resolveAll(cache, env)
	case 1:
		s, e := selected(cache, env, env.Servers[0])
		return s, nil, e
	}
	names := slices.Clone(env.Servers)
	slices.Sort(names)
	names = slices.Compact(names)
	many = make([]ServerSpec, 0, len(names))
	for _, n := range names {
		s, e := selected(cache, env, n)
		if e != nil {
			return ServerSpec{}, nil, e
		}
		many = append(many, s)
	}
	if len(many) == 1 {
		return many[0], nil, nil
	}
	return ServerSpec{}, many, nil
}

// Usable reports whether the caller of env may see and use s.
func Usable(s ServerSpec, env Envelope) bool {
	return Visible(s, env.IPClass) && env.Caller.Permissions.AllowsServer(s)
}

// selected checks one server the caller named.
func selected(cache ServerSource, env Envelope, name string) (ServerSpec, *Error) {
	s, ok := cache.Get(name)
	if !ok || !Visible(s, env.IPClass) {
		return ServerSpec{}, Errorf(ErrUnknownServer, "unknown MCP server %q", name)
	}
	if !env.Caller.Permissions.AllowsServer(s) {
		return ServerSpec{}, Errorf(ErrNotPermitted, "%s may not use MCP server '%s'", env.Caller.Who(), s.Name)
	}
	return s, nil
}

// resolveAll is the no-selection case. It allocates only when it aggregates.
func resolveAll(cache ServerSource, env Envelope) (ServerSpec, []ServerSpec, *Error) {
	all := cache.List()
	usable, hidden, first := 0, 0, -1
	for i, s := range all {
		if !Visible(s, env.IPClass) {
			continue
		}
		if !env.Caller.Permissions.AllowsServer(s) {
			hidden++
			continue
		}
		if first < 0 {
			first = i
		}
		usable++
	}
	switch {
	case usable == 0 && hidden > 0:
		return ServerSpec{}, nil, Errorf(ErrNotPermitted, "%s may not use any MCP server", env.Caller.Who())
	case usable == 0:
		return ServerSpec{}, nil, Errorf(ErrUnknownServer, "no MCP server is available to this caller")
	}
	many := make([]ServerSpec, 0, usable)
	for _, s := range all[first:] {
		if Usable(s, env) {
			many = append(many, s)
		}
	}
	return ServerSpec{}, many, nil
}

// Direct reports the one server a request goes to when the router would only
// forward it unchanged: a request (not a notification or a response) other
// than initialize, ping and server/discover, which the router answers
// itself (and subscriptions/listen, which is no call), that resolves to
// exactly one server the caller may use. Anything else, including every
// refusal, goes through the router, which gives the one answer for it.
func Direct(cache ServerSource, env Envelope, msg *Message) (ServerSpec, bool) {
	if cache == nil || msg == nil || !msg.IsRequest() || routerAnswers(msg.Method) || SearchesTools(env, msg.Method) {
		return ServerSpec{}, false
	}
	if _, parked := ParkedCall(msg.Params); parked {
		// A parked call's retry goes to the one replica that holds it,
		// which the router knows how to reach (era_park.go).
		return ServerSpec{}, false
	}
	s, many, e := Resolve(cache, env)
	if e != nil || many != nil || s.Drain {
		// A drained server's refusal is the router's (DrainedError).
		return ServerSpec{}, false
	}
	if len(s.Tasks) > 0 && TaskMethod(msg.Method) {
		// The gateway's tasks are answered by the router (tasks.go).
		return ServerSpec{}, false
	}
	return s, true
}

func routerAnswers(method string) bool {
	switch method {
	case MethodInitialize, MethodPing, MethodServerDiscover, MethodSubscriptionsListen:
		return true
	}
	return false
}

// Call bounds: DefaultCallTimeout bounds an upstream call when the server sets
// no timeout, and MaxCallTimeout is the longest a server may set (config
// enforces both). CallGrace is how much longer than a call's deadline whoever
// sent it to a worker waits, so the worker's own, more precise error normally
// wins.
const (
	DefaultCallTimeout = 60 * time.Second
	MaxCallTimeout     = time.Hour
	CallGrace          = 2 * time.Second
)

// CallTimeout is the bound on a call to s as the router and ingress read it;
// the worker enforces the configured one precisely. A timeout they cannot read
// (an os.environ/ reference, resolved only in the worker) gets the longest
// allowed, so they never cut a call short.
func CallTimeout(s ServerSpec) time.Duration {
	if s.timeout.d != 0 && s.timeout.from == s.Timeout {
		return s.timeout.d // parsed when the record was read
	}
	return parseCallTimeout(s.Timeout)
}

func parseCallTimeout(t string) time.Duration {
	if t == "" {
		return DefaultCallTimeout
	}
	if d, err := time.ParseDuration(t); err == nil && d > 0 {
		return d
	}
	return MaxCallTimeout
}

// CallDeadline is when a call to s sent now for env must end: its timeout from
// now, or the caller's own deadline if that is sooner. It returns the timeout
// too, for errors.
func CallDeadline(s ServerSpec, env Envelope, now time.Time) (time.Time, time.Duration) {
	limit := CallTimeout(s)
	deadline := now.Add(limit)
	if !env.Deadline.IsZero() && env.Deadline.Before(deadline) {
		deadline = env.Deadline
	}
	return deadline, limit
}

// WorkerError is the gateway error for a request to s's workers that got no
// answer: none runs, none answered within limit, or the bus failed.
func WorkerError(s ServerSpec, limit time.Duration, err error) *Error {
	switch {
	case IsLivenessError(err):
		return LivenessError(s, err)
	case errors.Is(err, nats.ErrNoResponders) && s.Drain:
		return DrainedError(s)
	case errors.Is(err, nats.ErrNoResponders):
		return Errorf(ErrUpstreamUnavailable, "no tool worker is running for server %q", s.Name)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return Errorf(ErrUpstreamTimeout, "upstream server %q did not answer within %s", s.Name, limit)
	default:
		return Errorf(ErrUpstreamUnavailable, "tool worker for server %q failed: %v", s.Name, err)
	}
}
