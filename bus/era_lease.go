package bus

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// A subscriptions/listen (MCP 2026-07-28) that asks for resourceSubscriptions
// needs what a session's resources/subscribe got: the upstream subscribed
// for as long as someone listens. The ingress holding the listen subscribes
// each URI on the workers like a session would, under a lease id in place
// of the session id (Envelope.Session), renews it while the stream lives,
// and publishes the lease on SubjectSessionClosed when the stream ends. An
// ingress that dies publishes nothing: a worker drops a lease nobody renewed
// within ListenLeaseTTL, so a lost ingress leaks no upstream subscription.

const (
	// ListenLeasePrefix starts every lease id: a worker tells a lease from a
	// session by it (session ids are hex and never start with it).
	ListenLeasePrefix = "listen-"
	// ListenLeaseRenew is how often the ingress renews a live listen's lease.
	ListenLeaseRenew = 20 * time.Second
	// ListenLeaseTTL is how long a worker keeps a lease nobody renewed:
	// three renewals, so one lost renewal costs nothing.
	ListenLeaseTTL = 3 * ListenLeaseRenew
)

// NewListenLease returns a fresh lease id, a valid Envelope.Session.
func NewListenLease() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return ListenLeasePrefix + hex.EncodeToString(b[:])
}

// IsListenLease reports whether sid names a listen's lease, not a session.
func IsListenLease(sid string) bool { return strings.HasPrefix(sid, ListenLeasePrefix) }
