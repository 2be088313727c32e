package toolworkers

// Which upstream session a call goes through (linkFor), and what the
// upstream client is told of the caller (callerFor).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
)

// linkFor picks the upstream session for a call: a private one for a client
// that declared capabilities the upstream may use outside calls, else the one
// for its per-request credentials, else the shared one. nil: the worker is
// stopping. perRequest are the call's own headers (callHeaders).
func (w *Worker) linkFor(env *bus.Envelope, perRequest http.Header) *link {
	stdio := w.up.Transport == "stdio" // one process, one session: always shared
	if stdio {
		perRequest = nil
	}
	if !stdio && env.Session != "" && privateCaps(env.ClientCapabilities) {
		credKey := ""
		if perRequest != nil {
			credKey = headerKey(perRequest)
		}
		sid, keyID, caps := env.Session, env.Caller.KeyID, env.ClientCapabilities
		return w.private.get(privateKey(keyID, sid, credKey), func() *link {
			header := w.up.Header
			if perRequest != nil {
				header = w.mergeHeaders(perRequest)
			}
			return w.newLink(header, sid, keyID, caps)
		})
	}
	if !stdio && env.Modern() && privateCaps(env.ClientCapabilities) && !w.era.Modern() {
		// A stateless-era caller that can be asked for input, in front of
		// a server that asks on a session: the session must have declared
		// what the caller can answer (park.go). One per key, capability
		// set and credential set, in the private pool's bounds.
		credKey := ""
		header := w.up.Header
		if perRequest != nil {
			credKey, header = headerKey(perRequest), w.mergeHeaders(perRequest)
		}
		keyID, caps := env.Caller.KeyID, env.ClientCapabilities
		return w.private.get(privateKey(keyID, "caps:"+capsKey(caps), credKey), func() *link {
			return w.newLink(header, "", keyID, caps)
		})
	}
	if perRequest != nil {
		return w.creds.get(perRequest)
	}
	return w.shared
}

// capsKey names a capability set (compacted JSON, at most 16 KiB).
func capsKey(caps json.RawMessage) string {
	sum := sha256.Sum256(caps)
	return hex.EncodeToString(sum[:12])
}

// callerFor is what the upstream client needs to know of the caller
// (upstream.Caller): its era, which picks the upstream's era when the
// server speaks both; its log level; and its capabilities, so a
// stateless-era server asks it for input only as it can answer: a
// stateless-era caller itself (input_required passes through), a
// session-era caller on its call's stream (canAsk: there is a relay;
// fulfil, mrtr.go). A session-era caller that cannot be asked declares none.
func callerFor(env *bus.Envelope, canAsk bool) upstream.Caller {
	c := upstream.Caller{Modern: env.Modern(), LogLevel: env.LogLevel}
	if c.Modern || canAsk {
		c.Caps = env.ClientCapabilities
	}
	return c
}
