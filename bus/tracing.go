package bus

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing pieces every service shares: the propagation format, the span
// attribute keys and how errors are recorded (docs/ARCHITECTURE.md, Tracing).

// TraceContext is the one propagation format on the bus and upstream: W3C
// traceparent and tracestate. It is fixed rather than the global propagator,
// which is a no-op unless a program sets one.
var TraceContext = propagation.TraceContext{}

// Span attribute keys shared by the services.
const (
	AttrMethod      = attribute.Key("mcp.method")
	AttrServer      = attribute.Key("mcp.server")
	AttrTool        = attribute.Key("mcp.tool")
	AttrRequestID   = attribute.Key("mcpbus.request_id")
	AttrErrorCode   = attribute.Key("rpc.jsonrpc.error_code")
	AttrMcpbusError = attribute.Key("mcpbus.error_code")
)

// Tracer is tp's tracer called name; a nil tp means the global provider (a
// no-op unless a program installs an SDK).
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(name)
}

// TracingOff reports whether t is OpenTelemetry's no-op tracer, what
// `mcpbus serve` uses when no exporter is configured: a service then skips
// its spans (and their names and attributes) and passes the context it was
// given on, which carries a client's traceparent unchanged, as the no-op
// tracer's non-recording spans would.
func TracingOff(t trace.Tracer) bool {
	_, off := t.(noop.Tracer)
	return off
}

// SpanFailed records a gateway error on span: its JSON-RPC and catalog codes,
// and an Error status.
func SpanFailed(span trace.Span, e *Error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrErrorCode.Int(e.Kind.RPC), AttrMcpbusError.String(e.Kind.Code))
	span.SetStatus(codes.Error, e.Kind.Code)
}

// SpanRPCError records the code of a JSON-RPC error answered by an upstream.
func SpanRPCError(span trace.Span, code int) {
	span.SetAttributes(AttrErrorCode.Int(code))
	span.SetStatus(codes.Error, "JSON-RPC error")
}
