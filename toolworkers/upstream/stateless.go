package upstream

// Calls to a server of the stateless era (MCP 2026-07-28), on the same
// client as the session era's: the "session" is only the server's discover
// result. Every request is a POST that stands alone: the _meta triple in its
// params (era.go, modernParams), MCP-Protocol-Version, Mcp-Method and, for
// the methods that name something, Mcp-Name in its headers; no
// Mcp-Session-Id, no initialize, no GET stream, no DELETE. A JSON-RPC error
// comes with HTTP 400 or 404 and is the answer, not a transport failure.
// Cancelling a call is closing its POST: the era has no
// notifications/cancelled over HTTP. Methods the era removed are answered
// here (removedMethod) so the worker's session-era bookkeeping (log levels,
// keep-alive pings) keeps working unchanged.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
)

// relistedKey marks a call retried after its tools were listed again.
type relistedKey struct{}

// modernHeaders are the standard headers of a stateless-era request
// (SEP-2243): Mcp-Method, and Mcp-Name for the methods that name something
// (bus.NamedBy), in the Base64 form when the name cannot travel as it is.
// MCP-Protocol-Version comes from the session (setHeaders).
func modernHeaders(method string, params json.RawMessage) http.Header {
	h := http.Header{bus.HeaderMCPMethod: {method}}
	if field := bus.NamedBy(method); field != "" {
		if name, ok, _ := bus.StringField(params, field); ok {
			h[bus.HeaderMCPName] = []string{bus.EncodeHeaderValue(name)}
		}
	}
	return h
}

// callModern sends one request to a stateless-era server. A server that
// refuses it as an unsupported version was redeployed in the older era:
// the era is forgotten and the request sent once more on a session.
func (c *streamableClient) callModern(ctx context.Context, s *session, method string, params json.RawMessage, r Relay) (*bus.Message, error) {
	id := c.nextID.Add(1)
	if method == bus.MethodResourcesSubscribe || method == bus.MethodResourcesUnsubscribe {
		return c.resourceSubscription(ctx, s, method, params, id) // on the listen: listen_resources.go
	}
	if msg := removedMethod(id, method); msg != nil {
		return msg, nil
	}
	params = c.modernParams(ctx, params)
	headers := modernHeaders(method, params)
	if method == bus.MethodToolsCall {
		for k, v := range c.paramHeaders(params) { // params.go
			headers[k] = v
		}
	}
	msg, _, err := c.post(ctx, s, encodeRequest(id, method, params), id, r, headers)
	var mismatch *errParamMismatch
	if method == bus.MethodToolsCall && errors.As(err, &mismatch) && ctx.Value(relistedKey{}) == nil {
		// The server's tool schema changed: learn it again, try once more.
		if rerr := c.relist(ctx, s); rerr != nil {
			return nil, err
		}
		return c.callModern(context.WithValue(ctx, relistedKey{}, true), s, method, params, r) // modernParams is idempotent
	}
	if err == nil && method == bus.MethodToolsList && len(msg.Result) > 0 {
		msg.Result = c.learnTools(msg.Result)
	}
	if errors.Is(err, errEraChanged) {
		c.dropModern(s)
		c.era.forget(eraModern)
		c.log.Info("upstream server no longer speaks MCP "+bus.FirstModernVersion+": probing its era again", "server", c.server)
		return nil, errEraChanged
	}
	return msg, err
}

// removedMethod answers, for a stateless-era server, a request of the older
// era the new one removed (nil: send it upstream). logging/setLevel
// succeeds: the level travels in each request's _meta instead (Caller);
// ping succeeds: there is no session to keep alive. (resources/subscribe
// and unsubscribe go on the listen: resourceSubscription.)
func removedMethod(id int64, method string) *bus.Message {
	switch method {
	case bus.MethodLoggingSetLevel, bus.MethodPing:
		return &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(fmt.Sprint(id)), Result: json.RawMessage(`{}`)}
	}
	return nil
}

// modernRefusal reads a stateless-era server's 400 or 404 answer: a
// JSON-RPC error response to request id is the answer to relay (-32602
// invalid params, -32601 no such method, -32021 a capability the caller
// lacks); -32022 (unsupported version) means the server left the era
// (errEraChanged); -32020 means mcpbus's own headers were wrong, an
// upstream protocol failure. handled is false for anything else, which the
// status rules then judge (checkStatus).
func (c *streamableClient) modernRefusal(resp *http.Response, id int64) (msg *bus.Message, handled bool, err error) {
	if id == 0 || (resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound) {
		return nil, false, nil
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/json" {
		return nil, false, nil
	}
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if rerr != nil {
		return nil, true, c.classify(resp.Request.Context(), rerr)
	}
	m, merr := c.matchResponse(data, id)
	if merr != nil || len(m.Error) == 0 {
		return nil, true, &statusError{code: resp.StatusCode, err: bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered HTTP %d", c.server, resp.StatusCode)}
	}
	var e struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal(m.Error, &e)
	switch e.Code {
	case bus.ErrUnsupportedVersion.RPC:
		return nil, true, errEraChanged
	case bus.ErrHeaderMismatch.RPC:
		return nil, true, &errParamMismatch{bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q refused the gateway's request headers: %s", c.server, rpcErrorMessage(m.Error))}
	}
	return m, true, nil
}
