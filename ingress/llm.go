package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// The OpenAI-compatible LLM routes (docs/LLM.md): GET /v1/models, POST
// /v1/chat/completions, /v1/embeddings and /v1/responses, also without
// the /v1 prefix as LiteLLM serves them. The ingress verifies the key and relays the request with the
// caller's envelope to the LLM router (bus/llm.go), which checks the key's
// models and picks a deployment; a streaming request's chunks come on the
// POST's stream subject (streams.go) and go out as server-sent events as
// they arrive. Errors are OpenAI's shape, with LiteLLM's code: the status
// as a string.

// llmRoutes registers the LLM routes.
func (g *Ingress) llmRoutes(mux *http.ServeMux) {
	for _, prefix := range []string{"/v1", ""} {
		mux.HandleFunc(prefix+"/models", g.serveModels)
		mux.HandleFunc(prefix+"/chat/completions", g.serveLLM(bus.SubjectLLMChat))
		mux.HandleFunc(prefix+"/embeddings", g.serveLLM(bus.SubjectLLMEmbeddings))
		mux.HandleFunc(prefix+"/responses", g.serveLLM(bus.SubjectLLMResponses))
	}
}

// serveModels answers the model groups the caller's key may use.
func (g *Ingress) serveModels(w http.ResponseWriter, r *http.Request) {
	if !llmMethod(w, r, http.MethodGet) {
		return
	}
	env, ok := g.llmCaller(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	m := &nats.Msg{Subject: bus.SubjectLLMModels, Header: env.Header()}
	resp, err := g.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		writeOpenAIError(w, llmRequestError(err))
		return
	}
	if e := bus.ReplyError(resp); e != nil {
		writeOpenAIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, resp.Data)
}

// serveLLM relays a request for subject and its answer.
func (g *Ingress) serveLLM(subject string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { g.relayLLM(w, r, subject) }
}

// relayLLM relays one POST: a JSON answer, or a stream of events.
func (g *Ingress) relayLLM(w http.ResponseWriter, r *http.Request, subject string) {
	if !llmMethod(w, r, http.MethodPost) {
		return
	}
	env, ok := g.llmCaller(w, r)
	if !ok {
		return
	}
	body, e := g.readBody(w, r, g.o.MaxBodyBytes)
	if e != nil {
		writeOpenAIError(w, e)
		return
	}
	var head struct {
		Stream bool `json:"stream"`
	}
	if json.Unmarshal(body, &head) != nil {
		writeOpenAIError(w, bus.Errorf(bus.ErrBadRequest, "the request body is not a JSON object with a model"))
		return
	}
	h := nats.Header{}
	if base := requestBase(r); bus.ValidHeaderValue(base) {
		h.Set(bus.HeaderLLMBase, base)
	}
	c := &chatStream{w: w, events: subject == bus.SubjectLLMResponses, stream: head.Stream}
	g.relayBus(r, busRelay{subject: subject, env: env, body: body, stream: head.Stream, header: h,
		sender: bus.LLMSender, what: "the model"}, c) // relay_bus.go
}

// llmCaller verifies the caller and makes its envelope.
func (g *Ingress) llmCaller(w http.ResponseWriter, r *http.Request) (bus.Envelope, bool) {
	env, e := g.envelopeOf(r) // rest.go
	if e != nil {
		writeOpenAIError(w, e)
	}
	return env, e == nil
}

// chatStream writes one chat completions answer: JSON, or server-sent
// events opened by the first chunk.
type chatStream struct {
	w      http.ResponseWriter
	sse    bool
	stream bool // the client asked for a stream
	// events: a Responses stream, whose events name their type (event:)
	// and which ends without [DONE].
	events bool
}

func (c *chatStream) event(data []byte) { c.chunk(data) }

// answer ends the answer with the reply.
func (c *chatStream) answer(reply *nats.Msg) {
	if e := bus.ReplyError(reply); e != nil {
		c.fail(e)
		return
	}
	if !c.sse {
		// LiteLLM's headers: the deployment and the group that answered
		// (a fallback's, maybe). Past the first chunk it is too late.
		c.w.Header().Set("X-Litellm-Model-Id", reply.Header.Get(bus.HeaderLLMDeployment))
		c.w.Header().Set("X-Litellm-Model-Group", reply.Header.Get(bus.HeaderLLMModel))
	}
	c.done(reply.Data, c.stream)
}

func (c *chatStream) chunk(data []byte) {
	if !c.sse {
		h := c.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		c.w.WriteHeader(http.StatusOK)
		c.sse = true
	}
	if c.events {
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(data, &ev) == nil && ev.Type != "" && bus.ValidHeaderValue(ev.Type) {
			c.write("event: ", ev.Type, "\n")
		}
	}
	c.write("data: ", data, "\n\n")
}

func (c *chatStream) write(parts ...any) {
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			_, _ = c.w.Write([]byte(v))
		case []byte:
			_, _ = c.w.Write(v)
		}
	}
	_ = http.NewResponseController(c.w).Flush()
}

// done ends a successful answer.
func (c *chatStream) done(data []byte, stream bool) {
	switch {
	case c.sse && c.events:
	case c.sse:
		c.write("data: [DONE]\n\n")
	case stream:
		// A stream the provider ended without a chunk.
		c.chunk(nil)
		c.write("data: [DONE]\n\n")
	default:
		writeJSON(c.w, http.StatusOK, data)
	}
}

// fail ends the answer with e: an error status before the stream opened,
// an error event in it after.
func (c *chatStream) fail(e *bus.Error) {
	if !c.sse {
		writeOpenAIError(c.w, e)
		return
	}
	c.write("data: ", openAIErrorBody(e), "\n\n")
}

// requestBase is the gateway's URL as the client reached it.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// llmMethod answers 405 unless r uses method.
func llmMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeOpenAIError(w, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on %s: use %s", r.Method, r.URL.Path, method))
	return false
}

// llmRequestError is the error of a request the LLM router did not take.
func llmRequestError(err error) *bus.Error {
	return bus.RequestError("the LLM router", err)
}

// writeOpenAIError answers with e in OpenAI's error shape, LiteLLM's way:
// error.code is the HTTP status as a string.
func writeOpenAIError(w http.ResponseWriter, e *bus.Error) {
	errorHeaders(w.Header(), e)
	writeJSON(w, restStatus(e), openAIErrorBody(e))
}

// restStatus is e's status on the REST routes: the catalog's REST column
// (500 for a kind made outside the catalog).
func restStatus(e *bus.Error) int {
	if e.Kind.REST == 0 {
		return http.StatusInternalServerError
	}
	return e.Kind.REST
}

func openAIErrorBody(e *bus.Error) []byte {
	var param *string
	if e.Kind == bus.ErrModelNotFound || e.Kind == bus.ErrModelNotAllowed {
		p := "model"
		param = &p
	}
	b, _ := json.Marshal(restError{restErrorObject{Message: e.Message, Type: bus.OpenAIErrorType(e), Param: param, Code: strconv.Itoa(restStatus(e))}})
	return b
}
