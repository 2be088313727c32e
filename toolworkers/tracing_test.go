package toolworkers

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const clientTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// tracedUpstream answers every call and keeps the traceparent its context
// would send.
type tracedUpstream struct {
	traceparent string
	answer      *bus.Message
}

func (f *tracedUpstream) Call(ctx context.Context, _ string, _ json.RawMessage, _ upstream.Relay) (*bus.Message, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://upstream/mcp", nil)
	upstream.InjectTrace(req)
	f.traceparent = req.Header.Get("Traceparent")
	return f.answer, nil
}
func (f *tracedUpstream) Info(context.Context) (json.RawMessage, error) { return nil, nil }
func (f *tracedUpstream) Notify(context.Context, string, json.RawMessage) error {
	return nil
}
func (f *tracedUpstream) Close() {}

func TestWorkerSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	w := &Worker{up: &config.Upstream{Name: "github"}, tracer: bus.Tracer(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)), tracerName)}
	h := nats.Header{"Traceparent": {clientTraceparent}}
	params := json.RawMessage(`{"name":"search","arguments":{"q":"SECRET"}}`)
	span := w.startSpan(h, bus.Envelope{RequestID: "req-1"}, "tools/call", params)
	up := &tracedUpstream{answer: &bus.Message{Error: json.RawMessage(`{"code":-32602,"message":"no"}`)}}
	resp, err := span.call(context.Background(), up, "tools/call", params, nil)
	if err != nil {
		t.Fatal(err)
	}
	span.answered(resp.Error)
	span.End()

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	upSpan, wk := spans[0], spans[1]
	if wk.Name != "worker github tools/call" || wk.SpanKind != trace.SpanKindServer || wk.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("worker span %q kind %v parent %v", wk.Name, wk.SpanKind, wk.Parent)
	}
	if upSpan.Name != "upstream github tools/call" || upSpan.SpanKind != trace.SpanKindClient || upSpan.Parent.SpanID() != wk.SpanContext.SpanID() {
		t.Errorf("upstream span %q kind %v parent %v", upSpan.Name, upSpan.SpanKind, upSpan.Parent)
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + upSpan.SpanContext.SpanID().String() + "-01"; up.traceparent != want {
		t.Errorf("upstream request traceparent %q, want %q", up.traceparent, want)
	}
	for _, s := range spans {
		got := map[string]string{}
		for _, kv := range s.Attributes {
			got[string(kv.Key)] = kv.Value.Emit()
		}
		if got["mcp.tool"] != "search" || got["mcp.server"] != "github" || got["mcpbus.request_id"] != "req-1" || got["rpc.jsonrpc.error_code"] != "-32602" {
			t.Errorf("%q: attributes %v", s.Name, got)
		}
		for k, v := range got {
			if v == "SECRET" || k == "q" {
				t.Errorf("%q: an argument in the attributes: %v", s.Name, got)
			}
		}
	}
}

// The upstream span's traceparent replaces one the server's headers set, in any
// case; without a span context a configured one is left alone. The legacy SSE
// client's requests get it through credential.Client.WithHeaders.
func TestInjectTraceUpstream(t *testing.T) {
	ctx := bus.TraceContext.Extract(context.Background(), bus.HeaderCarrier{"traceparent": {clientTraceparent}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://u/mcp", nil)
	req.Header["traceparent"] = []string{"00-11111111111111111111111111111111-2222222222222222-01"}
	req.Header["Traceparent"] = []string{"00-11111111111111111111111111111111-3333333333333333-01"}
	upstream.InjectTrace(req)
	if n := len(req.Header); n != 1 || bus.HeaderCarrier(req.Header).Get("traceparent") != clientTraceparent {
		t.Errorf("headers %v, want only the span's traceparent", req.Header)
	}
	bare, _ := http.NewRequest(http.MethodPost, "http://u/mcp", nil)
	bare.Header.Set("Traceparent", "configured")
	upstream.InjectTrace(bare)
	if bare.Header.Get("Traceparent") != "configured" {
		t.Errorf("traceparent %q without a span", bare.Header.Get("Traceparent"))
	}

	var sent http.Header
	c := &credential.Client{HTTP: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})}}
	rt := c.WithHeaders(http.Header{"Traceparent": {"static"}}, upstream.InjectTrace).Transport
	if _, err := rt.RoundTrip(req.Clone(ctx)); err != nil {
		t.Fatal(err)
	}
	if bus.HeaderCarrier(sent).Get("traceparent") != clientTraceparent {
		t.Errorf("SSE request headers %v", sent)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A worker's per-call tracing cost when off: extract, two no-op spans, inject
// on the upstream request (the fake upstream's request itself included).
func BenchmarkWorkerSpansOff(b *testing.B) {
	w := &Worker{up: &config.Upstream{Name: "github"}, tracer: bus.Tracer(noop.NewTracerProvider(), tracerName)}
	up := &tracedUpstream{answer: &bus.Message{}}
	for name, h := range map[string]nats.Header{"no-traceparent": {}, "traceparent": {"Traceparent": {clientTraceparent}}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				span := w.startSpan(h, bus.Envelope{RequestID: "r"}, "tools/call", nil)
				_, _ = span.call(context.Background(), up, "tools/call", nil, nil)
				span.End()
			}
		})
	}
}

// The fake upstream's own request, to subtract from BenchmarkWorkerSpansOff.
func BenchmarkWorkerSpansBaseline(b *testing.B) {
	up := &tracedUpstream{answer: &bus.Message{}}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = up.Call(context.Background(), "tools/call", nil, nil)
	}
}
