package toolworkers

import (
	"context"
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
)

// upstream is one server's MCP endpoint as a worker uses it, whatever the
// transport: Streamable HTTP (streamableClient), legacy SSE or stdio
// (connClient). Implementations keep one upstream session open and share it
// between concurrent calls.
type upstream interface {
	// Call sends one request and returns the upstream's response message, whose
	// result or error the worker relays verbatim. Notifications that belong to
	// the request (progress for its token) go to notify.
	Call(ctx context.Context, method string, params json.RawMessage, notify notifyFunc) (*bus.Message, error)
	// Info returns the upstream's initialize result, opening the session if needed.
	Info(ctx context.Context) (json.RawMessage, error)
	// Close ends the session (and, for stdio, the process).
	Close()
}

var _ upstream = (*streamableClient)(nil)
