package bus

import (
	"encoding/json"
	"time"
)

// Streaming contract: how messages other than the final response travel
// between the tool workers and the ingress holding the client's HTTP stream.
//
//   - Related to a POST (progress, notifications/message, server-to-client
//     requests sent on the upstream POST's stream): the worker publishes them to
//     ClientSubject(Envelope.Stream, its server), under a subject the ingress
//     handling that POST listens on (StreamSubject: one wildcard subscription
//     per ingress process, no subscribe per request). The body is a JSON-RPC
//     message exactly as the client must see it.
//   - Unrelated, for one downstream session (the upstream GET stream of a
//     session opened for that client alone): published to
//     ClientSubject(SessionSubject(sid), its server); the ingress holding that
//     session's GET stream delivers it if the stream's caller may see and use
//     that server.
//   - Catalog changes and resource updates of a server (not session-specific):
//     published to NotifySubject(server) as the JSON-RPC notification
//     (notifications/tools/list_changed, .../prompts/list_changed,
//     .../resources/list_changed, notifications/resources/updated). Routers
//     drop cached name maps; every ingress forwards list_changed to the GET
//     streams of sessions that use the server, and resources/updated only to
//     sessions subscribed to that URI.
//
// Server-to-client requests: the worker rewrites the upstream's request id to
// a string made by ServerRequestID and sends the request to the stream or
// session subject as a NATS request: the ingress acknowledges (empty body) as
// soon as it has written the message to the client's stream, so no responders
// or no ack within DeliveryAckTimeout tells the worker at once that the client
// cannot be reached (it answers the upstream with an error). Notifications are
// plain publishes, never acknowledged. The client's response, POSTed to any
// ingress replica (the id names its way back), is published by the router to
// ServerRequestReplySubject(id) with the caller's envelope headers; the worker
// checks the session is the one it asked, restores the upstream id and answers
// upstream.
//
// The subjects named here, and SubjectCancelRequest and SubjectSessionClosed,
// are in subjects.go.
const (
	// HeaderClientCapabilities carries the downstream client's initialize
	// capabilities (compact JSON). A worker declares exactly these upstream and,
	// when they include sampling, elicitation or roots, opens an upstream
	// session for that downstream session alone.
	HeaderClientCapabilities = "Mcpbus-Client-Capabilities"
	// HeaderLogLevel is the level the session set with logging/setLevel.
	HeaderLogLevel = "Mcpbus-Log-Level"

	// BucketSessions holds downstream sessions (SessionRecord), so any ingress
	// replica serves any session. Entries expire SessionTTL after their last put.
	BucketSessions = "mcpbus_sessions"
	// MetaPartial is the _meta key of an aggregated list result naming the
	// servers that failed to answer (a []PartialFailure).
	MetaPartial = "mcpbus/unavailable"
)

// SessionTTL is how long an idle downstream session lives.
const SessionTTL = time.Hour

// DeliveryAckTimeout bounds the wait for an ingress to acknowledge that a
// server-to-client request reached the client's stream.
const DeliveryAckTimeout = 2 * time.Second

// serverRequestIDPrefix starts every id the gateway gives a server-to-client request.
const serverRequestIDPrefix = "mcpbus-s2c."

// ServerRequestID is the downstream id of the n-th server-to-client request
// a worker replica of server (named by token, one subject token) relays.
func ServerRequestID(server, workerToken string, n uint64) string {
	return serverRequestIDPrefix + server + "." + workerToken + "." + uitoa(n)
}

// CancelRequest is a client's notifications/cancelled as it travels on the
// bus: the session and the downstream JSON-RPC id of the request to stop.
type CancelRequest struct {
	Session string          `json:"session"`
	KeyID   string          `json:"key_id"`
	ID      json.RawMessage `json:"id"`
	Reason  string          `json:"reason,omitempty"`
}

// SessionRecord is a downstream session as stored in BucketSessions.
type SessionRecord struct {
	ID    string `json:"id"`
	KeyID string `json:"key_id"`
	// Servers is the selection made at initialize (empty: every server the
	// caller may use, aggregated).
	Servers []string `json:"servers,omitempty"`
	// Version is the negotiated protocol version.
	Version string `json:"version"`
	// Capabilities are the client's initialize capabilities, verbatim.
	Capabilities json.RawMessage `json:"capabilities,omitempty"`
	// Subscriptions are the resource URIs the session subscribed to.
	Subscriptions []string `json:"subscriptions,omitempty"`
	// LogLevel is the last logging/setLevel level.
	LogLevel string `json:"log_level,omitempty"`
	// IPClass is the class of the address that opened the session: every
	// later message of the session must come from the same class, so a
	// session opened from inside is no way in from outside.
	IPClass IPClass   `json:"ip_class,omitempty"`
	Created time.Time `json:"created"`
}

// PartialFailure names a server whose answer is missing from an aggregated list.
type PartialFailure struct {
	Server  string `json:"server"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// PrivateCapabilities reports whether client capabilities include something a
// server may use outside a request (sampling, elicitation, roots), which needs
// an upstream session for that client alone.
func PrivateCapabilities(caps json.RawMessage) bool {
	if len(caps) == 0 {
		return false
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(caps, &c) != nil {
		return false
	}
	for _, k := range []string{"sampling", "elicitation", "roots"} {
		if v, ok := c[k]; ok && string(v) != "null" {
			return true
		}
	}
	return false
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
