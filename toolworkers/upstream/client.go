// Package upstream holds the clients a tool worker talks to an upstream MCP
// server with, one per transport: Streamable HTTP (streamable.go, with its
// GET stream in getstream.go and the SSE event parser in sse.go), the legacy
// HTTP+SSE transport (legacy_sse.go) and stdio (stdio.go), the last two on a
// connection-oriented session (conn_client.go, conn_session.go), and the
// detection of a transport the config did not name (detect.go).
//
// Between the worker and a transport stand three interfaces, as go-sdk puts
// Transport and Connection between its sessions and its transports: Client
// (what a worker calls), Relay (where what arrives on one call's stream goes)
// and Events (where what arrives outside any call goes). A client knows
// nothing of NATS, of credentials (its *http.Client carries them:
// toolworkers/credential) or of the worker's permissions.
package upstream

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
)

// Client is one server's MCP endpoint as a worker uses it, whatever the
// transport. Implementations keep one upstream session open and share it
// between concurrent calls.
type Client interface {
	// Call sends one request and returns the upstream's response message, whose
	// result or error the worker relays verbatim. What the upstream sends on the
	// request's own stream besides the response (progress, log messages,
	// server-to-client requests) goes to r (nil: notifications are dropped and
	// requests refused); session-wide notifications (list_changed,
	// resources/updated) go to the client's Events.
	Call(ctx context.Context, method string, params json.RawMessage, r Relay) (*bus.Message, error)
	// Notify sends one notification in the session (opening it if needed).
	Notify(ctx context.Context, method string, params json.RawMessage) error
	// Info returns the upstream's initialize result, opening the session if needed.
	Info(ctx context.Context) (json.RawMessage, error)
	// Close ends the session (and, for stdio, the process), and waits for
	// every goroutine the client started.
	Close()
}

var _ Client = (*streamableClient)(nil)

// Relay takes what an upstream sends on one call's stream besides the
// response.
type Relay interface {
	// Notify relays a notification (progress, a log message).
	Notify(method string, params json.RawMessage)
	// Request relays a server-to-client request and returns the JSON-RPC
	// response to send upstream, with the upstream's id.
	Request(ctx context.Context, m *bus.Message) []byte
	// Hold keeps the relay alive past its call (a request still being
	// relayed); Release drops one hold.
	Hold()
	Release()
}

// noRelay drops notifications and refuses requests: a call whose caller
// gave no relay.
type noRelay struct{}

func (noRelay) Notify(string, json.RawMessage) {}
func (noRelay) Hold()                          {}
func (noRelay) Release()                       {}
func (noRelay) Request(_ context.Context, m *bus.Message) []byte {
	return Refusal(m.ID, CodeMethodNotFound, "the client cannot receive "+m.Method+": its request has no stream for it (the client did not accept text/event-stream)")
}

// relayOr returns r, or noRelay when there is none.
func relayOr(r Relay) Relay {
	if r == nil {
		return noRelay{}
	}
	return r
}

// Events receives what an upstream session sends outside any one call:
// messages on its GET stream, and session-wide notifications whatever stream
// they come on. A worker's link implements it.
type Events interface {
	// SessionOpened says a new upstream session was initialized (the first
	// one, or one replacing a session the upstream forgot): what was cached
	// about the old one is stale.
	SessionOpened()
	// SessionLost says the upstream ended the session (it forgot it, or the
	// connection died); the next call opens a new one.
	SessionLost()
	// SessionNotification is a notification that belongs to no call.
	SessionNotification(method string, params json.RawMessage)
	// ServerRequest answers a request the upstream sent outside any call
	// (ping excepted: clients answer it themselves). It returns the JSON-RPC
	// response to send upstream, with the upstream's id.
	ServerRequest(ctx context.Context, m *bus.Message) []byte
}

// Options are what every client is made with.
type Options struct {
	Server  string          // the server's name, for errors and logs
	Version string          // the protocol version asked for at initialize
	Caps    json.RawMessage // client capabilities declared at initialize (nil: none)
	Events  Events          // what comes outside calls (nil: dropped, no GET stream)
	// Era is what the worker knows of the server's protocol era, shared by
	// its clients (nil: the session era, never probed). Only Streamable HTTP
	// clients probe; HTTP+SSE and stdio speak the session era.
	Era *Era
	Log *slog.Logger // nil: slog.Default()
}

// sessionWide reports whether a notification concerns the whole session (or
// server) rather than the call on whose stream it arrived.
func sessionWide(method string) bool {
	switch method {
	case "notifications/tools/list_changed", "notifications/prompts/list_changed",
		"notifications/resources/list_changed", "notifications/resources/updated":
		return true
	}
	return false
}

// Refusal is the JSON-RPC error response to a server-to-client request mcpbus
// will not relay, with the upstream's id.
func Refusal(id json.RawMessage, code int, message string) []byte {
	e, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
	return bus.RawErrorResponse(id, e)
}

// JSON-RPC codes of refusals sent upstream (and of answers made here for
// a server, listen_resources.go).
const (
	CodeInvalidParams  = -32602
	CodeMethodNotFound = -32601
	CodeInternal       = -32603
)

// NewStreamable is a client of a Streamable HTTP endpoint that sends header
// on every request, through hc (which carries the credentials; nil: a
// private connection pool).
func NewStreamable(o Options, endpoint string, header http.Header, hc *http.Client) Client {
	c := newStreamableClient(o.Server, endpoint, header, o.Version, hc)
	c.caps, c.events, c.era = o.Caps, o.Events, o.Era
	if o.Log != nil {
		c.log = o.Log
	}
	return c
}

// NewSSE is a client of a legacy HTTP+SSE endpoint (the GET URL), through
// hc, which must set the server's headers itself and have no overall
// timeout (the GET stream lasts as long as the session).
func NewSSE(o Options, endpoint string, hc *http.Client) Client {
	c := newSSEClient(o.Server, endpoint, hc, o.Version, o.Log)
	c.caps, c.events = o.Caps, o.Events
	return c
}

// NewStdio is a client of a server the worker runs as a child process and
// supervises.
func NewStdio(o Options, cmd Process) Client {
	c := newStdioClient(o.Server, cmd, o.Version, o.Log)
	c.caps, c.events = o.Caps, o.Events
	return c
}

// NewDetecting is a client that detects the transport on first use (for a
// server whose config names none): Streamable HTTP, else HTTP+SSE. found is
// shared by a worker's clients, so the first detection serves them all.
func NewDetecting(o Options, found *Detected, streamable, sse func() Client) Client {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	return &detectingClient{server: o.Server, log: log, found: found, http: streamable, sse: sse}
}
