package agentworkers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/a2a/wire"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// call is one JSON-RPC request a worker answers.
type call struct {
	a     *agent
	env   bus.Envelope
	nc    *nats.Conn
	reply bus.Reply

	clientWire, agentWire string
	method                string          // as the caller named it
	id                    json.RawMessage // the caller's request id

	// What the usage event says.
	status            string // "ok", "error" (the agent's JSON-RPC error), "failed"
	errCode           string
	bytesIn, bytesOut int
	streamed          bool // an event went to the caller's stream
}

// response is one JSON-RPC response, as the caller gets it.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

// maxErrorBody bounds what is read of an agent's error answer.
const maxErrorBody = 64 << 10

// run makes the call and answers it.
func (c *call) run(ctx context.Context, body []byte) {
	msg, e := bus.ParseMessage(body)
	if e != nil {
		c.fail(e)
		return
	}
	if msg.Method == "" || msg.ID == nil {
		c.fail(bus.Errorf(bus.ErrInvalidRequest, "an A2A call is a JSON-RPC request: a method and an id"))
		return
	}
	c.method, c.id = msg.Method, msg.ID
	if msg.Method == "agent/getAuthenticatedExtendedCard" || msg.Method == "GetExtendedAgentCard" {
		// It would name the agent's own URL; the gateway serves the card.
		c.fail(bus.Errorf(bus.ErrMethodNotFound, "%s: the gateway does not relay extended cards; the agent's card is at /a2a/%s/.well-known/agent-card.json", msg.Method, c.a.c.Name))
		return
	}
	if c.clientWire != bus.A2AV03 && c.clientWire != bus.A2AV10 {
		c.clientWire = bus.A2AClientWire(msg.Method, "")
	}
	c.agentWire = c.a.c.ProtocolVersion
	if c.agentWire == "" {
		c.agentWire = c.clientWire // not pinned: the caller's
	}
	method, err := wire.Method(msg.Method, c.clientWire, c.agentWire)
	if err != nil {
		c.fail(bus.Errorf(bus.ErrMethodNotFound, "method %s is not translated from A2A %s to %s, which agent %s speaks: call it in the agent's wire",
			bus.Shorten(msg.Method, 64), c.clientWire, c.agentWire, c.a.c.Name))
		return
	}
	params, err := wire.Params(msg.Method, msg.Params, c.clientWire, c.agentWire)
	if err != nil {
		c.fail(bus.Errorf(bus.ErrInvalidParams, "%s: %v", bus.Shorten(msg.Method, 64), err))
		return
	}
	stream := bus.A2AStreaming(msg.Method)
	if stream && c.env.Stream == "" {
		c.fail(bus.Errorf(bus.ErrBadRequest, "a streaming request came without a stream to send its events to"))
		return
	}
	out, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", msg.ID, method, params})
	if err != nil {
		c.fail(bus.Wrap(bus.ErrInternal, err, "could not encode the agent request"))
		return
	}
	resp, e := c.post(ctx, out, stream)
	if e != nil {
		c.fail(e)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		if !stream {
			c.fail(bus.Errorf(bus.ErrUpstreamProtocol, "agent %s answered %s with an event stream", c.a.c.Name, bus.Shorten(msg.Method, 64)))
			return
		}
		c.relay(ctx, resp.Body)
		return
	}
	c.answer(ctx, resp.Body) // a stream the agent answered in one piece (its error, say) too
}

// post sends the request to the agent with its credentials.
func (c *call) post(ctx context.Context, body []byte, stream bool) (*http.Response, *bus.Error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.a.url(c.agentWire), bytes.NewReader(body))
	if err != nil {
		return nil, bus.Errorf(bus.ErrInternal, "agent %s: its URL does not make a request", c.a.c.Name)
	}
	for k, v := range c.a.header {
		hr.Header[k] = v
	}
	hr.Header.Set("Content-Type", "application/json")
	if stream {
		hr.Header.Set("Accept", "text/event-stream")
	} else {
		hr.Header.Set("Accept", "application/json")
	}
	if c.agentWire == bus.A2AV10 {
		hr.Header.Set("A2A-Version", bus.A2AV10) // an absent header means 0.3
	}
	resp, err := c.a.client.Do(hr)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, c.statusError(resp.StatusCode, resp.Header, raw)
}

// answer relays the agent's one JSON-RPC response.
func (c *call) answer(ctx context.Context, body io.Reader) {
	max := c.nc.MaxPayload() - 64<<10
	raw, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		c.fail(c.transportError(ctx, err))
		return
	}
	if int64(len(raw)) > max {
		c.fail(bus.Errorf(bus.ErrUpstreamProtocol, "agent %s answered more than %d bytes, more than one bus message carries", c.a.c.Name, max))
		return
	}
	out, e := c.response(raw, false)
	if e != nil {
		c.fail(e)
		return
	}
	c.bytesOut = len(out)
	c.reply.Msg(out, nats.Header{bus.HeaderA2AAgent: {c.a.c.Name}})
}

// response reads one JSON-RPC response of the agent and makes the
// caller's: its wire, its id, the agent's credentials removed.
func (c *call) response(raw []byte, event bool) ([]byte, *bus.Error) {
	m, e := bus.ParseMessage(raw)
	if e != nil || m.Method != "" || (m.Result == nil && m.Error == nil) {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "agent %s answered with something that is not a JSON-RPC response", c.a.c.Name)
	}
	out := response{JSONRPC: "2.0", ID: c.id, Result: m.Result, Error: m.Error}
	if m.Error != nil {
		c.status, c.errCode = "error", rpcCode(m.Error)
	} else {
		var err error
		if event {
			out.Result, err = wire.Event(m.Result, c.agentWire, c.clientWire)
		} else {
			out.Result, err = wire.Result(c.method, m.Result, c.agentWire, c.clientWire)
		}
		if err != nil {
			return nil, bus.Errorf(bus.ErrUpstreamProtocol, "agent %s: its answer could not be translated from A2A %s to %s: %v", c.a.c.Name, c.agentWire, c.clientWire, err)
		}
		if c.status == "" {
			c.status = "ok"
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, bus.Wrap(bus.ErrInternal, err, "could not encode the answer")
	}
	return c.a.scrub.JSON(b), nil
}

// relay publishes each event of the agent's stream to the POST's stream,
// in order, as it comes, then answers; an error event ends it.
func (c *call) relay(ctx context.Context, body io.Reader) {
	to := bus.ClientSubject(c.env.Stream, bus.A2ASender)
	max := int(c.nc.MaxPayload() - 16<<10)
	err := readEvents(body, max, func(data []byte) error {
		out, e := c.response(data, true)
		if e != nil {
			return e
		}
		if err := c.nc.Publish(to, bytes.Clone(out)); err != nil {
			return bus.Wrap(bus.ErrInternal, err, "could not send an event to the client's stream")
		}
		c.streamed = true
		c.bytesOut += len(out)
		if c.status == "error" {
			return errEnd
		}
		return nil
	})
	var e *bus.Error
	switch {
	case err == nil || errors.Is(err, errEnd):
	case errors.As(err, &e):
		c.fail(e)
		return
	default:
		c.fail(c.transportError(ctx, err))
		return
	}
	if c.status == "" {
		c.status = "ok"
	}
	c.reply.Msg(nil, nats.Header{bus.HeaderA2AAgent: {c.a.c.Name}, bus.HeaderA2AStreamed: {"true"}})
}

var errEnd = errors.New("the stream ended with an error event")

// fail answers with e, telling the ingress whether events went out.
func (c *call) fail(e *bus.Error) {
	e.Message = c.a.scrub.Text(e.Message)
	c.status, c.errCode = "failed", e.Kind.Code
	if e.Kind == bus.ErrInternal || e.Cause != nil {
		c.a.log.Warn("agent call failed", "agent", c.a.c.Name, "method", bus.Shorten(c.method, 64), "request_id", c.env.RequestID, "err", c.a.scrub.Text(e.Detail()))
	}
	h := nats.Header{bus.HeaderA2AAgent: {c.a.c.Name}}
	if c.streamed {
		h.Set(bus.HeaderA2AStreamed, "true")
	}
	_ = c.reply.ErrorWith(e, h)
}

// statusError maps an agent's HTTP error answer: a JSON-RPC error in it
// is the agent's and goes to the caller (scrubbed); otherwise the status
// says what failed. A refused credential is never quoted.
func (c *call) statusError(status int, h http.Header, raw []byte) *bus.Error {
	who := "agent " + c.a.c.Name
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return bus.Errorf(bus.ErrUpstreamAuth, "%s refused the gateway's credentials for it (status %d); see its litellm_params.api_key and headers", who, status)
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return bus.Errorf(bus.ErrUpstreamTimeout, "%s timed out (status %d)", who, status)
	case status == http.StatusTooManyRequests:
		e := bus.Errorf(bus.ErrRateLimited, "%s is rate limiting the gateway (status 429)", who)
		if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	var body struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		msg := bus.Shorten(strings.TrimSpace(c.a.scrub.Text(body.Error.Message)), 1024)
		if status < 500 {
			return bus.Errorf(bus.ErrBadRequest, "%s refused the request (status %d, code %d): %s", who, status, body.Error.Code, msg)
		}
		return bus.Errorf(bus.ErrUpstreamUnavailable, "%s failed (status %d, code %d): %s", who, status, body.Error.Code, msg)
	}
	return bus.Errorf(bus.ErrUpstreamUnavailable, "%s failed (status %d)", who, status)
}

// transportError is the error of a call that got no (whole) answer.
func (c *call) transportError(ctx context.Context, err error) *bus.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCancelled):
		return bus.Wrap(bus.ErrUpstreamUnavailable, err, "the call to agent %s was cancelled", c.a.c.Name)
	case errors.Is(cause, errStopping):
		return bus.Wrap(bus.ErrUpstreamUnavailable, err, "the worker of agent %s is stopping", c.a.c.Name)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return bus.Wrap(bus.ErrUpstreamTimeout, err, "agent %s did not answer in time", c.a.c.Name)
	}
	return bus.Wrap(bus.ErrUpstreamUnavailable, err, "could not reach agent %s: %s", c.a.c.Name, bus.SafeCause(err))
}

// rpcCode is a JSON-RPC error object's code, as the usage event gives it.
func rpcCode(raw json.RawMessage) string {
	var e struct {
		Code json.Number `json:"code"`
	}
	_ = json.Unmarshal(raw, &e)
	return e.Code.String()
}

var (
	errCancelled = errors.New("cancelled by the caller")
	errStopping  = errors.New("the worker is stopping")
)
