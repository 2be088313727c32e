package router

import (
	"context"

	"github.com/mcpbus/mcpbus/bus"
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

// startSpan starts the router's span for msg, the child of the trace context in
// the request's headers.
func (r *Router) startSpan(h map[string][]string, env bus.Envelope, msg *bus.Message) (context.Context, trace.Span) {
	ctx := bus.TraceContext.Extract(context.Background(), bus.HeaderCarrier(h))
	if bus.TracingOff(r.tracer) {
		return ctx, trace.SpanFromContext(ctx)
	}
	method := msg.Method
	if method == "" {
		method = "response"
	}
	ctx, span := r.tracer.Start(ctx, "router route "+method, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(bus.AttrMethod.String(msg.Method), bus.AttrRequestID.String(env.RequestID))
		if msg.Method == bus.MethodToolsCall {
			if name, ok, amb := bus.StringField(msg.Params, "name"); ok && !amb {
				span.SetAttributes(bus.AttrTool.String(name))
			}
		}
	}
	return ctx, span
}

// toWorker notes the server a message goes to and puts the router's span
// context on the headers sent to its worker.
func toWorker(ctx context.Context, server string, h map[string][]string) {
	trace.SpanFromContext(ctx).SetAttributes(bus.AttrServer.String(server))
	bus.TraceContext.Inject(ctx, bus.HeaderCarrier(h))
}
