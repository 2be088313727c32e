package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// scrapeMetrics reads a gateway's /metrics (the test runs on loopback, an
// internal address) and parses the Prometheus text format.
func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mf
}

// metricValue is the value of the series of family name whose labels include
// labels: a counter's or gauge's value, a histogram's sample count; -1 when
// there is no such series.
func metricValue(mf map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := mf[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

type labels = map[string]string

// Real calls through the gateway show up per server, method, tool and status
// at the worker and per route at the ingress; the NATS connections and the
// readiness checks are reported too.
func TestMetricsThroughTheGateway(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  alpha: {url: %q}
  beta: {url: %q}
`, master, a, b), nil)
	ha := initSession(t, g.URL()+"/mcp/alpha", bearer(master))
	hb := initSession(t, g.URL()+"/mcp/beta", bearer(master))
	for i := range 2 {
		if r := post(t, g.URL()+"/mcp/alpha", ha, rpc("tools/call", i, `{"name":"echo","arguments":{"text":"hi"}}`)); r.status != 200 || len(r.result) == 0 {
			t.Fatalf("echo: %s", r.body)
		}
	}
	if r := post(t, g.URL()+"/mcp/alpha", ha, rpc("tools/call", 3, `{"name":"no-such-tool","arguments":{}}`)); r.rpcErr.Code == 0 {
		t.Fatalf("unknown tool: %s, want the upstream's JSON-RPC error", r.body)
	}
	post(t, g.URL()+"/mcp/alpha", ha, rpc("tools/list", 4, ""))
	post(t, g.URL()+"/mcp/beta", hb, rpc("tools/call", 5, `{"name":"add","arguments":{"a":1,"b":2}}`))
	// The go-sdk upstream refuses an unknown method with HTTP 400: a gateway
	// failure (MCPBUS_UPSTREAM_PROTOCOL), counted under method "other".
	if r := post(t, g.URL()+"/mcp/beta", hb, rpc("x/made-up-method", 6, "")); r.rpcErr.Data["mcpbus_code"] != "MCPBUS_UPSTREAM_PROTOCOL" {
		t.Fatalf("made-up method: %s", r.body)
	}

	mf := scrapeMetrics(t, g.URL())
	for _, c := range []struct {
		name string
		l    labels
		want float64
	}{
		{"mcpbus_upstream_calls_total", labels{"server": "alpha", "method": "tools/call", "tool": "echo", "status": "ok"}, 2},
		{"mcpbus_upstream_calls_total", labels{"server": "alpha", "method": "tools/call", "tool": "other", "status": "error"}, 1},
		{"mcpbus_upstream_calls_total", labels{"server": "alpha", "method": "tools/list", "tool": "", "status": "ok"}, 1},
		{"mcpbus_upstream_calls_total", labels{"server": "beta", "method": "tools/call", "tool": "add", "status": "ok"}, 1},
		{"mcpbus_upstream_calls_total", labels{"server": "beta", "method": "other", "tool": "", "status": "failed"}, 1},
		{"mcpbus_upstream_call_duration_seconds", labels{"server": "alpha", "method": "tools/call"}, 3},
		{"mcpbus_upstream_call_duration_seconds", labels{"server": "alpha", "method": "tools/list"}, 1},
		{"mcpbus_upstream_errors_total", labels{"server": "alpha", "code": "-32602"}, 1},
		{"mcpbus_upstream_errors_total", labels{"server": "beta", "code": "MCPBUS_UPSTREAM_PROTOCOL"}, 1},
		{"mcpbus_worker_in_flight", labels{"server": "alpha"}, 0},
		{"mcpbus_worker_queue_depth", labels{"server": "beta"}, 0},
		{"mcpbus_upstream_breaker_state", labels{"server": "alpha"}, 0},
		// 2 initialize + 6 calls, all answered 200 (JSON-RPC errors included).
		{"mcpbus_http_requests_total", labels{"route": "/mcp/{server}", "method": "POST", "status": "200"}, 8},
		{"mcpbus_http_request_duration_seconds", labels{"route": "/mcp/{server}"}, 8},
	} {
		if got := metricValue(mf, c.name, c.l); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.l, got, c.want)
		}
	}
	for _, conn := range []string{"mcpbus-auth", "mcpbus-registry", "mcpbus-servers", "mcpbus-router", "mcpbus-workers", "mcpbus-ingress"} {
		if got := metricValue(mf, "mcpbus_nats_connected", labels{"connection": conn}); got != 1 {
			t.Errorf("mcpbus_nats_connected{%s} = %v, want 1", conn, got)
		}
		if got := metricValue(mf, "mcpbus_nats_out_msgs_total", labels{"connection": conn}); got <= 0 {
			t.Errorf("mcpbus_nats_out_msgs_total{%s} = %v, want > 0", conn, got)
		}
	}
	if mf["go_goroutines"] == nil || mf["process_cpu_seconds_total"] == nil && mf["process_start_time_seconds"] == nil {
		t.Errorf("no Go runtime / process metrics")
	}
	// The scrape itself is counted under its route.
	if got := metricValue(scrapeMetrics(t, g.URL()), "mcpbus_http_requests_total", labels{"route": "/metrics", "status": "200"}); got < 1 {
		t.Errorf("/metrics requests = %v", got)
	}

	resp, err := http.Get(g.URL() + "/health/readiness")
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if resp.StatusCode != 200 || rep["status"] != "healthy" || rep["nats"] != "connected" || rep["registry"] != "loaded" {
		t.Errorf("readiness: HTTP %d %v", resp.StatusCode, rep)
	}
	assertNoSecrets(t, g, master)
}

// With metrics in external_routes, an external caller finds no /metrics
// (404, as for a path that does not exist) unless it brings the master key.
// (Without, the default, the route is closed to them: TestExternalCallersGetMCPOnlyByDefault.)
func TestMetricsHiddenFromExternalCallers(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_internal_ip_ranges: ["10.0.0.0/8"], external_routes: [mcp, metrics]}
mcp_servers: {}
`, master), nil)
	get := func(path string, h http.Header) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, g.URL()+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		sb.Write(buf[:n])
		return resp.StatusCode, sb.String()
	}
	absentCode, absentBody := get("/no-such-endpoint", nil)
	if code, body := get("/metrics", nil); code != http.StatusNotFound || body != absentBody || absentCode != http.StatusNotFound {
		t.Errorf("external caller: HTTP %d %q, want the 404 of an absent endpoint (%d %q)", code, body, absentCode, absentBody)
	}
	if code, _ := get("/metrics", bearer("sk-not-the-master")); code != http.StatusNotFound {
		t.Errorf("external caller with a wrong key: HTTP %d, want 404", code)
	}
	if code, body := get("/metrics", bearer(master)); code != http.StatusOK || !strings.Contains(body, "# HELP") {
		t.Errorf("external caller with the master key: HTTP %d %q", code, body)
	}
}

// The breaker gauge follows the breaker: closed, open after
// circuit_breaker_threshold failures of a down upstream, half-open once the
// cooldown has passed; every failure is counted by code. No clock races:
// "gone" has an hour's cooldown, so it stays open while the test looks;
// "brief" has 100ms, and the test waits until its gauge turns half-open. (A
// failed probe opening the breaker again is TestBreakerOpensProbesAndCloses
// in toolworkers, on a test clock.)
func TestBreakerStateMetric(t *testing.T) {
	down := "http://" + freeAddr(t) + "/mcp"
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  gone: {url: %q, circuit_breaker_threshold: 2, circuit_breaker_cooldown: 1h}
  brief: {url: %q, circuit_breaker_threshold: 2, circuit_breaker_cooldown: 100ms}
`, master, down, down), nil)
	stateOf := func(server string) float64 {
		return metricValue(scrapeMetrics(t, g.URL()), "mcpbus_upstream_breaker_state", labels{"server": server})
	}
	state := func() float64 { return stateOf("gone") }
	if s := state(); s != 0 {
		t.Fatalf("breaker state before any call = %v, want 0 (closed)", s)
	}
	url := g.URL() + "/mcp/gone"
	h := initSession(t, url, bearer(master)) // the router's info call fails: one failure
	call := rpc("tools/call", 1, `{"name":"echo","arguments":{"text":"x"}}`)
	if r := post(t, url, h, call); r.rpcErr.Data["mcpbus_code"] != "MCPBUS_UPSTREAM_UNAVAILABLE" {
		t.Fatalf("call to a down upstream: %s", r.body)
	}
	if s := state(); s != 2 {
		t.Fatalf("breaker state after 2 failures = %v, want 2 (open)", s)
	}
	post(t, url, h, call) // refused by the open breaker, no upstream attempt
	mf := scrapeMetrics(t, g.URL())
	if got := metricValue(mf, "mcpbus_upstream_errors_total", labels{"server": "gone", "code": "MCPBUS_UPSTREAM_UNAVAILABLE"}); got != 2 {
		t.Errorf("errors{MCPBUS_UPSTREAM_UNAVAILABLE} = %v, want 2", got)
	}
	if got := metricValue(mf, "mcpbus_upstream_calls_total", labels{"server": "gone", "method": "tools/call", "tool": "other", "status": "failed"}); got != 2 {
		t.Errorf("calls{tools/call, failed} = %v, want 2 (a tool no upstream answered is \"other\")", got)
	}

	briefURL := g.URL() + "/mcp/brief"
	hb := initSession(t, briefURL, bearer(master)) // one failure
	if r := post(t, briefURL, hb, call); r.rpcErr.Data["mcpbus_code"] != "MCPBUS_UPSTREAM_UNAVAILABLE" {
		t.Fatalf("call to a down upstream: %s", r.body)
	}
	bustest.Eventually(t, 30*time.Second, "the breaker of brief half-open after its 100ms cooldown", func() error {
		return bustest.Want("breaker state", stateOf("brief"), 1)
	})
}

// During slow calls the in-flight and queue gauges show them; afterwards
// they are back to 0 and the duration histogram has them in its upper buckets.
// The upstream holds its calls until the test has seen the gauges, then takes
// a second over each: the durations have lower bounds only (a call lasts at
// least what the upstream sleeps), which a slow machine cannot break.
func TestInFlightGauge(t *testing.T) {
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	srv := mcp.NewServer(&mcp.Implementation{Name: "a", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "slow", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		time.Sleep(time.Second) // real time: the durations' lower bound (see above)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "slept"}}}, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(up.Close)
	t.Cleanup(releaseOnce) // before the upstream's Close, which waits for the calls
	a := up.URL + "/mcp"
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  slowpoke: {url: %q, max_concurrent_requests: 1, max_queued_requests: 5, timeout: 20s}
`, master, a), nil)
	url := g.URL() + "/mcp/slowpoke"
	h := initSession(t, url, bearer(master))
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			postQuiet(url, h, rpc("tools/call", i, `{"name":"slow","arguments":{}}`))
		}()
	}
	var inFlight, queued float64
	_ = bustest.Poll(30*time.Second, func() error { // only calls that never arrive wait it out; checked below
		mf := scrapeMetrics(t, g.URL())
		inFlight = metricValue(mf, "mcpbus_worker_in_flight", labels{"server": "slowpoke"})
		queued = metricValue(mf, "mcpbus_worker_queue_depth", labels{"server": "slowpoke"})
		if inFlight != 1 || queued != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	if inFlight != 1 || queued != 1 {
		t.Errorf("during two slow calls with max_concurrent_requests 1: in flight %v, queued %v; want 1 and 1", inFlight, queued)
	}
	releaseOnce()
	wg.Wait()
	mf := scrapeMetrics(t, g.URL())
	if got := metricValue(mf, "mcpbus_worker_in_flight", labels{"server": "slowpoke"}); got != 0 {
		t.Errorf("in flight after the calls = %v, want 0", got)
	}
	var hist *dto.Histogram
	for _, m := range mf["mcpbus_upstream_call_duration_seconds"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "method" && l.GetValue() == "tools/call" {
				hist = m.Histogram
			}
		}
	}
	if hist == nil || hist.GetSampleCount() != 2 || hist.GetSampleSum() < 3 {
		t.Fatalf("tools/call durations: %v, want 2 calls, one of 1 s and one of 1 s after waiting 1 s", hist)
	}
	for _, bk := range hist.Bucket {
		if bk.GetUpperBound() < 0.9 && bk.GetCumulativeCount() != 0 {
			t.Errorf("bucket le=%v has %d calls, want 0 (every call took 1 s or more)", bk.GetUpperBound(), bk.GetCumulativeCount())
		}
	}
}
