package upstream

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
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/signing"
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
	events Events

	nextID atomic.Int64
	cur    atomic.Pointer[connSession]

	mu      sync.Mutex
	opening *openAttempt // the initialize in flight, shared by all waiters

	base      context.Context // ends with Close; bounds opens and background writes
	cancel    context.CancelFunc
	closeOnce sync.Once

	tasks goroutines // reader, open and background-write goroutines
}

// openAttempt is one connect + initialize, awaited by every caller that needs
// a session meanwhile.
type openAttempt struct {
	done chan struct{}
	s    *connSession
	err  error
}

var _ Client = (*connClient)(nil)

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

// Call sends one request and waits for its response, whose result or error the
// worker relays verbatim. Progress notifications carrying the request's
// params._meta.progressToken go to r, and what the attribution rule gives the
// call; r is never used after Call returns (server-to-client requests hold it).
func (c *connClient) Call(ctx context.Context, method string, params json.RawMessage, r Relay) (*bus.Message, error) {
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
		c.tasks.wait()
	})
}

// spawn runs f in a goroutine Close waits for; false once Close has begun.
func (c *connClient) spawn(f func()) bool { return c.tasks.spawn(f) }

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
		c.events.SessionOpened()
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
	ctx = signing.ForGateway(ctx) // the session serves every caller
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

	msg, err := s.call(ctx, bus.MethodInitialize, initializeParams(c.version, c.caps), nil, false)
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
	if errors.As(err, &ue) { // a network failure; its URL is never printed (bus.SafeCause)
		return bus.Wrap(bus.ErrUpstreamUnavailable, err, "upstream server %q (%s) is unavailable: %s", server, tr, bus.NetworkReason(err))
	}
	// A closed or broken connection or pipe: the cause goes to the log.
	return bus.Wrap(bus.ErrUpstreamUnavailable, err, "upstream server %q (%s): connection lost", server, tr)
}
