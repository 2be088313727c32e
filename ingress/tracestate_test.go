package ingress

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The client's tracestate stays at the edge, tracing off or on: the
// handler's context (what goes on the bus) and the span carry the client's
// traceparent only.
func TestTraceHTTPDropsClientTracestate(t *testing.T) {
	const state = "k=sk-the-gateway-key,vendor=opaque"
	exp := tracetest.NewInMemoryExporter()
	for name, tp := range map[string]trace.TracerProvider{
		"off": noop.NewTracerProvider(),
		"on":  sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)),
	} {
		h, seen := tracedMux(tp)
		req := httptest.NewRequest(http.MethodPost, "/mcp/github", nil)
		req.Header.Set("Traceparent", clientTraceparent)
		req.Header.Set("Tracestate", state)
		h.ServeHTTP(httptest.NewRecorder(), req)
		if seen.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || seen.TraceState().Len() != 0 {
			t.Errorf("%s: the handler's context: trace %s, tracestate %q; want the client's trace, no tracestate", name, seen.TraceID(), seen.TraceState())
		}
		hdr := nats.Header{}
		injectTrace(trace.ContextWithSpanContext(context.Background(), *seen), hdr)
		if v := bus.HeaderCarrier(hdr).Get("tracestate"); v != "" {
			t.Errorf("%s: bus tracestate %q", name, v)
		}
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("spans %v: want one, the child of the client's", spans)
	}
	if spans[0].Parent.TraceState().Len() != 0 || spans[0].SpanContext.TraceState().Len() != 0 {
		t.Errorf("the span carries tracestate %q (parent %q)", spans[0].SpanContext.TraceState(), spans[0].Parent.TraceState())
	}
}

// A traceparent that holds the caller's key, or whose ids the key holds
// (a hex key fits a trace id), is ignored; a malformed one is too.
func TestTraceHTTPIgnoresTraceparentWithTheKey(t *testing.T) {
	const hexKey = "5ec2e7a11b0c4d3e8f9a0b1c2d3e4f50"
	for _, c := range []struct {
		name, traceparent string
		header            http.Header
		joins             bool
	}{
		{"no key", clientTraceparent, http.Header{}, true},
		{"another key", clientTraceparent, http.Header{"Authorization": {"Bearer sk-another-key"}}, true},
		{"key as trace id", "00-" + hexKey + "-00f067aa0ba902b7-01", http.Header{"Authorization": {"Bearer " + hexKey}}, false},
		{"key holds the span id", clientTraceparent, http.Header{"X-Litellm-Api-Key": {"sk-00F067AA0BA902B7-rest"}}, false},
		{"key in a later version's extra field", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-sk-secret-key", http.Header{"X-Litellm-Api-Key": {"Bearer sk-secret-key"}}, false},
		{"malformed", "00-" + strings.ToUpper("4bf92f3577b34da6a3ce929d0e0e4736") + "-00f067aa0ba902b7-01", http.Header{}, false},
	} {
		h, seen := tracedMux(noop.NewTracerProvider())
		req := httptest.NewRequest(http.MethodPost, "/mcp/github", nil)
		req.Header = c.header
		req.Header.Set("Traceparent", c.traceparent)
		h.ServeHTTP(httptest.NewRecorder(), req)
		if seen.IsValid() != c.joins {
			t.Errorf("%s: joined the client's trace: %v, want %v (%s)", c.name, seen.IsValid(), c.joins, seen.TraceID())
		}
	}
}
