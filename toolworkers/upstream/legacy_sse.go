package upstream

// The legacy HTTP+SSE transport (2024-11-05): a connClient whose connector
// opens the GET stream through the go-sdk's SSE client transport, with the
// credentials and the same-origin guard on every request. (sse.go is the
// Streamable HTTP event parser.)

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// newSSEClient returns a client for a legacy HTTP+SSE endpoint (the GET URL that
// announces the message endpoint). hc carries the credentials (through its
// Transport) and must have no overall Timeout, since the GET stream stays open
// for the whole session; nil selects a client like the Streamable HTTP one.
// endpoint may hold a credential: it never appears in an error or a log line.
func newSSEClient(server, endpoint string, hc *http.Client, version string, log *slog.Logger) *connClient {
	if hc == nil {
		hc = &http.Client{Transport: credential.NewBaseTransport()}
	}
	// The SDK reports an HTTP failure as text ("failed to connect: Unauthorized");
	// statusTransport makes the status available to classify instead. It also
	// keeps every request on the endpoint's origin: the server names the URL
	// messages are POSTed to, and hc adds the gateway's credentials to them.
	wrapped := *hc
	wrapped.Transport = &statusTransport{base: hc.Transport, origin: originOf(endpoint)}
	return newConnClient(server, &sseConnector{server: server, endpoint: endpoint, hc: &wrapped}, version, sseInitTimeout, log)
}

// sseConnector opens legacy SSE connections.
type sseConnector struct {
	server   string
	endpoint string
	hc       *http.Client

	mu     sync.Mutex
	closed bool
	live   map[*sseStream]struct{}
}

// sseStream is one open GET stream.
type sseStream struct{ cancel context.CancelFunc }

func (d *sseConnector) transport() string  { return "sse" }
func (d *sseConnector) retryInit() bool    { return false }
func (d *sseConnector) gapErr() *bus.Error { return nil }
func (d *sseConnector) beginClose()        {}

// connect opens the GET stream. The stream must outlive ctx (it carries the
// whole session), so it runs on its own context, which ctx ends only while
// connecting.
func (d *sseConnector) connect(ctx context.Context) (*dialed, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (sse): the worker is shutting down", d.server)
	}
	sctx, cancel := context.WithCancel(context.Background())
	st := &sseStream{cancel}
	if d.live == nil {
		d.live = map[*sseStream]struct{}{}
	}
	d.live[st] = struct{}{}
	d.mu.Unlock()
	release := func() {
		cancel()
		d.mu.Lock()
		delete(d.live, st)
		d.mu.Unlock()
	}

	stop := context.AfterFunc(ctx, cancel)
	tr := &mcp.SSEClientTransport{Endpoint: d.endpoint, HTTPClient: d.hc, MaxEventSize: maxUpstreamBody}
	conn, err := tr.Connect(sctx)
	if !stop() {
		// ctx ended while connecting: the stream (if any) is already cancelled.
		if conn != nil {
			conn.Close()
		}
		release()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, bus.Errorf(bus.ErrUpstreamTimeout, "upstream server %q (sse) did not answer in time", d.server)
		}
		return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (sse): the worker is shutting down", d.server)
	}
	if err != nil {
		release()
		return nil, d.connectError(err)
	}
	return &dialed{conn: conn, release: release}, nil
}

// connectError classifies a failed SSE connect. Network and HTTP failures come
// wrapped in *url.Error (never printed: it holds the URL); anything else is the
// SDK rejecting what the server sent.
func (d *sseConnector) connectError(err error) *bus.Error {
	var se *httpStatusError
	var ue *url.Error
	switch {
	case errors.Is(err, errForeignOrigin), errors.As(err, &se):
		return classifyConnErr(d.server, "sse", err)
	case errors.As(err, &ue) && ue.Op == "parse":
		return bus.Errorf(bus.ErrInternal, "upstream server %q (sse): bad endpoint", d.server)
	case errors.As(err, &ue):
		return classifyConnErr(d.server, "sse", err)
	}
	return bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q (sse) did not open an MCP SSE stream (no endpoint event)", d.server)
}

func (d *sseConnector) close() {
	d.mu.Lock()
	d.closed = true
	live := d.live
	d.live = nil
	d.mu.Unlock()
	for st := range live {
		st.cancel()
	}
	d.hc.CloseIdleConnections()
}

// statusTransport turns HTTP error statuses (400 and up) into *httpStatusError,
// so SSE failures can be classified by status rather than by the SDK's text,
// and refuses requests to any origin but the endpoint's.
type statusTransport struct {
	base   http.RoundTripper
	origin string
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// errForeignOrigin is a request (a message endpoint or a redirect) that would
// leave the configured endpoint's scheme, host and port.
var errForeignOrigin = errors.New("request to another origin refused")

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

func (t *statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.ToLower(req.URL.Scheme+"://"+req.URL.Host) != t.origin {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errForeignOrigin
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return nil, &httpStatusError{code: resp.StatusCode}
}

func (t *statusTransport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
