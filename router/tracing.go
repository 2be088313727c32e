package router

import (
	"context"
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. The router continues the trace the ingress put in the NATS headers
// (W3C traceparent/tracestate, read with bus.HeaderCarrier) with one span per
// message, "router route <method>", and puts that span's context on what it
// sends a worker (forward, and info during initialize), so the worker's span
// is its child. The provider is Options.TracerProvider, else the global one
// (a no-op unless a program installs an SDK). Spans carry mcp.method,
// mcp.server, mcp.tool, mcpbus.request_id and, for a gateway error,
// rpc.jsonrpc.error_code; never arguments or credentials.

const tracerName = "github.com/mcpbus/mcpbus/router"

var traceContext = propagation.TraceContext{}

func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// startSpan starts the router's span for msg, the child of the trace context in
// the request's headers.
func (r *Router) startSpan(h map[string][]string, env bus.Envelope, msg *bus.Message) (context.Context, trace.Span) {
	ctx := traceContext.Extract(context.Background(), bus.HeaderCarrier(h))
	method := msg.Method
	if method == "" {
		method = "response"
	}
	ctx, span := r.tracer.Start(ctx, "router route "+method, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("mcp.method", msg.Method), attribute.String("mcpbus.request_id", env.RequestID))
		if msg.Method == "tools/call" {
			var p struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(msg.Params, &p) == nil && p.Name != "" {
				span.SetAttributes(attribute.String("mcp.tool", p.Name))
			}
		}
	}
	return ctx, span
}

// toWorker notes the server a message goes to and puts the router's span
// context on the headers sent to its worker.
func toWorker(ctx context.Context, server string, h map[string][]string) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("mcp.server", server))
	traceContext.Inject(ctx, bus.HeaderCarrier(h))
}

// spanError records a gateway error on span.
func spanError(span trace.Span, e *bus.Error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int("rpc.jsonrpc.error_code", e.Kind.RPC), attribute.String("mcpbus.error_code", e.Kind.Code))
	span.SetStatus(codes.Error, e.Kind.Code)
}
