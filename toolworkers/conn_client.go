package toolworkers

// connClient speaks MCP to an upstream reached through a go-sdk mcp.Connection:
// legacy SSE (the 2024-11-05 HTTP+SSE transport, through mcp.SSEClientTransport)
// or stdio (a supervised child process, see stdio.go). The go-sdk transports do
// the framing; the JSON-RPC on top is ours, for the same reasons as in
// streamable_client.go: results and errors must be relayed verbatim, requests
// carry our own ids, and progress notifications must reach the call whose
// (already rewritten) progress token they carry.
//
// One connection (one upstream session) is shared by every call of a worker
// replica: one reader goroutine dispatches responses by id to the waiting Call,
// progress notifications by token, and answers the upstream's own requests.
//
// What the upstream sends besides responses and progress cannot always be
// tied to a call: these transports have one stream for everything. The
// attribution rule: session-wide notifications (list_changed,
// resources/updated) go to the session's events; a log message or a
// server-to-client request goes to the one call in flight if there is exactly
// one (it can only be that call's), otherwise to the session's events (a
// private session's client; on a shared session a request is refused and a
// log message dropped). So with concurrent calls on a shared stdio or SSE
// session, log messages are lost and sampling/elicitation/roots requests are
// refused; one call at a time relays everything.
// When the connection breaks, every pending call fails with
// ErrUpstreamUnavailable and the next call opens a new session (SSE reconnects,
// stdio waits for the supervisor's restarted process).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// connector opens the connection a connClient session runs on.
type connector interface {
	// connect returns a fresh connection, giving up when ctx ends.
	connect(ctx context.Context) (*dialed, error)
	// transport names the transport in errors and logs ("sse", "stdio").
	transport() string
	// retryInit reports whether a session that died during initialize should be
	// opened again for the same caller (stdio: the process is being restarted).
	retryInit() bool
	// gapErr says why a caller whose context ended while waiting for a session
	// got none, if the transport knows better than "timeout" (stdio: the
	// process is starting or restarting); nil otherwise.
	gapErr() *bus.Error
	// beginClose says Close has begun, before the session is failed (stdio: so
	// the supervisor does not take the session's end for a crash).
	beginClose()
	// close releases everything (stdio: ends the process) and waits for it.
	close()
}

// dialed is one connection from a connector.
type dialed struct {
	conn mcp.Connection
	// release is called once when the session on conn dies (after conn.Close).
	release func()
	// ready, if set, is called when the session on conn is initialized.
	ready func()
}

// Timeouts of an initialize, which runs detached from the caller that started
// it (see session): a slow starter (npx fetching a package) is not killed
// because its first caller gave up, but a wedged one is not waited for forever.
const (
	sseInitTimeout   = 30 * time.Second
	stdioInitTimeout = 60 * time.Second
)

// connClient is an upstream reached through a go-sdk mcp.Connection: legacy SSE
// (mcp.SSEClientTransport) or stdio (a supervised process).
type connClient struct {
	server      string // server name, for errors and logs
	version     string // protocol version to ask for at initialize
	log         *slog.Logger
	dial        connector
	initTimeout time.Duration
	// caps are declared at initialize (nil: none); events, if set, receives
	// what cannot be tied to a call (see the attribution rule above).
	caps   json.RawMessage
	events sessionEvents

	nextID atomic.Int64
	cur    atomic.Pointer[connSession]

	mu      sync.Mutex
	opening *openAttempt // the initialize in flight, shared by all waiters

	base      context.Context // ends with Close; bounds opens and background writes
	cancel    context.CancelFunc
	closeOnce sync.Once

	goMu    sync.Mutex
	closing bool           // set by Close: spawn starts nothing more
	wg      sync.WaitGroup // reader, open and background-write goroutines
}

// openAttempt is one connect + initialize, awaited by every caller that needs
// a session meanwhile.
type openAttempt struct {
	done chan struct{}
	s    *connSession
	err  error
}

var _ upstream = (*connClient)(nil)

func newConnClient(server string, dial connector, version string, initTimeout time.Duration, log *slog.Logger) *connClient {
	if log == nil {
		log = slog.Default()
	}
	base, cancel := context.WithCancel(context.Background())
	return &connClient{
		server:      server,
		version:     version,
		log:         log,
		dial:        dial,
		initTimeout: initTimeout,
		base:        base,
		cancel:      cancel,
	}
}

// newSSEClient returns a client for a legacy HTTP+SSE endpoint (the GET URL that
// announces the message endpoint). hc carries the credentials (through its
// Transport) and must have no overall Timeout, since the GET stream stays open
// for the whole session; nil selects a client like the Streamable HTTP one.
// endpoint may hold a credential: it never appears in an error or a log line.
func newSSEClient(server, endpoint string, hc *http.Client, version string, log *slog.Logger) *connClient {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	// The SDK reports an HTTP failure as text ("failed to connect: Unauthorized");
	// statusTransport makes the status available to classify instead. It also
	// keeps every request on the endpoint's origin: the server names the URL
	// messages are POSTed to, and hc adds the gateway's credentials to them.
	wrapped := *hc
	wrapped.Transport = &statusTransport{base: hc.Transport, origin: originOf(endpoint)}
	return newConnClient(server, &sseConnector{server: server, endpoint: endpoint, hc: &wrapped}, version, sseInitTimeout, log)
}

// Call sends one request and waits for its response, whose result or error the
// worker relays verbatim. Progress notifications carrying the request's
// params._meta.progressToken go to r, and what the attribution rule gives the
// call; r is never used after Call returns (server-to-client requests hold it).
func (c *connClient) Call(ctx context.Context, method string, params json.RawMessage, r *callRelay) (*bus.Message, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	return s.call(ctx, method, params, r, true)
}

// Notify sends one notification in the session, opening it if needed.
func (c *connClient) Notify(ctx context.Context, method string, params json.RawMessage) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if err := s.conn.Write(ctx, &jsonrpc.Request{Method: method, Params: params}); err != nil {
		return c.classify(err)
	}
	return nil
}

// Info returns the upstream's initialize result, opening the session if needed.
func (c *connClient) Info(ctx context.Context) (json.RawMessage, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	return s.init, nil
}

// Close ends the session, fails pending calls, releases the transport (stdio:
// ends the process, see stdioConnector.close) and waits for its goroutines.
func (c *connClient) Close() {
	c.closeOnce.Do(func() {
		c.dial.beginClose()
		c.mu.Lock() // runOpen stores a session under mu only while base lives
		c.cancel()
		s := c.cur.Swap(nil)
		c.mu.Unlock()
		if s != nil {
			s.fail(c.closedErr(), nil)
		}
		c.dial.close()
		c.goMu.Lock()
		c.closing = true
		c.goMu.Unlock()
		c.wg.Wait()
	})
}

// spawn runs f in a goroutine Close waits for; false once Close has begun.
func (c *connClient) spawn(f func()) bool {
	c.goMu.Lock()
	defer c.goMu.Unlock()
	if c.closing {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

func (c *connClient) closedErr() *bus.Error {
	return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (%s): the worker is shutting down", c.server, c.dial.transport())
}

// session returns the live session or waits for one. The first caller starts
// an open attempt in the background, bounded by the client's lifetime and the
// later of its own deadline and initTimeout; every caller waits for it on its
// own context. So concurrent first calls share one initialize, and a caller that
// gives up does not abort an initialize others (or the next call) can use.
func (c *connClient) session(ctx context.Context) (*connSession, error) {
	for {
		if s := c.cur.Load(); s != nil && !s.isDead() {
			return s, nil
		}
		c.mu.Lock()
		if c.base.Err() != nil {
			c.mu.Unlock()
			return nil, c.closedErr()
		}
		if s := c.cur.Load(); s != nil && !s.isDead() {
			c.mu.Unlock()
			return s, nil
		}
		a := c.opening
		if a == nil {
			a = &openAttempt{done: make(chan struct{})}
			deadline := time.Now().Add(c.initTimeout)
			if d, ok := ctx.Deadline(); ok && d.After(deadline) {
				deadline = d
			}
			if !c.spawn(func() { c.runOpen(a, deadline) }) {
				c.mu.Unlock()
				return nil, c.closedErr()
			}
			c.opening = a
		}
		c.mu.Unlock()

		select {
		case <-a.done:
		case <-ctx.Done():
			if e := c.dial.gapErr(); e != nil {
				return nil, e
			}
			return nil, bus.ContextError(ctx, c.server)
		}
		if a.err == nil {
			return a.s, nil
		}
		if errors.Is(a.err, errConnLost) && c.dial.retryInit() {
			if ctx.Err() == nil {
				continue // the process died under initialize: wait for the restarted one
			}
			// The caller's time ran out as the process died: the same answer
			// as a wait that ended in the restart gap, whichever came first.
			if e := c.dial.gapErr(); e != nil {
				return nil, e
			}
			return nil, bus.ContextError(ctx, c.server)
		}
		return nil, a.err
	}
}

// runOpen runs one open attempt and publishes its outcome.
func (c *connClient) runOpen(a *openAttempt, deadline time.Time) {
	ctx, cancel := context.WithDeadline(c.base, deadline)
	defer cancel()
	s, err := c.open(ctx)
	c.mu.Lock()
	if err == nil {
		if c.base.Err() != nil { // Close ran meanwhile and did not see s
			s.fail(c.closedErr(), nil)
			s, err = nil, c.closedErr()
		} else {
			c.cur.Store(s)
		}
	}
	c.opening = nil
	c.mu.Unlock()
	if err == nil && c.events != nil {
		c.events.sessionOpened()
	}
	if err != nil && !errors.Is(err, errConnLost) {
		c.log.Debug("opening upstream session failed", "server", c.server, "transport", c.dial.transport(), "err", err.Error())
	}
	a.s, a.err = s, err
	close(a.done)
}

// errConnLost marks an initialize that failed because the connection died.
var errConnLost = errors.New("connection lost")

// open connects, starts the reader and runs the initialize handshake.
func (c *connClient) open(ctx context.Context) (*connSession, error) {
	d, err := c.dial.connect(ctx)
	if err != nil {
		return nil, err
	}
	s := &connSession{
		c:       c,
		conn:    d.conn,
		release: d.release,
		calls:   map[int64]*pendingCall{},
		tokens:  map[string]*pendingCall{},
	}
	if !c.spawn(s.readLoop) {
		s.fail(nil, nil)
		return nil, c.closedErr()
	}

	msg, err := s.call(ctx, "initialize", initializeParams(c.version, c.caps), nil, false)
	if err != nil {
		s.fail(nil, nil)
		var be *bus.Error
		if errors.As(err, &be) && s.lost.Load() && c.dial.retryInit() {
			return nil, &connLostError{be}
		}
		if ctx.Err() != nil && c.base.Err() == nil {
			return nil, bus.Errorf(bus.ErrUpstreamTimeout, "upstream server %q (%s) did not answer initialize in time", c.server, c.dial.transport())
		}
		return nil, err
	}
	if len(msg.Error) > 0 {
		s.fail(nil, nil)
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q (%s) refused initialize: %s", c.server, c.dial.transport(), rpcErrorMessage(msg.Error))
	}
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(msg.Result, &res); err != nil || res.ProtocolVersion == "" {
		s.fail(nil, nil)
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q (%s) sent an initialize result without protocolVersion", c.server, c.dial.transport())
	}
	s.init = msg.Result
	note := &jsonrpc.Request{Method: "notifications/initialized"}
	if err := d.conn.Write(ctx, note); err != nil {
		s.fail(nil, nil)
		if c.dial.retryInit() {
			return nil, &connLostError{c.lostErr()}
		}
		return nil, c.classify(err)
	}
	if d.ready != nil {
		d.ready()
	}
	return s, nil
}

// connLostError is the caller's error for an initialize whose connection died;
// it unwraps to errConnLost so session can wait for a new connection.
type connLostError struct{ e *bus.Error }

func (e *connLostError) Error() string   { return e.e.Message }
func (e *connLostError) Unwrap() []error { return []error{e.e, errConnLost} }

func (c *connClient) lostErr() *bus.Error {
	return classifyConnErr(c.server, c.dial.transport(), io.EOF)
}

// connSession is one initialized session on one connection.
type connSession struct {
	c       *connClient
	conn    mcp.Connection
	release func()
	init    json.RawMessage // the upstream's initialize result, verbatim

	lost atomic.Bool // the connection broke (as opposed to being closed by us)

	mu     sync.Mutex
	dead   bool
	calls  map[int64]*pendingCall
	tokens map[string]*pendingCall // by progress token key
}

// pendingCall is one request waiting for its response.
type pendingCall struct {
	id     int64
	token  string // progress token key, "" if none
	result chan callResult
	ctx    context.Context // the call's; bounds requests relayed for it

	mu       sync.Mutex // held while notify runs, so Call never returns under it
	relay    *callRelay
	finished bool
}

type callResult struct {
	msg *bus.Message
	err error
}

func (s *connSession) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// call sends a request on this session and waits for the answer. cancellable
// says whether to tell the upstream (notifications/cancelled) when ctx ends
// first; initialize must not be cancelled that way.
func (s *connSession) call(ctx context.Context, method string, params json.RawMessage, r *callRelay, cancellable bool) (*bus.Message, error) {
	c := s.c
	pc := &pendingCall{
		id:     c.nextID.Add(1),
		token:  requestProgressToken(params),
		result: make(chan callResult, 1),
		ctx:    ctx,
		relay:  r,
	}
	defer pc.finish()

	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return nil, c.lostErr()
	}
	s.calls[pc.id] = pc
	if pc.token != "" {
		if _, taken := s.tokens[pc.token]; !taken {
			s.tokens[pc.token] = pc
		}
	}
	s.mu.Unlock()

	rid, _ := jsonrpc.MakeID(float64(pc.id)) // an int64 id; the package exports no Int64ID
	req := &jsonrpc.Request{ID: rid, Method: method, Params: params}
	if err := s.conn.Write(ctx, req); err != nil {
		s.forget(pc)
		if ctx.Err() != nil {
			return nil, bus.ContextError(ctx, c.server)
		}
		e := c.classify(err)
		var se *httpStatusError
		if errors.As(err, &se) && se.code >= 400 && se.code < 500 && se.code != http.StatusNotFound {
			// The upstream refused this one message (an SSE server checks
			// methods and params before accepting a POST); the session is fine.
			return nil, e
		}
		// Otherwise the transport cannot be trusted with the session (a
		// broken pipe, a forgotten session): start over on the next call.
		s.lost.Store(true)
		s.fail(e, err)
		return nil, e
	}
	select {
	case r := <-pc.result:
		return r.msg, r.err
	case <-ctx.Done():
		if s.forget(pc) && cancellable {
			s.sendCancel(pc.id, ctx.Err())
		}
		return nil, bus.ContextError(ctx, c.server)
	}
}

// forget removes pc from the session and reports whether it was still pending.
func (s *connSession) forget(pc *pendingCall) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.calls[pc.id]; !ok {
		return false
	}
	delete(s.calls, pc.id)
	if pc.token != "" && s.tokens[pc.token] == pc {
		delete(s.tokens, pc.token)
	}
	return true
}

// sendCancel tells the upstream, best effort and in the background, that the
// caller gave up on request id.
func (s *connSession) sendCancel(id int64, reason error) {
	params, _ := json.Marshal(map[string]any{"requestId": id, "reason": reason.Error()})
	s.background(&jsonrpc.Request{Method: "notifications/cancelled", Params: params})
}

// background writes msg without holding up the caller or the reader.
func (s *connSession) background(msg jsonrpc.Message) {
	c := s.c
	c.spawn(func() {
		ctx, cancel := context.WithTimeout(c.base, 10*time.Second)
		defer cancel()
		if err := s.conn.Write(ctx, msg); err != nil {
			c.log.Debug("write to upstream failed", "server", c.server, "transport", c.dial.transport(), "err", safeReason(err))
		}
	})
}

// finish marks the call returned: no notification is delivered after this.
func (pc *pendingCall) finish() {
	pc.mu.Lock()
	pc.finished = true
	pc.mu.Unlock()
}

func (pc *pendingCall) deliver(method string, params json.RawMessage) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.finished {
		pc.relay.notify(method, params)
	}
}

// heldRelay returns the call's relay, held for a request relayed after the
// call may have returned; ok is false once the call has finished.
func (pc *pendingCall) heldRelay() (r *callRelay, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.finished {
		return nil, false
	}
	pc.relay.hold()
	return pc.relay, true
}

// only returns the one call in flight, or nil when there are none or several.
func (s *connSession) only() *pendingCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) != 1 {
		return nil
	}
	for _, pc := range s.calls {
		return pc
	}
	return nil
}

// fail ends the session: the connection is closed, the transport released and
// every pending call fails with e (nil: "connection lost"). cause, if any, is
// logged (without URLs).
func (s *connSession) fail(e *bus.Error, cause error) {
	c := s.c
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	calls := s.calls
	s.calls, s.tokens = nil, nil
	s.mu.Unlock()

	if c.cur.CompareAndSwap(s, nil) && c.events != nil && c.base.Err() == nil {
		c.events.sessionLost()
	}
	_ = s.conn.Close()
	if s.release != nil {
		s.release()
	}
	if e == nil {
		e = c.lostErr()
	}
	if cause != nil {
		c.log.Warn("upstream connection lost", "server", c.server, "transport", c.dial.transport(), "pending_calls", len(calls), "err", safeReason(cause))
	}
	for _, pc := range calls {
		pc.result <- callResult{err: e}
	}
}

// readLoop reads messages until the connection breaks.
func (s *connSession) readLoop() {
	for {
		msg, err := s.conn.Read(context.Background())
		if err != nil {
			if !s.isDead() {
				s.lost.Store(true)
				s.fail(nil, err)
			}
			return
		}
		switch m := msg.(type) {
		case *jsonrpc.Response:
			s.dispatch(m)
		case *jsonrpc.Request:
			if m.IsCall() {
				s.answer(m)
			} else {
				s.notification(m)
			}
		}
	}
}

// dispatch hands a response to the call waiting for its id.
func (s *connSession) dispatch(r *jsonrpc.Response) {
	id, ok := r.ID.Raw().(int64)
	if !ok {
		s.c.log.Debug("dropped upstream response with a foreign id", "server", s.c.server)
		return
	}
	s.mu.Lock()
	pc := s.calls[id]
	if pc != nil {
		delete(s.calls, id)
		if pc.token != "" && s.tokens[pc.token] == pc {
			delete(s.tokens, pc.token)
		}
	}
	s.mu.Unlock()
	if pc == nil {
		s.c.log.Debug("dropped upstream response to no pending call", "server", s.c.server, "id", id)
		return
	}
	pc.result <- callResult{msg: responseMessage(id, r)}
}

// responseMessage turns a go-sdk response into a bus.Message: the result as
// it came, or the error re-encoded with its code, message and data.
func responseMessage(id int64, r *jsonrpc.Response) *bus.Message {
	m := &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(strconv.FormatInt(id, 10))}
	if r.Error != nil {
		m.Error = wireErrorJSON(r.Error)
		return m
	}
	m.Result = r.Result
	if len(m.Result) == 0 {
		m.Result = json.RawMessage("null")
	}
	return m
}

func wireErrorJSON(err error) json.RawMessage {
	var obj struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	}
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		obj.Code, obj.Message, obj.Data = we.Code, we.Message, we.Data
	} else {
		obj.Code, obj.Message = jsonrpc.CodeInternalError, err.Error()
	}
	raw, mErr := json.Marshal(obj)
	if mErr != nil { // data was not valid JSON
		obj.Data = nil
		raw, _ = json.Marshal(obj)
	}
	return raw
}

// answer replies to a request from the upstream: ping succeeds; anything else
// goes, by the attribution rule, to the one call in flight or to the session's
// events, which relay it to the client; the answer is written in the
// background.
func (s *connSession) answer(m *jsonrpc.Request) {
	if m.Method == "ping" {
		s.background(&jsonrpc.Response{ID: m.ID, Result: json.RawMessage(`{}`)})
		return
	}
	c := s.c
	msg, ok := busMessage(m)
	if !ok {
		s.background(&jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "mcpbus could not read the request"}})
		return
	}
	var handle func() []byte
	if pc := s.only(); pc != nil {
		if r, ok := pc.heldRelay(); ok {
			handle = func() []byte {
				defer r.release()
				return r.request(pc.ctx, msg)
			}
		}
	}
	if handle == nil && c.events != nil {
		handle = func() []byte { return c.events.serverRequest(c.base, msg) }
	}
	if handle == nil {
		handle = func() []byte {
			return refusal(msg.ID, codeMethodNotFound, "the client cannot receive "+m.Method+": no single call or client on this upstream session can answer it")
		}
	}
	c.spawn(func() {
		reply := handle()
		var resp jsonrpc.Response
		var wire struct {
			Result json.RawMessage `json:"result"`
			Error  *jsonrpc.Error  `json:"error"`
		}
		if json.Unmarshal(reply, &wire) != nil {
			return
		}
		resp.ID, resp.Result = m.ID, wire.Result
		if wire.Error != nil {
			resp.Error = wire.Error
		}
		ctx, cancel := context.WithTimeout(c.base, 10*time.Second)
		defer cancel()
		if err := s.conn.Write(ctx, &resp); err != nil {
			c.log.Debug("write to upstream failed", "server", c.server, "transport", c.dial.transport(), "err", safeReason(err))
		}
	})
}

// busMessage re-encodes a go-sdk request as a bus message (its id as on the wire).
func busMessage(m *jsonrpc.Request) (*bus.Message, bool) {
	data, err := jsonrpc.EncodeMessage(m)
	if err != nil {
		return nil, false
	}
	var msg bus.Message
	if json.Unmarshal(data, &msg) != nil {
		return nil, false
	}
	return &msg, true
}

// notification routes notifications/progress to the call that carries its
// token, and the rest by the attribution rule.
func (s *connSession) notification(m *jsonrpc.Request) {
	if m.Method == "notifications/progress" {
		var p struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		}
		if json.Unmarshal(m.Params, &p) == nil {
			if key := tokenKey(p.ProgressToken); key != "" {
				s.mu.Lock()
				pc := s.tokens[key]
				s.mu.Unlock()
				if pc != nil {
					pc.deliver(m.Method, m.Params)
					return
				}
			}
		}
	}
	switch {
	case s.c.events != nil && sessionWide(m.Method):
		s.c.events.sessionNotification(m.Method, m.Params)
		return
	case m.Method == "notifications/message":
		if pc := s.only(); pc != nil {
			pc.deliver(m.Method, m.Params)
			return
		}
		if s.c.events != nil {
			s.c.events.sessionNotification(m.Method, m.Params)
			return
		}
	}
	s.c.log.Debug("dropped upstream notification", "server", s.c.server, "transport", s.c.dial.transport(), "method", m.Method)
}

// requestProgressToken returns the key of params._meta.progressToken, or "".
func requestProgressToken(params json.RawMessage) string {
	if !bytes.Contains(params, []byte(`"progressToken"`)) {
		return ""
	}
	var p struct {
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	return tokenKey(p.Meta.ProgressToken)
}

// tokenKey canonicalises a progress token (a JSON string or number) so the
// request's token and the notification's compare equal however they are spelt.
func tokenKey(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return "s:" + s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	if f, err := strconv.ParseFloat(n.String(), 64); err == nil {
		return "n:" + strconv.FormatFloat(f, 'g', -1, 64) // 7, 7.0 and 7e0 are one token
	}
	return "n:" + n.String()
}

// classify turns a transport failure into a gateway error naming the server,
// without the URL (it may carry a credential).
func (c *connClient) classify(err error) *bus.Error {
	return classifyConnErr(c.server, c.dial.transport(), err)
}

func classifyConnErr(server, tr string, err error) *bus.Error {
	var be *bus.Error
	if errors.As(err, &be) {
		return be
	}
	if errors.Is(err, errForeignOrigin) {
		return bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q (%s) sent the gateway to another host (message endpoint or redirect); refused", server, tr)
	}
	var se *httpStatusError
	if errors.As(err, &se) {
		switch code := se.code; {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return bus.Errorf(bus.ErrUpstreamAuth, "upstream server %q refused the gateway's configured credentials (HTTP %d)", server, code)
		case code == http.StatusNotFound:
			return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (%s) does not know the session or endpoint (HTTP 404)", server, tr)
		case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable || code == http.StatusBadGateway || code == http.StatusGatewayTimeout:
			return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q is unavailable (HTTP %d)", server, code)
		default:
			return bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q (%s) answered HTTP %d", server, tr, code)
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) { // a network failure; never printed, it holds the URL
		return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (%s) is unavailable: %s", server, tr, safeReason(err))
	}
	// A closed or broken connection or pipe.
	return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (%s): connection lost", server, tr)
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
