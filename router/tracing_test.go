package router

import (
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace/noop"
)

const clientTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// Off (the no-op provider), the router passes the trace context it got on to
// the worker unchanged.
func TestRouterSpanOffPassesContext(t *testing.T) {
	r := &Router{tracer: bus.Tracer(noop.NewTracerProvider(), tracerName)}
	in := nats.Header{"traceparent": {clientTraceparent}}
	ctx, span := r.startSpan(in, bus.Envelope{}, &bus.Message{Method: "tools/call"})
	defer span.End()
	out := nats.Header{"Traceparent": {"00-11111111111111111111111111111111-2222222222222222-01"}}
	toWorker(ctx, "github", out)
	if len(out) != 1 || bus.HeaderCarrier(out).Get("traceparent") != clientTraceparent {
		t.Errorf("headers to the worker %v, want only the caller's traceparent", out)
	}
	if span.IsRecording() {
		t.Error("a no-op span records")
	}
}

// The router's per-message cost when tracing is off, with and without a
// trace context from the ingress.
func BenchmarkRouterSpanOff(b *testing.B) {
	r := &Router{tracer: bus.Tracer(noop.NewTracerProvider(), tracerName)}
	msg := &bus.Message{Method: "tools/call"}
	for name, in := range map[string]nats.Header{"no-traceparent": {}, "traceparent": {"traceparent": {clientTraceparent}}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := r.startSpan(in, bus.Envelope{}, msg)
				toWorker(ctx, "github", nats.Header{})
				span.End()
			}
		})
	}
}
