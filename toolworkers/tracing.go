package toolworkers

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. A worker continues the trace the router put in the NATS headers (W3C
// traceparent/tracestate, read with bus.HeaderCarrier): one server span per
// request, "worker <server> <method>", and inside it one client span per
// upstream attempt, "upstream <server> <method>", whose context goes upstream as
// the HTTP traceparent (and tracestate) header: set by the Streamable HTTP
// client on each request after the server's own headers, so it wins over a
// configured or forwarded one, and before the SigV4 signer, which signs it; the
// legacy SSE client sets it the same way in the credential package's fixed
// headers (Client.WithHeaders). stdio has no headers
// and gets none.
//
// The provider is Options.TracerProvider, else the global one (a no-op unless a
// program installs an SDK; then a caller's trace context is still passed on
// unchanged). Spans carry mcp.method, mcp.server, mcp.tool, mcpbus.request_id,
// the upstream host, and on errors rpc.jsonrpc.error_code (and
// mcpbus.error_code for a gateway error); never arguments, results, header
// values or credentials.

const tracerName = "github.com/mcpbus/mcpbus/toolworkers"

// callSpan is a worker's span for one request.
type callSpan struct {
	trace.Span
	tracer trace.Tracer
	name   string // "<server> <method>"
	attrs  []attribute.KeyValue
	off    bool // tracing off (bus.TracingOff): Span is the caller's, unchanged
}

// startSpan starts the worker's span for method, the child of the trace context
// in the request's headers.
func (w *Worker) startSpan(h map[string][]string, env bus.Envelope, method string, params json.RawMessage) *callSpan {
	ctx := bus.TraceContext.Extract(context.Background(), bus.HeaderCarrier(h))
	if bus.TracingOff(w.tracer) {
		// The caller's trace context goes upstream as it came (startUpstream).
		return &callSpan{tracer: w.tracer, Span: trace.SpanFromContext(ctx), off: true}
	}
	s := &callSpan{tracer: w.tracer, name: w.up.Name + " " + method}
	_, s.Span = w.tracer.Start(ctx, "worker "+s.name, trace.WithSpanKind(trace.SpanKindServer))
	if s.IsRecording() {
		s.attrs = []attribute.KeyValue{
			bus.AttrMethod.String(method),
			bus.AttrServer.String(w.up.Name),
			bus.AttrRequestID.String(env.RequestID),
		}
		if method == bus.MethodToolsCall {
			if name, ok := toolName(params); ok {
				s.attrs = append(s.attrs, bus.AttrTool.String(name))
			}
		}
		s.SetAttributes(s.attrs...)
	}
	return s
}

// fail records a gateway error and returns it.
func (s *callSpan) fail(e *bus.Error) *bus.Error {
	bus.SpanFailed(s.Span, e)
	return e
}

// answered records the JSON-RPC error object an upstream answered with, if any.
func (s *callSpan) answered(rpcError json.RawMessage) {
	rpcErrorSpan(s.Span, rpcError)
}

// call is one upstream attempt in its own client span, whose context the
// client sends upstream.
func (s *callSpan) call(ctx context.Context, c upstream.Client, method string, params json.RawMessage, relay *callRelay) (*bus.Message, error) {
	ctx, span := s.startUpstream(ctx)
	defer span.End()
	resp, err := c.Call(ctx, method, params, relay)
	if err != nil {
		bus.SpanFailed(span, bus.AsError(err))
	} else {
		rpcErrorSpan(span, resp.Error)
	}
	return resp, err
}

// info is the upstream initialize lookup in its own client span.
func (s *callSpan) info(ctx context.Context, c upstream.Client) (json.RawMessage, error) {
	ctx, span := s.startUpstream(ctx)
	defer span.End()
	info, err := c.Info(ctx)
	if err != nil {
		bus.SpanFailed(span, bus.AsError(err))
	}
	return info, err
}

// startUpstream starts an upstream span, the child of the worker's span, in
// ctx (which bounds the call).
func (s *callSpan) startUpstream(ctx context.Context) (context.Context, trace.Span) {
	if s.off {
		if !s.SpanContext().IsValid() {
			return ctx, s.Span
		}
		return trace.ContextWithSpan(ctx, s.Span), s.Span
	}
	ctx, span := s.tracer.Start(trace.ContextWithSpan(ctx, s.Span), "upstream "+s.name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(s.attrs...)
	}
	return ctx, span
}

func rpcErrorSpan(span trace.Span, rpcError json.RawMessage) {
	if len(rpcError) == 0 || !span.IsRecording() {
		return
	}
	code, err := strconv.Atoi(rpcErrorCode(rpcError))
	if err != nil {
		span.SetStatus(codes.Error, "JSON-RPC error")
		return
	}
	bus.SpanRPCError(span, code)
}
