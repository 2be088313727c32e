package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// A client's tracestate is opaque data the gateway cannot vet ("k=<gateway
// key>" went upstream and into the spans): the ingress drops it, tracing off
// or on, while the client's traceparent still joins the trace. Nor does it
// travel as a per-request header (x-mcp-{server}-tracestate).
func TestSecurityClientTracestateNeverLeavesTheIngress(t *testing.T) {
	const key = "sk-tracestate-master-SECRET-42"
	registerSecret(key)
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "tracing off", true: "tracing on"}[on], func(t *testing.T) {
			var exp *tracetest.InMemoryExporter
			var traced func(*Options) // off: no provider, and the global one is OpenTelemetry's no-op
			if on {
				exp, traced = withTracing(t)
			}
			url, rec := upstream(t, "demo")
			g := startGatewayOpts(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q}\n", key, url), nil, traced)
			endpoint := g.URL() + "/mcp/demo"
			h := bearer(key)
			h.Set("Traceparent", "00-"+clientTraceID+"-"+clientSpanID+"-01")
			h.Set("Tracestate", "k="+key+",vendor=opaque-SECRET")
			h.Set("X-Mcp-Demo-Tracestate", "k="+strings.TrimPrefix(key, "sk-")+",vendor=opaque-SECRET")
			s := initSession(t, endpoint, h)
			r := post(t, endpoint, s, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`)
			if r.status != http.StatusOK || r.rpcErr.Code != 0 {
				t.Fatalf("tools/call: HTTP %d: %s", r.status, r.body)
			}

			joined := false
			for i, hdr := range rec.seen() {
				if v := hdr.Values("Tracestate"); len(v) > 0 {
					t.Errorf("upstream request %d carries tracestate %q", i, v)
				}
				for name, v := range hdr {
					if s := strings.Join(v, " "); strings.Contains(s, "opaque-SECRET") || strings.Contains(s, strings.TrimPrefix(key, "sk-")) {
						t.Errorf("upstream request %d: %s: %q holds the client's tracestate", i, name, s)
					}
				}
				joined = joined || strings.HasPrefix(hdr.Get("Traceparent"), "00-"+clientTraceID+"-")
			}
			if !joined {
				t.Error("no upstream request carries the client's trace id: the traceparent must still join")
			}
			if !on {
				return
			}
			tid, _ := trace.TraceIDFromHex(clientTraceID)
			bustest.Eventually(t, 30*time.Second, "the upstream span of the tools/call, in the client's trace", func() error {
				var names []string
				for _, sp := range exp.GetSpans() {
					if sp.Name == "upstream demo tools/call" && sp.SpanContext.TraceID() == tid {
						return nil
					}
					names = append(names, sp.Name+" in "+sp.SpanContext.TraceID().String())
				}
				return fmt.Errorf("spans so far: %v", names)
			})
			for _, sp := range exp.GetSpans() {
				if sp.SpanContext.TraceState().Len() > 0 || sp.Parent.TraceState().Len() > 0 {
					t.Errorf("span %q: tracestate %q, parent's %q", sp.Name, sp.SpanContext.TraceState(), sp.Parent.TraceState())
				}
				if all := fmt.Sprintf("%+v", sp); strings.Contains(all, "opaque-SECRET") || strings.Contains(all, strings.TrimPrefix(key, "sk-")) {
					t.Errorf("span %q holds the client's tracestate: %s", sp.Name, all)
				}
			}
		})
	}
}

// A traceparent made of the caller's key (a hex master key fits a trace id)
// is ignored: the key never goes upstream or into a span as a trace id.
func TestSecurityTraceparentHoldingTheKeyIsIgnored(t *testing.T) {
	const key = "5ec2e7a11b0c4d3e8f9a0b1c2d3e4f50" // 32 hex digits: a valid trace id
	registerSecret(key)
	exp, traced := withTracing(t)
	url, rec := upstream(t, "demo")
	g := startGatewayOpts(t, fmt.Sprintf("general_settings: {master_key: %q}\nmcp_servers:\n  demo: {url: %q}\n", key, url), nil, traced)
	endpoint := g.URL() + "/mcp/demo"
	for _, c := range []struct{ name, header, value string }{
		{"trace id", "Authorization", "Bearer " + key},
		{"trailing field of a later version", "X-Litellm-Api-Key", key},
	} {
		h := http.Header{c.header: {c.value}}
		tp := "00-" + key + "-" + clientSpanID + "-01"
		if c.name != "trace id" {
			tp = "01-" + clientTraceID + "-" + clientSpanID + "-01-" + key
		}
		h.Set("Traceparent", tp)
		s := initSession(t, endpoint, h)
		if r := post(t, endpoint, s, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`); r.status != http.StatusOK || r.rpcErr.Code != 0 {
			t.Fatalf("%s: tools/call: HTTP %d: %s", c.name, r.status, r.body)
		}
	}
	for i, hdr := range rec.seen() {
		for name, v := range hdr {
			if strings.Contains(strings.Join(v, " "), key) || strings.Contains(strings.Join(v, " "), clientTraceID) {
				t.Errorf("upstream request %d: %s: %q holds the caller's key or the trace it came with", i, name, v)
			}
		}
	}
	spans := exp.GetSpans()
	if len(spans) == 0 {
		t.Fatal("no spans")
	}
	for _, sp := range spans {
		if all := fmt.Sprintf("%+v", sp); strings.Contains(all, key) || sp.SpanContext.TraceID().String() == clientTraceID {
			t.Errorf("span %q joined the trace the key came with: %s", sp.Name, sp.SpanContext.TraceID())
		}
	}
}
