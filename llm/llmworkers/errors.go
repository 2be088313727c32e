package llmworkers

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// providerError maps a provider's error answer to the gateway's error the
// caller sees, keeping its status class (docs/LLM.md, "Errors"):
//
//   - 400 and 422: the request itself; the provider's message, scrubbed
//     (ErrContextLength when it says the prompt is too long, ErrContentPolicy
//     when its content policy refused it, which the router's
//     context_window_fallbacks and content_policy_fallbacks act on);
//   - 401 and 403: the deployment's key, which is not the caller's fault
//     and is never quoted (502);
//   - 404: the deployment names a model the provider does not have (502);
//   - 408 and 504: a timeout; 429: the provider's rate limit, with its
//     Retry-After; anything else: the provider failed (502).
func (c *call) providerError(status int, h http.Header, raw []byte) *bus.Error {
	var body struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &body)
	msg := bus.Shorten(strings.TrimSpace(c.d.scrub.Text(body.Error.Message)), 1024)
	code, _ := body.Error.Code.(string)
	who := "deployment " + c.d.m.ID + " of model " + c.model
	quoted := ""
	if msg != "" {
		quoted = ": " + msg
	}
	switch {
	case status == http.StatusBadRequest && (code == "context_length_exceeded" || strings.Contains(strings.ToLower(msg), "context length") ||
		strings.Contains(strings.ToLower(msg), "prompt is too long")): // Anthropic's words
		return bus.Errorf(bus.ErrContextLength, "%s: the messages are longer than the model's context window%s", who, quoted)
	case status == http.StatusBadRequest && (code == "content_policy_violation" || code == "content_filter"):
		return bus.Errorf(bus.ErrContentPolicy, "%s: the provider's content policy refused the request%s", who, quoted)
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return bus.Errorf(bus.ErrProviderRejected, "%s refused the request (status %d)%s", who, status, quoted)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return bus.Errorf(bus.ErrUpstreamAuth, "%s: the provider refused the deployment's credentials (status %d); see its api_key", who, status)
	case status == http.StatusNotFound:
		return bus.Errorf(bus.ErrProvider, "%s: the provider does not know the deployment's model (status 404); see its litellm_params.model", who)
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return bus.Errorf(bus.ErrUpstreamTimeout, "%s: the provider timed out (status %d)", who, status)
	case status == http.StatusTooManyRequests:
		e := bus.Errorf(bus.ErrRateLimited, "%s: the provider's rate limit%s", who, quoted)
		if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	return bus.Errorf(bus.ErrProvider, "%s: the provider failed (status %d)%s", who, status, quoted)
}
