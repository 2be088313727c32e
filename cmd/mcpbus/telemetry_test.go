package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is a fake OTLP/HTTP traces endpoint.
type collector struct {
	mu   sync.Mutex
	reqs []*coltrace.ExportTraceServiceRequest
	bad  []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
		c.bad = append(c.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.reqs = append(c.reqs, &req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// spans lists the exported spans as "service.name: span name".
func (c *collector) spans() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, req := range c.reqs {
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.Resource.GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, service+": "+s.Name)
				}
			}
		}
	}
	return out
}

// otelEnv clears every variable setupTracing reads, then sets kv.
func otelEnv(t *testing.T, kv ...string) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
		"OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} {
		t.Setenv(k, "")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
	// setupTracing installs its provider globally; put the default back.
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
}

// serveAndCall runs `mcpbus serve` against a demo upstream, makes one
// initialize and one tools/call through it, and shuts it down.
func serveAndCall(t *testing.T) {
	t.Helper()
	up := httptest.NewServer(demo.Handler("demo"))
	defer up.Close()
	cfg := writeConfig(t, fmt.Sprintf("mcp_servers:\n  demo: {url: %q}\n", up.URL+"/mcp"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--config", cfg, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--nats-listen", "off"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`mcpbus listening on (http://\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line = %q", line)
	}
	endpoint := m[1] + "/mcp/demo"
	rpc := func(session, body string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := rpc("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: HTTP %d: %s", resp.StatusCode, body)
	}
	resp, body = rpc(sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "hello") || strings.Contains(body, `"error"`) {
		t.Fatalf("tools/call: HTTP %d: %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// With an OTLP endpoint set, serve exports every hop's spans under
// service.name "mcpbus" (or OTEL_SERVICE_NAME), flushed at shutdown.
func TestServeExportsTracesOverOTLP(t *testing.T) {
	for _, c := range []struct {
		name, service string
		env           []string
	}{
		{"default service name", "mcpbus", nil},
		{"OTEL_SERVICE_NAME", "gateway-eu", []string{"OTEL_SERVICE_NAME", "gateway-eu"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			col := &collector{}
			srv := httptest.NewServer(col)
			defer srv.Close()
			otelEnv(t, append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL}, c.env...)...)
			serveAndCall(t)
			got := strings.Join(col.spans(), "\n")
			for _, want := range []string{"mcp POST /mcp/{server}", "router route initialize", "worker demo tools/call", "upstream demo tools/call"} {
				if !strings.Contains(got, c.service+": "+want) {
					t.Errorf("no span %q of service %q exported; got:\n%s", want, c.service, got)
				}
			}
			if len(col.bad) > 0 {
				t.Errorf("bad exports: %q", col.bad)
			}
		})
	}
}

// Without an endpoint, or with export turned off, no SDK is installed (the
// global provider is left as it was), nothing is exported, and calls work.
func TestTracingOffByDefault(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	for _, c := range []struct {
		name string
		env  []string
	}{
		{"no endpoint", nil},
		{"OTEL_SDK_DISABLED", []string{"OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL, "OTEL_SDK_DISABLED", "true"}},
		{"OTEL_TRACES_EXPORTER=none", []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL + "/v1/traces", "OTEL_TRACES_EXPORTER", "none"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			otelEnv(t, c.env...)
			before := otel.GetTracerProvider()
			tr, err := setupTracing(context.Background(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if _, noopTP := tr.tracerProvider().(noop.TracerProvider); tr.Provider != nil || !noopTP || otel.GetTracerProvider() != before {
				t.Errorf("a tracer provider was set up")
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Errorf("shutdown without a provider: %v", err)
			}
			serveAndCall(t)
			if got := col.spans(); len(got) > 0 || len(col.bad) > 0 {
				t.Errorf("exported %q %q", got, col.bad)
			}
		})
	}
}
