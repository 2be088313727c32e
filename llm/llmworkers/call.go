package llmworkers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// call is one request a worker answers.
type call struct {
	d     *deployment
	env   bus.Envelope
	nc    *nats.Conn
	reply bus.Reply
	model string // the model group, as the caller named it
	// streamed: a chunk went to the client, so the request cannot be
	// tried again elsewhere.
	streamed bool
	// status is the provider's error status, for the router's cooldowns.
	status int
}

// maxErrorBody bounds what is read of a provider's error answer.
const maxErrorBody = 64 << 10

// chat makes a chat completions call.
func (c *call) chat(ctx context.Context, body []byte) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		c.fail(bus.Errorf(bus.ErrBadRequest, "the request body is not a JSON object"))
		return
	}
	var stream bool
	_ = json.Unmarshal(req["stream"], &stream)
	if stream && c.env.Stream == "" {
		c.fail(bus.Errorf(bus.ErrBadRequest, "a streaming request came without a stream to send its chunks to"))
		return
	}
	upstreamModel, _ := json.Marshal(c.d.m.Upstream)
	req["model"] = upstreamModel
	out, err := json.Marshal(req)
	if err != nil {
		c.fail(bus.Wrap(bus.ErrInternal, err, "could not encode the provider request"))
		return
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.d.wire.chatURL(c.d.m), bytes.NewReader(out))
	if err != nil {
		c.fail(bus.Errorf(bus.ErrInternal, "deployment %s: its api_base does not make a request URL", c.d.m.ID))
		return
	}
	hr.Header.Set("Content-Type", "application/json")
	if stream {
		hr.Header.Set("Accept", "text/event-stream")
	} else {
		hr.Header.Set("Accept", "application/json")
	}
	c.d.wire.authorize(hr.Header, c.d.m)
	resp, err := c.d.client.Do(hr)
	if err != nil {
		c.fail(c.transportError(ctx, err))
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		c.status = resp.StatusCode
		c.fail(c.providerError(resp.StatusCode, resp.Header, raw))
		return
	}
	if stream {
		c.relay(ctx, resp)
		return
	}
	max := c.nc.MaxPayload() - 64<<10
	raw, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		c.fail(c.transportError(ctx, err))
		return
	}
	if int64(len(raw)) > max {
		c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s answered more than %d bytes, more than one bus message carries", c.d.m.ID, c.model, max))
		return
	}
	if !json.Valid(raw) {
		c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s answered with a body that is not JSON", c.d.m.ID, c.model))
		return
	}
	c.respond(c.d.scrub.JSON(raw))
}

// relay publishes each chunk of the provider's event stream to the POST's
// stream, in order, as it comes, then answers.
func (c *call) relay(ctx context.Context, resp *http.Response) {
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s answered a streaming request with %q, not an event stream", c.d.m.ID, c.model, bus.Shorten(ct, 64)))
		return
	}
	to := bus.ClientSubject(c.env.Stream, bus.LLMSender)
	max := int(c.nc.MaxPayload() - 16<<10)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), max)
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // event:, id:, comments and the blank line between events
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			break
		}
		if len(data) == 0 {
			continue
		}
		if !json.Valid(data) {
			c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s sent a chunk that is not JSON", c.d.m.ID, c.model))
			return
		}
		chunk := bytes.Clone(c.d.scrub.JSON(data))
		if err := c.nc.Publish(to, chunk); err != nil {
			c.fail(bus.Wrap(bus.ErrInternal, err, "could not send a chunk to the client's stream"))
			return
		}
		c.streamed = true
	}
	if err := sc.Err(); err != nil {
		c.fail(c.transportError(ctx, err))
		return
	}
	c.respond(nil)
}

// respond answers with data (nil after a stream).
func (c *call) respond(data []byte) {
	h := nats.Header{bus.HeaderLLMDeployment: {c.d.m.ID}}
	if c.streamed {
		h.Set(bus.HeaderLLMStreamed, "true")
	}
	c.reply.Msg(data, h)
}

// fail answers with e, telling the router whether chunks went out.
func (c *call) fail(e *bus.Error) {
	e.Message = c.d.scrub.Text(e.Message)
	if e.Kind == bus.ErrInternal || e.Cause != nil {
		c.d.log.Warn("LLM call failed", "deployment", c.d.m.ID, "model", c.model, "request_id", c.env.RequestID, "err", c.d.scrub.Text(e.Detail()))
	}
	h := nats.Header{bus.HeaderLLMDeployment: {c.d.m.ID}}
	if c.streamed {
		h.Set(bus.HeaderLLMStreamed, "true")
	}
	if c.status != 0 {
		h.Set(bus.HeaderLLMStatus, strconv.Itoa(c.status))
	}
	_ = c.reply.ErrorWith(e, h)
}

// transportError is the error of a call that got no (whole) answer.
func (c *call) transportError(ctx context.Context, err error) *bus.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCancelled):
		return bus.Wrap(bus.ErrUpstreamUnavailable, err, "the call to model %s was cancelled", c.model)
	case errors.Is(cause, errStopping):
		return bus.Wrap(bus.ErrUpstreamUnavailable, err, "the LLM worker of deployment %s is stopping", c.d.m.ID)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return bus.Wrap(bus.ErrUpstreamTimeout, err, "deployment %s of model %s did not answer in time", c.d.m.ID, c.model)
	}
	return bus.Wrap(bus.ErrProvider, err, "could not reach the provider of deployment %s of model %s: %s", c.d.m.ID, c.model, bus.SafeCause(err))
}

var (
	errCancelled = errors.New("cancelled by the caller")
	errStopping  = errors.New("the worker is stopping")
)
