package upstream

// This file is a Streamable HTTP MCP client written by hand, on purpose.
//
// The go-sdk's StreamableClientTransport only sends MCP-Protocol-Version and opens
// the upstream GET stream when it is driven by the SDK's typed mcp.Client (the
// hook that tells it the session was initialized is unexported), and the typed
// client decodes and re-encodes every result, which loses unknown fields and costs
// ~32 KiB of allocation per message. A gateway must relay results byte for byte,
// rewrite ids and progress tokens per leg, and re-initialize a session the upstream
// forgot, so the worker speaks the transport itself: POST one message, read a JSON
// or SSE answer, keep Mcp-Session-Id and MCP-Protocol-Version, and start over on
// 404. Everything else about MCP stays the upstream's business.
//
// Right after notifications/initialized the client opens the session's GET
// stream (getstream.go), where the upstream sends what belongs to no request:
// list_changed, resources/updated, and requests for the client.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/internal/signing"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
)

// maxUpstreamBody bounds one upstream JSON answer or SSE event.
const maxUpstreamBody = 32 << 20

// errSessionGone says the upstream no longer knows our session: start a new one.
var errSessionGone = errors.New("upstream session expired")

// session is one initialized upstream MCP session.
type session struct {
	id      string          // Mcp-Session-Id, empty for sessionless servers
	version string          // negotiated protocol version
	init    json.RawMessage // the upstream's initialize result, verbatim
	// modern marks a stateless-era server (stateless.go): no session at
	// all, init made from its discover result.
	modern bool
	// listening: the subscriptions/listen of a modern session runs
	// (listen.go), at most one.
	listening atomic.Bool

	// ctx lives as long as the session is the client's current one: it ends
	// the GET stream and the server-to-client requests relayed from it.
	ctx    context.Context
	cancel context.CancelFunc
}

// end stops what runs for the session (its GET stream).
func (s *session) end() {
	if s.cancel != nil {
		s.cancel()
	}
}

// streamableClient is one upstream server's Streamable HTTP endpoint with one
// shared, lazily opened session: every call through this worker replica reuses
// it, and no call pays for an initialize.
type streamableClient struct {
	server   string // server name, for errors
	endpoint string
	header   http.Header // credential and static headers, set on every request
	version  string      // protocol version to ask for at initialize
	hc       *http.Client
	// caps are the client capabilities declared at initialize (nil: none).
	caps json.RawMessage
	// events, if set, receives what the upstream sends outside calls, and the
	// client keeps the session's GET stream open for it.
	events Events
	// era is what the worker learned of the server's protocol era (era.go;
	// nil: the session era, never probed).
	era *Era
	log *slog.Logger
	// endWait is streamEndWait; a test lengthens it.
	endWait time.Duration

	// base ends with Close: what the client runs in the background (the GET
	// stream, answers and cancellations sent upstream, draining finished
	// answers) runs under it, in tasks, which Close waits for.
	base   context.Context
	cancel context.CancelFunc
	tasks  goroutines

	closed atomic.Bool
	nextID atomic.Int64
	cur    atomic.Pointer[session] // the initialized session
	// disc is the stateless era's "session": the server's discover
	// result, when the server speaks that era (era.go).
	disc atomic.Pointer[session]
	// probeLock collapses concurrent discovers into one.
	probeLock chan struct{}
	// params are the server's tools' x-mcp-header annotations (params.go).
	params paramTable
	// res are the resources a stateless-era server is subscribed to on the
	// listen (listen_resources.go).
	res resourceSubs
	// initLock collapses concurrent initializations into one; a channel rather
	// than a mutex so a waiter can give up when its context ends.
	initLock chan struct{}
}

// newStreamableClient makes a client for one endpoint. hc carries the worker's
// shared connection pool and credential transports (nil: a private pool).
func newStreamableClient(server, endpoint string, header http.Header, version string, hc *http.Client) *streamableClient {
	if hc == nil {
		hc = &http.Client{Transport: credential.NewBaseTransport()}
	}
	base, cancel := context.WithCancel(context.Background())
	return &streamableClient{
		base:      base,
		cancel:    cancel,
		server:    server,
		endpoint:  endpoint,
		header:    header,
		version:   version,
		hc:        hc,
		initLock:  make(chan struct{}, 1),
		probeLock: make(chan struct{}, 1),
		log:       slog.Default(),
		endWait:   streamEndWait,
	}
}

// Call sends one request upstream and returns the upstream's response message,
// whose result or error the caller relays verbatim. What else arrives on the
// request's stream goes to r (session-wide notifications to events). A
// session the upstream forgot is replaced and the request sent once more: the
// upstream never ran it.
func (c *streamableClient) Call(ctx context.Context, method string, params json.RawMessage, r Relay) (*bus.Message, error) {
	eraRetried := false
	for attempt := 0; ; attempt++ {
		s, err := c.pick(ctx) // era.go
		if errors.Is(err, errEraChanged) && !eraRetried {
			eraRetried = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if s.modern {
			msg, err := c.callModern(ctx, s, method, params, r)
			if errors.Is(err, errEraChanged) {
				if !eraRetried {
					eraRetried = true
					continue
				}
				return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q refused MCP %s right after it said it spoke it", c.server, bus.FirstModernVersion)
			}
			return msg, err
		}
		id := c.nextID.Add(1)
		body := encodeRequest(id, method, params)
		msg, _, err := c.post(ctx, s, body, id, r, nil)
		if err != nil && ctx.Err() != nil {
			// Closing the HTTP request is not a cancellation in MCP: tell the
			// upstream to stop, so a revoked or timed-out call does no more work.
			cause := ctx.Err()
			c.tasks.spawn(func() { c.cancelUpstream(s, id, cause) })
		}
		if errors.Is(err, errSessionGone) {
			c.drop(s)
			if attempt == 0 {
				continue
			}
			return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q forgot a session it had just opened (HTTP 404 twice in a row)", c.server)
		}
		return msg, err
	}
}

// Notify sends one notification in the session, opening it if needed. A
// stateless-era server takes none over HTTP (what they said, roots changing
// or a call cancelled, it learns from each request): it is dropped.
func (c *streamableClient) Notify(ctx context.Context, method string, params json.RawMessage) error {
	s, err := c.pick(ctx)
	if err != nil || s.modern {
		return err
	}
	_, _, err = c.post(ctx, s, bus.Notification(method, params), 0, nil, nil)
	if errors.Is(err, errSessionGone) {
		c.drop(s)
		return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q forgot the session", c.server)
	}
	return err
}

// drop forgets s if it is still the current session; the next call opens a new one.
func (c *streamableClient) drop(s *session) {
	if c.cur.CompareAndSwap(s, nil) {
		s.end()
		if c.events != nil && !c.closed.Load() {
			c.events.SessionLost()
		}
	}
}

// Info returns the upstream's initialize result, opening the session if
// needed; for a stateless-era server, its discover result in that shape.
func (c *streamableClient) Info(ctx context.Context) (json.RawMessage, error) {
	s, err := c.pick(ctx)
	if err != nil {
		return nil, err
	}
	return s.init, nil
}

// Close ends the session (DELETE, when the upstream gave it an id), stops
// what runs in the background and waits for it.
func (c *streamableClient) Close() {
	c.closed.Store(true)
	if m := c.disc.Swap(nil); m != nil {
		m.end()
	}
	s := c.cur.Swap(nil)
	if s != nil {
		s.end()
	}
	if s != nil && s.id != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.endpoint, nil)
		if err == nil {
			c.setHeaders(req, s)
			if resp, err := c.hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	c.cancel()
	c.tasks.wait()
}

// session returns the current session or opens one; concurrent callers share a
// single initialize.
func (c *streamableClient) session(ctx context.Context) (*session, error) {
	if s := c.cur.Load(); s != nil {
		return s, nil
	}
	select {
	case c.initLock <- struct{}{}:
	case <-ctx.Done():
		return nil, c.classify(ctx, ctx.Err())
	}
	defer func() { <-c.initLock }()
	if s := c.cur.Load(); s != nil {
		return s, nil
	}
	s, err := c.initialize(ctx)
	if err != nil {
		return nil, c.initRefused(err) // era.go
	}
	c.cur.Store(s)
	if c.closed.Load() {
		// Close ran meanwhile; whichever of us swaps s out ends it.
		c.drop(s)
		return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: the worker is shutting down", c.server)
	}
	if c.events != nil {
		c.events.SessionOpened()
		c.tasks.spawn(func() { c.listen(s) })
	}
	return s, nil
}

func (c *streamableClient) initialize(ctx context.Context) (*session, error) {
	ctx = signing.ForGateway(ctx) // the session serves every caller
	params := initializeParams(c.version, c.caps)
	id := c.nextID.Add(1)
	pending := &session{}
	msg, hdr, err := c.post(ctx, pending, encodeRequest(id, bus.MethodInitialize, params), id, nil, nil)
	if err != nil {
		if errors.Is(err, errSessionGone) {
			err = bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q refused initialize (HTTP 404)", c.server)
		}
		return nil, err
	}
	if len(msg.Error) > 0 {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q refused initialize: %s", c.server, rpcErrorMessage(msg.Error))
	}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(msg.Result, &res); err != nil || res.ProtocolVersion == "" {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q sent an initialize result without protocolVersion", c.server)
	}
	s := &session{id: hdr.Get("Mcp-Session-Id"), version: res.ProtocolVersion, init: msg.Result}
	if _, _, err := c.post(ctx, s, bus.Notification(bus.MethodInitialized, nil), 0, nil, nil); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(c.base)
	return s, nil
}

// initializeParams are the params of the upstream initialize: the protocol
// version to ask for and exactly the capabilities of the client the session
// is for ({} for sessions shared between clients, which cannot promise what
// any one of them supports).
func initializeParams(protocol string, caps json.RawMessage) json.RawMessage {
	if len(caps) == 0 || !json.Valid(caps) {
		caps = json.RawMessage(`{}`)
	}
	params, _ := json.Marshal(map[string]any{
		"protocolVersion": protocol,
		"capabilities":    caps,
		"clientInfo":      map[string]string{"name": "mcpbus", "version": version.Version},
	})
	return params
}

func encodeRequest(id int64, method string, params json.RawMessage) []byte {
	b := make([]byte, 0, len(method)+len(params)+64)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"method":`...)
	b = strconv.AppendQuote(b, method)
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, '}')
}

func (c *streamableClient) setHeaders(req *http.Request, s *session) {
	for k, v := range c.header {
		req.Header[k] = v
	}
	if s.id != "" {
		req.Header["Mcp-Session-Id"] = []string{s.id}
	}
	if s.version != "" {
		req.Header["Mcp-Protocol-Version"] = []string{s.version}
	}
	InjectTrace(req) // tracing.go
}

// post sends one message, with extra headers besides the session's. For a
// request (id > 0) it waits for the response with that id, on a JSON body or
// an SSE stream; for a notification it expects 202.
func (c *streamableClient) post(ctx context.Context, s *session, body []byte, id int64, r Relay, extra http.Header) (*bus.Message, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, nil, bus.Errorf(bus.ErrInternal, "upstream server %q: bad endpoint", c.server)
	}
	c.setHeaders(req, s)
	for k, v := range extra {
		req.Header[k] = v
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Accept"] = []string{"application/json, text/event-stream"}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, c.classify(ctx, err)
	}
	defer func() { resp.Body.Close() }() // a closure: the SSE path hands the body off
	if s.modern {
		if msg, handled, err := c.modernRefusal(resp, id); handled {
			return msg, resp.Header, err
		}
	}
	if err := c.checkStatus(resp, s); err != nil {
		return nil, nil, err
	}
	if id == 0 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil, resp.Header, nil
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var msg *bus.Message
	switch {
	case resp.StatusCode == http.StatusAccepted:
		err = bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered a request with 202 and no response", c.server)
	case ct == "text/event-stream":
		msg, err = c.readSSE(ctx, resp.Body, s, id, r)
		if err == nil {
			// The server ends the stream after the response; read to its end
			// so the connection goes back to the pool (closing an unfinished
			// body makes Go dial a new one next time). The end normally
			// follows at once: wait for it briefly, so the next call finds
			// the connection idle, then leave the rest to the background.
			body := resp.Body
			resp.Body = http.NoBody
			c.drainSoon(body)
		}
	case ct == "application/json" || ct == "":
		msg, err = c.readJSON(resp.Body, id)
	default:
		err = bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered with unexpected content type %q", c.server, ct)
	}
	if err != nil && ctx.Err() != nil {
		err = c.classify(ctx, ctx.Err())
	}
	return msg, resp.Header, err
}

func (c *streamableClient) checkStatus(resp *http.Response, s *session) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case code == http.StatusNotFound && s.id != "":
		return errSessionGone
	case code == http.StatusBadRequest && s.id != "" && sessionComplaint(snippet):
		return errSessionGone
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return bus.Errorf(bus.ErrUpstreamAuth, "upstream server %q refused the gateway's configured credentials (HTTP %d)", c.server, code)
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable || code == http.StatusBadGateway || code == http.StatusGatewayTimeout:
		return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q is unavailable (HTTP %d)", c.server, code)
	default:
		return &statusError{code: code, err: bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered HTTP %d", c.server, code)}
	}
}

// statusError is a gateway error caused by an upstream's HTTP status, which
// transport detection (detect.go) reads.
type statusError struct {
	code int
	err  *bus.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// drainAndClose reads what is left of a finished SSE answer, bounded, then
// closes it, so its keep-alive connection can be reused.
func drainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	_ = body.Close()
}

// streamEndWait is how long a call waits for an upstream's SSE answer stream
// to end after the response, before draining it in the background.
const streamEndWait = 2 * time.Millisecond

// drainSoon drains and closes body, waiting up to endWait for it to finish;
// Close cuts a drain still running short.
func (c *streamableClient) drainSoon(body io.ReadCloser) {
	done := make(chan struct{})
	started := c.tasks.spawn(func() {
		stop := context.AfterFunc(c.base, func() { body.Close() })
		defer stop()
		drainAndClose(body)
		close(done)
	})
	if !started {
		body.Close()
		return
	}
	t := time.NewTimer(c.endWait)
	select {
	case <-done:
	case <-t.C:
	}
	t.Stop()
}

// sessionComplaint recognises servers that answer an unknown session with 400
// rather than 404 ("Bad Request: No valid session ID", "unknown session").
func sessionComplaint(body []byte) bool {
	b := bytes.ToLower(body)
	return bytes.Contains(b, []byte("session")) || bytes.Contains(b, []byte("not initialized"))
}

func (c *streamableClient) readJSON(r io.Reader, id int64) (*bus.Message, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxUpstreamBody+1))
	if err != nil {
		return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: reading the answer failed: %s", c.server, bus.NetworkReason(err))
	}
	if len(data) > maxUpstreamBody {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q: answer larger than %d bytes", c.server, maxUpstreamBody)
	}
	return c.matchResponse(data, id)
}

func (c *streamableClient) matchResponse(data []byte, id int64) (*bus.Message, error) {
	var m bus.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q sent a malformed JSON-RPC message", c.server)
	}
	if !m.IsResponse() || string(m.ID) != strconv.FormatInt(id, 10) {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered with a message that is not the response to our request", c.server)
	}
	return &m, nil
}

// readSSE reads events until the response to id arrives. Notifications go to
// the relay (session-wide ones to events); a request from the upstream is
// answered in the background so the upstream is never left waiting: ping
// locally, others by the relay (the client that made the call).
func (c *streamableClient) readSSE(ctx context.Context, body io.Reader, s *session, id int64, r Relay) (*bus.Message, error) {
	r = relayOr(r)
	want := strconv.FormatInt(id, 10)
	sc := getSSEScanner(body, maxUpstreamBody)
	defer putSSEScanner(sc) // every message taken from it is decoded (copied) first
	for {
		data, err := sc.Next()
		if err != nil {
			if err == io.EOF {
				return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q closed the stream before answering", c.server)
			}
			return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: stream broke: %s", c.server, bus.NetworkReason(err))
		}
		if len(data) == 0 {
			continue
		}
		var m bus.Message
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q sent a malformed JSON-RPC message on its stream", c.server)
		}
		switch {
		case m.IsResponse() && string(m.ID) == want:
			return &m, nil
		case m.IsNotification():
			if c.events != nil && sessionWide(m.Method) {
				c.events.SessionNotification(m.Method, m.Params)
			} else {
				r.Notify(m.Method, m.Params)
			}
		case m.IsRequest() && s.modern:
			// The stateless era has no server-to-client requests (it asks
			// with input_required results): nothing could take an answer.
			c.log.Debug("dropped a request a stateless-era upstream sent on a call's stream", "server", c.server, "method", m.Method)
		case m.IsRequest():
			if m.Method == bus.MethodPing {
				c.tasks.spawn(func() { c.answer(s, bus.ResultResponse(m.ID, json.RawMessage(`{}`))) })
				continue
			}
			r.Hold()
			if !c.tasks.spawn(func() {
				defer r.Release()
				// The call's context, cut short by Close.
				rctx, cancel := context.WithCancel(ctx)
				defer cancel()
				defer context.AfterFunc(c.base, cancel)()
				c.answer(s, r.Request(rctx, &m))
			}) {
				r.Release()
			}
		}
	}
}

// cancelUpstream sends notifications/cancelled for request id.
func (c *streamableClient) cancelUpstream(s *session, id int64, cause error) {
	reason := "cancelled by the gateway"
	if errors.Is(cause, context.DeadlineExceeded) {
		reason = "the gateway's timeout for this call expired"
	}
	params, _ := json.Marshal(map[string]any{"requestId": id, "reason": reason})
	ctx, cancel := context.WithTimeout(c.base, 5*time.Second)
	defer cancel()
	_, _, _ = c.post(ctx, s, bus.Notification("notifications/cancelled", params), 0, nil, nil)
}

// answer POSTs the response to a server-to-client request in session s.
func (c *streamableClient) answer(s *session, reply []byte) {
	ctx, cancel := context.WithTimeout(c.base, 10*time.Second)
	defer cancel()
	if _, _, err := c.post(ctx, s, reply, 0, nil, nil); err != nil {
		c.log.Debug("answering a server-to-client request failed", "err", bus.AsError(err).Detail())
	}
}

// classify turns a transport failure into a gateway error that names the server
// and says what happened, without the URL (it may carry a credential).
func (c *streamableClient) classify(ctx context.Context, err error) error {
	var be *bus.Error
	if errors.As(err, &be) {
		return be
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return bus.Wrap(bus.ErrUpstreamTimeout, err, "upstream server %q did not answer in time", c.server)
	}
	if errors.Is(err, context.Canceled) {
		return bus.Wrap(bus.ErrUpstreamUnavailable, err, "call to upstream server %q was cancelled", c.server)
	}
	return bus.Wrap(bus.ErrUpstreamUnavailable, err, "upstream server %q is unavailable: %s", c.server, bus.NetworkReason(err))
}

// rpcErrorMessage extracts error.message from a raw JSON-RPC error object.
func rpcErrorMessage(raw json.RawMessage) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Message == "" {
		return "unknown error"
	}
	return strings.TrimSpace(e.Message)
}
