package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. The ingress span is the root of a call's trace inside mcpbus: one
// server span per HTTP request, the child of the client's W3C traceparent when it
// sends one. route passes its context on to the router in the NATS headers
// (bus.HeaderCarrier), where the router and the worker continue it.
//
// The provider is Options.TracerProvider, else the global one. By default that
// is OpenTelemetry's no-op provider: spans then record nothing and cost a few
// hundred nanoseconds, and a client's traceparent is still passed on unchanged
// (the W3C behaviour of a hop without an SDK). A client's tracestate never
// is (clientTrace).
//
// What spans carry: HTTP method, path and route, status, and once admitted
// mcp.method, mcp.server, mcp.tool (tools/call), mcpbus.request_id and, for an
// error, rpc.jsonrpc.error_code. Never a header value, a key, a session id or
// arguments.

const tracerName = "github.com/mcpbus/mcpbus/ingress"

// traceHTTP starts a server span per HTTP request.
func (g *Ingress) traceHTTP(h http.Handler) http.Handler {
	tracer := bus.Tracer(g.o.TracerProvider, tracerName)
	if bus.TracingOff(tracer) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ctx := clientTrace(r); ctx != r.Context() {
				r = r.WithContext(ctx) // a client's context, passed on
			}
			h.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer.Start(clientTrace(r), httpSpanName(r), trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		if !span.IsRecording() {
			if span.SpanContext().IsValid() {
				r = r.WithContext(ctx) // a client's context, passed on
			}
			h.ServeHTTP(w, r)
			return
		}
		r = r.WithContext(ctx)
		span.SetAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
		)
		sw := &statusWriter{ResponseWriter: w} // metrics.go
		h.ServeHTTP(sw, r)
		if !isMCPPath(r.URL.Path) && r.Pattern != "" {
			// The mux sets the pattern it matched; it names the span with
			// bounded cardinality.
			span.SetName(r.Pattern)
			span.SetAttributes(attribute.String("http.route", r.Pattern))
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// clientTrace is r's context joined to the client's trace: its traceparent
// when well formed (the W3C propagator parses it strictly) and free of the
// caller's gateway key, and never its tracestate. tracestate is opaque vendor
// data the gateway cannot vet (a client's "k=<gateway key>" went upstream and
// into exported spans), and W3C lets a participant drop entries, so the edge
// drops them all, tracing on or off. The traceparent itself is never passed
// on as sent: the propagator writes a new one from the parsed ids, so only a
// key that is hex and makes up a trace or span id could survive it; such a
// traceparent is ignored too.
func clientTrace(r *http.Request) context.Context {
	tp := r.Header.Get("Traceparent")
	if tp == "" {
		return r.Context()
	}
	ctx := bus.TraceContext.Extract(r.Context(), traceparentOnly(tp))
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return r.Context()
	}
	if key := callerKey(r); key != "" {
		lower := strings.ToLower(key)
		if strings.Contains(tp, key) || strings.Contains(lower, sc.TraceID().String()) || strings.Contains(lower, sc.SpanID().String()) {
			return r.Context()
		}
	}
	return ctx
}

// traceparentOnly is a propagation carrier holding a traceparent alone.
type traceparentOnly string

func (c traceparentOnly) Get(key string) string {
	if strings.EqualFold(key, "traceparent") {
		return string(c)
	}
	return ""
}
func (traceparentOnly) Set(string, string) {}
func (traceparentOnly) Keys() []string     { return []string{"traceparent"} }

func isMCPPath(p string) bool { return p == "/mcp" || strings.HasPrefix(p, "/mcp/") }

// httpSpanName is "mcp POST /mcp" or "mcp POST /mcp/{server}" on the MCP
// endpoint; elsewhere the method, renamed to the mux pattern once matched.
func httpSpanName(r *http.Request) string {
	switch p := r.URL.Path; {
	case p == "/mcp" || p == "/mcp/":
		return "mcp " + r.Method + " /mcp"
	case strings.HasPrefix(p, "/mcp/"):
		return "mcp " + r.Method + " /mcp/{server}"
	}
	return r.Method
}

// injectTrace puts ctx's span context on a bus message's headers.
func injectTrace(ctx context.Context, h map[string][]string) {
	bus.TraceContext.Inject(ctx, bus.HeaderCarrier(h))
}

// traceRouted describes a routed request on the ingress span: what was asked
// and, for a failure, the JSON-RPC error code (a gateway error, or an error the
// upstream answered, read from the reply only while the span records).
func traceRouted(ctx context.Context, req *request, reply []byte, e *bus.Error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(requestAttrs(req)...)
	if e != nil {
		bus.SpanFailed(span, e)
		return
	}
	if code, ok := replyErrorCode(reply, req.msg.ID); ok {
		bus.SpanRPCError(span, code)
	}
}

func requestAttrs(req *request) []attribute.KeyValue {
	attrs := []attribute.KeyValue{bus.AttrMethod.String(req.msg.Method), bus.AttrRequestID.String(req.env.RequestID)}
	if len(req.env.Servers) > 0 {
		attrs = append(attrs, bus.AttrServer.String(strings.Join(req.env.Servers, ",")))
	}
	if req.msg.Method == bus.MethodToolsCall {
		if name, ok, amb := bus.StringField(req.msg.Params, "name"); ok && !amb {
			attrs = append(attrs, bus.AttrTool.String(name))
		}
	}
	return attrs
}

// replyErrorCode reads error.code of a response the bus built
// ({"jsonrpc":"2.0","id":<id>,"error":{...}}) without parsing a result.
func replyErrorCode(reply []byte, id json.RawMessage) (int, bool) {
	prefix := `{"jsonrpc":"2.0","id":` + string(id) + `,"error":`
	if !bytes.HasPrefix(reply, []byte(prefix)) {
		return 0, false
	}
	var e struct {
		Code int `json:"code"`
	}
	if json.NewDecoder(bytes.NewReader(reply[len(prefix):])).Decode(&e) != nil {
		return 0, false
	}
	return e.Code, true
}
