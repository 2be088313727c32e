// Package conformance is the fixture upstream for the official MCP conformance
// suite (npm @modelcontextprotocol/conformance): a real go-sdk MCP server
// serving, over Streamable HTTP, the tools, resources, prompts and utilities
// the suite's server scenarios call by name. The suite runs against it
// directly and through mcpbus, and the two runs must agree (docs/CONFORMANCE.md).
package conformance

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Name identifies the fixture in its initialize result (with version.Version).
const Name = "mcpbus-conformance-fixture"

// sessionTimeout ends sessions idle for this long, so a long-running fixture
// does not accumulate the sessions of clients that never sent DELETE.
const sessionTimeout = 10 * time.Minute

// Fixture is one conformance fixture server. Its state (the watched
// resource's revision) is shared by every session.
type Fixture struct {
	server  *mcp.Server
	state   *stateSealer // seals the MRTR tools' requestState
	watched atomic.Int64 // revision of test://watched-resource
}

// New returns a fixture with every tool, resource, template and prompt
// registered, completion and resource subscriptions enabled.
func New() *Fixture {
	f := &Fixture{state: newStateSealer()}
	f.server = mcp.NewServer(&mcp.Implementation{Name: Name, Title: "mcpbus conformance fixture", Version: version.Version},
		&mcp.ServerOptions{
			Instructions:       "Fixture upstream for the MCP conformance suite; every feature is a test double.",
			CompletionHandler:  complete,
			SubscribeHandler:   f.subscribe,
			UnsubscribeHandler: f.unsubscribe,
			SetCacheable:       setCacheable,
		})
	addTools(f.server)
	f.addDiagnostics(f.server)
	f.addMRTR(f.server)
	f.addResources()
	addPrompts(f.server)
	return f
}

// Handler serves the fixture over Streamable HTTP in both protocol eras
// (eraMux): requests of 2026-07-28 and later go to a stateless go-sdk
// handler, every other request to a stateful one. Both serve the same
// server, so a list change reaches legacy sessions and modern
// subscriptions/listen streams alike.
//
// The stateful handler keeps sessions (the server sends sampling,
// elicitation and log messages to its client) and an event store so SSE
// streams can be resumed with Last-Event-ID. Both have the go-sdk's DNS
// rebinding protection (a request reaching a loopback address with a
// non-loopback Host header is refused with 403).
func (f *Fixture) Handler() http.Handler {
	server := func(*http.Request) *mcp.Server { return f.server }
	return &eraMux{
		legacy: mcp.NewStreamableHTTPHandler(server, &mcp.StreamableHTTPOptions{
			SessionTimeout: sessionTimeout,
			EventStore:     mcp.NewMemoryEventStore(nil),
		}),
		modern: mcp.NewStreamableHTTPHandler(server, &mcp.StreamableHTTPOptions{Stateless: true}),
	}
}

// UpdateWatched changes test://watched-resource and sends
// notifications/resources/updated to the sessions subscribed to it.
func (f *Fixture) UpdateWatched(ctx context.Context) error {
	f.watched.Add(1)
	return f.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: watchedURI})
}

// WatchLoop calls UpdateWatched every interval until ctx ends.
func (f *Fixture) WatchLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.UpdateWatched(ctx)
		}
	}
}
