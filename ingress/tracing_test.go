package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const clientTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func tracedMux(tp trace.TracerProvider) (http.Handler, *trace.SpanContext) {
	seen := new(trace.SpanContext)
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp/", func(w http.ResponseWriter, r *http.Request) {
		*seen = trace.SpanContextFromContext(r.Context())
		w.(http.Flusher).Flush() // SSE needs the Flusher through the wrapper
		w.WriteHeader(http.StatusTeapot)
	})
	mux.HandleFunc("GET /health/readiness", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	g := &Ingress{o: Options{TracerProvider: tp}}
	return g.traceHTTP(mux), seen
}

func TestTraceHTTP(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	h, seen := tracedMux(tp)

	req := httptest.NewRequest(http.MethodPost, "/mcp/github?server=x", nil)
	req.Header.Set("Traceparent", clientTraceparent)
	h.ServeHTTP(httptest.NewRecorder(), req)
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.Name != "mcp POST /mcp/{server}" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q kind %v", s.Name, s.SpanKind)
	}
	if s.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.SpanID().String() != "00f067aa0ba902b7" || !s.Parent.IsRemote() {
		t.Errorf("parent = %v, want the client's traceparent", s.Parent)
	}
	if !seen.Equal(s.SpanContext) {
		t.Errorf("the handler's context holds %v, not the ingress span %v", *seen, s.SpanContext)
	}
	want := map[attribute.Key]attribute.Value{
		"http.request.method":       attribute.StringValue("POST"),
		"url.path":                  attribute.StringValue("/mcp/github"),
		"http.response.status_code": attribute.IntValue(http.StatusOK), // flushed before WriteHeader: 200 went out
	}
	for _, kv := range s.Attributes {
		if w, ok := want[kv.Key]; ok && w != kv.Value {
			t.Errorf("%s = %v, want %v", kv.Key, kv.Value.Emit(), w.Emit())
		}
		delete(want, kv.Key)
	}
	if len(want) > 0 {
		t.Errorf("missing attributes %v", want)
	}

	exp.Reset()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/health/readiness", nil))
	s = exp.GetSpans()[0]
	if s.Name != "GET /health/readiness" || s.Status.Code != codes.Error || s.Parent.IsValid() {
		t.Errorf("readiness span %q status %v parent %v: want the mux pattern, Error (503), a root", s.Name, s.Status, s.Parent)
	}
	exp.Reset()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/mcp", nil))
	if s = exp.GetSpans()[0]; s.Name != "mcp POST /mcp" {
		t.Errorf("span %q", s.Name)
	}
}

// With the no-op provider nothing is recorded, and the client's trace context
// still reaches the handler (and from there the bus) unchanged.
func TestTraceHTTPNoop(t *testing.T) {
	h, seen := tracedMux(noop.NewTracerProvider())
	req := httptest.NewRequest(http.MethodPost, "/mcp/github", nil)
	req.Header.Set("Traceparent", clientTraceparent)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !rec.Flushed {
		t.Errorf("HTTP %d, flushed %v", rec.Code, rec.Flushed)
	}
	hdr := nats.Header{}
	injectTrace(trace.ContextWithSpanContext(context.Background(), *seen), hdr)
	if got := bus.HeaderCarrier(hdr).Get("traceparent"); got != clientTraceparent {
		t.Errorf("bus traceparent = %q, want the client's %q", got, clientTraceparent)
	}
}

func TestReplyErrorCode(t *testing.T) {
	id := json.RawMessage(`"a-1"`)
	for _, c := range []struct {
		reply []byte
		code  int
		ok    bool
	}{
		{bus.RawErrorResponse(id, json.RawMessage(`{"code":-32602,"message":"unknown tool"}`)), -32602, true},
		{bus.ErrorResponse(id, bus.Errorf(bus.ErrUpstreamTimeout, "slow")), bus.ErrUpstreamTimeout.RPC, true},
		{bus.ResultResponse(id, json.RawMessage(`{"content":[{"type":"text","text":"\"error\":{\"code\":1}"}]}`)), 0, false},
		{bus.RawErrorResponse(json.RawMessage(`7`), json.RawMessage(`{"code":1}`)), 0, false}, // another request's
	} {
		code, ok := replyErrorCode(c.reply, id)
		if code != c.code || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.reply, code, ok, c.code, c.ok)
		}
	}
}

// The cost of traceHTTP per request when tracing is off (the default no-op
// provider), against the bare handler.
func BenchmarkTraceHTTP(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		injectTrace(r.Context(), nats.Header{}) // what route does
	})
	g := &Ingress{o: Options{TracerProvider: noop.NewTracerProvider()}}
	for _, c := range []struct {
		name        string
		h           http.Handler
		traceparent string
	}{
		{"bare", ok, ""},
		{"off", g.traceHTTP(ok), ""},
		{"off+client-traceparent", g.traceHTTP(ok), clientTraceparent},
		{"on", (&Ingress{o: Options{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))}}).traceHTTP(ok), clientTraceparent},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodPost, "/mcp/github", nil)
			if c.traceparent != "" {
				req.Header.Set("Traceparent", c.traceparent)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
