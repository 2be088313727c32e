package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/config"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// traceRecorder is an upstream that keeps the traceparent of every request,
// by JSON-RPC method.
type traceRecorder struct {
	mu   sync.Mutex
	seen map[string][]string // method -> traceparent values ("" when absent)
	next http.Handler
}

func (tr *traceRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct{ Method string }
	_ = json.Unmarshal(body, &m)
	tr.mu.Lock()
	tr.seen[m.Method] = append(tr.seen[m.Method], r.Header.Get("Traceparent"))
	tr.mu.Unlock()
	tr.next.ServeHTTP(w, r)
}

func (tr *traceRecorder) traceparents(method string) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.seen[method]...)
}

func traceUpstream(t *testing.T) (string, *traceRecorder) {
	t.Helper()
	tr := &traceRecorder{seen: map[string][]string{}, next: demo.Handler("demo")}
	srv := httptest.NewServer(tr)
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", tr
}

// withTracing returns an in-memory exporter and the gateway option that
// makes the gateway's spans with it (Options.TracerProvider), as an
// operator's OTLP exporter would get them; the process's global provider is
// left alone.
func withTracing(t *testing.T) (*tracetest.InMemoryExporter, func(*Options)) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return exp, func(o *Options) { o.TracerProvider = tp }
}

// spansOf waits until the trace has a span of every name given, and returns
// the trace's spans by name.
func spansOf(t *testing.T, exp *tracetest.InMemoryExporter, id trace.TraceID, names ...string) map[string]tracetest.SpanStub {
	t.Helper()
	var got map[string]tracetest.SpanStub
	bustest.Eventually(t, 30*time.Second, fmt.Sprintf("spans %q in trace %s", names, id), func() error {
		got = map[string]tracetest.SpanStub{}
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() == id {
				if _, dup := got[s.Name]; dup {
					t.Fatalf("two spans named %q in the trace", s.Name)
				}
				got[s.Name] = s
			}
		}
		missing := []string{}
		for _, n := range names {
			if _, ok := got[n]; !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		have := []string{}
		for n := range got {
			have = append(have, n)
		}
		return fmt.Errorf("no span %q; have %q", missing, have)
	})
	return got
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
)

// One tools/call with a client traceparent is one trace: the ingress span is
// the child of the client's, the router's of the ingress's, the worker's of the
// router's, the upstream's of the worker's, and the upstream receives the
// upstream span's context as its traceparent.
func TestTracingOneTraceAcrossHops(t *testing.T) {
	exp, traced := withTracing(t)
	url, rec := traceUpstream(t)
	const master = "sk-trace-master-SECRET"
	g := startGatewayOpts(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  demo: {url: %q}
`, master, url), nil, traced)
	endpoint := g.URL() + "/mcp/demo"
	h := initSession(t, endpoint, bearer(master))

	h.Set("Traceparent", "00-"+clientTraceID+"-"+clientSpanID+"-01")
	r := post(t, endpoint, h, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"argument-SECRET"}}}`)
	if r.status != http.StatusOK || r.rpcErr.Code != 0 || !strings.Contains(string(r.result), "argument-SECRET") {
		t.Fatalf("tools/call: HTTP %d: %s", r.status, r.body)
	}

	tid, _ := trace.TraceIDFromHex(clientTraceID)
	// A tools/call for one server goes from the ingress straight to the
	// worker (ingress/target.go): no router span.
	const (
		ingressName  = "mcp POST /mcp/{server}"
		workerName   = "worker demo tools/call"
		upstreamName = "upstream demo tools/call"
	)
	spans := spansOf(t, exp, tid, ingressName, workerName, upstreamName)
	if len(spans) != 3 {
		t.Errorf("the trace has %d spans, want 3: %v", len(spans), spans)
	}
	ing, wk, up := spans[ingressName], spans[workerName], spans[upstreamName]

	if ing.Parent.SpanID().String() != clientSpanID || !ing.Parent.IsRemote() {
		t.Errorf("ingress span's parent = %s (remote %v), want the client's %s", ing.Parent.SpanID(), ing.Parent.IsRemote(), clientSpanID)
	}
	for _, link := range []struct {
		child, parent tracetest.SpanStub
	}{{wk, ing}, {up, wk}} {
		if link.child.Parent.SpanID() != link.parent.SpanContext.SpanID() {
			t.Errorf("%q: parent span %s, want %q's %s", link.child.Name, link.child.Parent.SpanID(), link.parent.Name, link.parent.SpanContext.SpanID())
		}
	}
	for name, want := range map[string]trace.SpanKind{ingressName: trace.SpanKindServer,
		workerName: trace.SpanKindServer, upstreamName: trace.SpanKindClient} {
		if spans[name].SpanKind != want {
			t.Errorf("%q: kind %v, want %v", name, spans[name].SpanKind, want)
		}
	}

	// What the upstream received: the upstream span's context, nothing else.
	want := "00-" + clientTraceID + "-" + up.SpanContext.SpanID().String() + "-01"
	if got := rec.traceparents("tools/call"); len(got) != 1 || got[0] != want {
		t.Errorf("upstream saw traceparent %q on tools/call, want [%q]", got, want)
	}

	// Every span says what was called, the same request id, and nothing secret.
	var requestID string
	for _, s := range spans {
		a := attrs(s)
		if a["mcp.method"].AsString() != "tools/call" || a["mcp.server"].AsString() != "demo" || a["mcp.tool"].AsString() != "echo" {
			t.Errorf("%q: attributes %v", s.Name, s.Attributes)
		}
		id := a["mcpbus.request_id"].AsString()
		if id == "" || requestID != "" && id != requestID {
			t.Errorf("%q: mcpbus.request_id %q, others %q", s.Name, id, requestID)
		}
		requestID = id
		if _, ok := a["rpc.jsonrpc.error_code"]; ok {
			t.Errorf("%q: error code on a successful call: %v", s.Name, s.Attributes)
		}
		for _, kv := range s.Attributes {
			if v := kv.Value.Emit(); strings.Contains(v, "SECRET") {
				t.Errorf("%q: attribute %s = %q carries a credential or an argument", s.Name, kv.Key, v)
			}
		}
	}
	if a := attrs(ing); a["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("ingress span: status code attribute %v", a["http.response.status_code"])
	}

	// An error answer: the upstream's JSON-RPC error code on the ingress,
	// worker and upstream spans.
	const errTrace = "0af7651916cd43dd8448eb211c80319c"
	h.Set("Traceparent", "00-"+errTrace+"-b7ad6b7169203331-01")
	r = post(t, endpoint, h, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"no-such-tool","arguments":{}}}`)
	if r.rpcErr.Code == 0 {
		t.Fatalf("unknown tool: no JSON-RPC error: %s", r.body)
	}
	etid, _ := trace.TraceIDFromHex(errTrace)
	spans = spansOf(t, exp, etid, ingressName, workerName, upstreamName)
	for _, name := range []string{ingressName, workerName, upstreamName} {
		if got := attrs(spans[name])["rpc.jsonrpc.error_code"].AsInt64(); got != int64(r.rpcErr.Code) {
			t.Errorf("%q: rpc.jsonrpc.error_code = %d, want %d", name, got, r.rpcErr.Code)
		}
	}

	// A gateway error: the router's catalog code on its span and the ingress's.
	const gwTrace = "5b8aa5a2d2c872e8321cf37308d69df2"
	hdr := bearer(master)
	hdr.Set("Traceparent", "00-"+gwTrace+"-051581bf3cb55c13-01")
	r = post(t, g.URL()+"/mcp/nope", hdr, initBody)
	if r.rpcErr.Data["mcpbus_code"] != "MCPBUS_UNKNOWN_SERVER" {
		t.Fatalf("initialize on an unknown server: %s", r.body)
	}
	gtid, _ := trace.TraceIDFromHex(gwTrace)
	spans = spansOf(t, exp, gtid, ingressName, "router route initialize")
	for _, name := range []string{ingressName, "router route initialize"} {
		a := attrs(spans[name])
		if a["rpc.jsonrpc.error_code"].AsInt64() != int64(r.rpcErr.Code) || a["mcpbus.error_code"].AsString() != "MCPBUS_UNKNOWN_SERVER" {
			t.Errorf("%q: attributes %v, want the error %d MCPBUS_UNKNOWN_SERVER", name, spans[name].Attributes, r.rpcErr.Code)
		}
		if spans[name].Status.Code != codes.Error {
			t.Errorf("%q: status %v, want Error", name, spans[name].Status)
		}
	}
}

// Without an SDK (OpenTelemetry's no-op provider, the default) calls work,
// nothing is recorded, and a client's trace context is passed on unchanged
// (W3C: a hop that does not trace still propagates); without one, the
// upstream gets no traceparent.
func TestTracingOffPassesContextThrough(t *testing.T) {
	// The global provider (no SDK installed) makes non-recording spans;
	// OpenTelemetry's no-op provider, what `mcpbus serve` passes without an
	// exporter, makes the services skip their spans (bus.TracingOff).
	for name, tp := range map[string]trace.TracerProvider{"global": nil, "no-op": noop.NewTracerProvider()} {
		t.Run(name, func(t *testing.T) { tracingOffPassesContextThrough(t, tp) })
	}
}

func tracingOffPassesContextThrough(t *testing.T, tp trace.TracerProvider) {
	url, rec := traceUpstream(t)
	g := startGatewayOpts(t, fmt.Sprintf(`
mcp_servers:
  demo: {url: %q}
`, url), nil, func(o *Options) { o.TracerProvider = tp })
	endpoint := g.URL() + "/mcp/demo"
	h := initSession(t, endpoint, http.Header{})
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`
	if r := post(t, endpoint, h, call); r.status != http.StatusOK || r.rpcErr.Code != 0 {
		t.Fatalf("tools/call: HTTP %d: %s", r.status, r.body)
	}
	client := "00-" + clientTraceID + "-" + clientSpanID + "-01"
	h.Set("Traceparent", client)
	if r := post(t, endpoint, h, call); r.status != http.StatusOK || r.rpcErr.Code != 0 {
		t.Fatalf("tools/call: HTTP %d: %s", r.status, r.body)
	}
	if got := rec.traceparents("tools/call"); len(got) != 2 || got[0] != "" || got[1] != client {
		t.Errorf("upstream saw traceparents %q, want none and then the client's %q", got, client)
	}
}

// One tools/call through the whole gateway, tracing off (the no-op default)
// and on (an SDK with a no-op exporter), with a client traceparent.
func BenchmarkToolsCallTracing(b *testing.B) {
	up := httptest.NewServer(demo.Handler("demo"))
	defer up.Close()
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
	}{
		{"off", noop.NewTracerProvider()},
		{"on", sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg, err := config.Parse("config.yaml", []byte(fmt.Sprintf("mcp_servers:\n  demo: {url: %q}\n", up.URL+"/mcp")), nil)
			if err != nil {
				b.Fatal(err)
			}
			g, err := Start(b.Context(), Options{Config: cfg, Listen: "127.0.0.1:0", DataDir: b.TempDir(), NATSListen: "off",
				Log: slog.New(slog.DiscardHandler), TracerProvider: c.tp})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close(context.Background())
			endpoint := g.URL() + "/mcp/demo"
			do := func(sid, body string) *http.Response {
				req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				req.Header.Set("Traceparent", "00-"+clientTraceID+"-"+clientSpanID+"-01")
				if sid != "" {
					req.Header.Set("Mcp-Session-Id", sid)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("HTTP %d", resp.StatusCode)
				}
				return resp
			}
			sid := do("", initBody).Header.Get("Mcp-Session-Id")
			call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`
			for range 50 {
				do(sid, call)
			}
			b.ReportAllocs()
			for b.Loop() {
				do(sid, call)
			}
		})
	}
}
