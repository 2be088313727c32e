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
	// usage: the tokens the answer took, when the provider said.
	prompt, completion int
	usage              bool
}

// maxErrorBody bounds what is read of a provider's error answer.
const maxErrorBody = 64 << 10

// chat makes a chat completions call.
func (c *call) chat(ctx context.Context, body []byte) {
	if c.d.m.Provider == "anthropic" {
		c.anthropicChat(ctx, body) // anthropic.go
		return
	}
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
	// A stream's usage comes only when asked for: always ask, and keep the
	// usage chunk from a client that did not.
	clientUsage := false
	if stream {
		opts := map[string]json.RawMessage{}
		_ = json.Unmarshal(req["stream_options"], &opts)
		_ = json.Unmarshal(opts["include_usage"], &clientUsage)
		opts["include_usage"] = json.RawMessage("true")
		req["stream_options"], _ = json.Marshal(opts)
	}
	upstreamModel, _ := json.Marshal(c.d.m.Upstream)
	req["model"] = upstreamModel
	out, err := json.Marshal(req)
	if err != nil {
		c.fail(bus.Wrap(bus.ErrInternal, err, "could not encode the provider request"))
		return
	}
	resp, ok := c.post(ctx, c.d.wire.chatURL(c.d.m), out, stream, func(h http.Header) { c.d.wire.authorize(h, c.d.m) })
	if !ok {
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if stream {
		c.relay(ctx, resp, clientUsage)
		return
	}
	if raw, ok := c.readAnswer(ctx, resp); ok {
		c.readUsage(raw)
		c.respond(c.d.scrub.JSON(raw))
	}
}

// readUsage takes the tokens from an OpenAI answer or chunk's usage; it
// reports whether there was one.
func (c *call) readUsage(raw []byte) bool {
	if !bytes.Contains(raw, []byte(`"usage"`)) {
		return false
	}
	var u struct {
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(raw, &u) != nil || u.Usage == nil {
		return false
	}
	c.prompt, c.completion, c.usage = u.Usage.PromptTokens, u.Usage.CompletionTokens, true
	return true
}

// usageOnly reports whether chunk is the usage chunk alone (no choices).
func usageOnly(chunk []byte) bool {
	var ch struct {
		Choices []json.RawMessage `json:"choices"`
	}
	return json.Unmarshal(chunk, &ch) == nil && len(ch.Choices) == 0
}

// embeddings makes an embeddings call: the body with the deployment's
// model, the answer as it is.
func (c *call) embeddings(ctx context.Context, body []byte) {
	url := c.d.wire.embeddingsURL(c.d.m)
	if url == "" {
		c.fail(bus.Errorf(bus.ErrBadRequest, "model %s: its deployments (%s) have no embeddings", c.model, c.d.m.Provider))
		return
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		c.fail(bus.Errorf(bus.ErrBadRequest, "the request body is not a JSON object"))
		return
	}
	req["model"], _ = json.Marshal(c.d.m.Upstream)
	out, _ := json.Marshal(req)
	resp, ok := c.post(ctx, url, out, false, func(h http.Header) { c.d.wire.authorize(h, c.d.m) })
	if !ok {
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if raw, ok := c.readAnswer(ctx, resp); ok {
		c.readUsage(raw)
		c.respond(c.d.scrub.JSON(raw))
	}
}

// post sends body to url, with the headers authorize sets; ok is false
// when the call failed, and has been answered.
func (c *call) post(ctx context.Context, url string, body []byte, stream bool, authorize func(http.Header)) (*http.Response, bool) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		c.fail(bus.Errorf(bus.ErrInternal, "deployment %s: its api_base does not make a request URL", c.d.m.ID))
		return nil, false
	}
	hr.Header.Set("Content-Type", "application/json")
	if stream {
		hr.Header.Set("Accept", "text/event-stream")
	} else {
		hr.Header.Set("Accept", "application/json")
	}
	authorize(hr.Header)
	resp, err := c.d.client.Do(hr)
	if err != nil {
		c.fail(c.transportError(ctx, err))
		return nil, false
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		c.status = resp.StatusCode
		c.fail(c.providerError(resp.StatusCode, resp.Header, raw))
		return nil, false
	}
	if stream {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			_ = resp.Body.Close()
			c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s answered a streaming request with %q, not an event stream", c.d.m.ID, c.model, bus.Shorten(ct, 64)))
			return nil, false
		}
	}
	return resp, true
}

// readAnswer reads a JSON answer that fits one bus message; ok is false
// when it did not, and the call has been answered.
func (c *call) readAnswer(ctx context.Context, resp *http.Response) ([]byte, bool) {
	max := c.nc.MaxPayload() - 64<<10
	raw, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		c.fail(c.transportError(ctx, err))
		return nil, false
	}
	if int64(len(raw)) > max {
		c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s answered more than %d bytes, more than one bus message carries", c.d.m.ID, c.model, max))
		return nil, false
	}
	if !json.Valid(raw) {
		c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s answered with a body that is not JSON", c.d.m.ID, c.model))
		return nil, false
	}
	return raw, true
}

// relay publishes each chunk of the provider's event stream to the POST's
// stream, in order, as it comes, then answers.
func (c *call) relay(ctx context.Context, resp *http.Response, clientUsage bool) {
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
		if c.readUsage(data) && !clientUsage && usageOnly(data) {
			continue // asked for the gateway, not by the client
		}
		if !c.send(to, data) {
			return
		}
	}
	if err := sc.Err(); err != nil {
		c.fail(c.transportError(ctx, err))
		return
	}
	c.respond(nil)
}

// send publishes one chunk to the client's stream; false when it could
// not, and the call has been answered.
func (c *call) send(to string, chunk []byte) bool {
	if err := c.nc.Publish(to, bytes.Clone(c.d.scrub.JSON(chunk))); err != nil {
		c.fail(bus.Wrap(bus.ErrInternal, err, "could not send a chunk to the client's stream"))
		return false
	}
	c.streamed = true
	return true
}

// respond answers with data (nil after a stream).
func (c *call) respond(data []byte) {
	h := nats.Header{bus.HeaderLLMDeployment: {c.d.m.ID}}
	if c.streamed {
		h.Set(bus.HeaderLLMStreamed, "true")
	}
	if c.usage {
		h.Set(bus.HeaderLLMUsage, bus.FormatLLMUsage(c.prompt, c.completion))
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
