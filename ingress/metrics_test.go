package ingress

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var internalNet = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

func metricsIngress(t *testing.T, o Options) *Ingress {
	t.Helper()
	if o.NC == nil {
		o.NC = testConn(t)
	}
	if o.InternalRanges == nil {
		o.InternalRanges = internalNet
	}
	g := New(o)
	t.Cleanup(g.Close)
	return g
}

func serve(g *Ingress, method, path, remote string, header http.Header, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = remote
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, r)
	return w
}

// scrape reads /metrics as an internal caller and parses it.
func scrape(t *testing.T, g *Ingress) map[string]*dto.MetricFamily {
	t.Helper()
	w := serve(g, http.MethodGet, "/metrics", "10.0.0.9:4000", nil, "")
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics from an internal caller: HTTP %d: %s", w.Code, w.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mf
}

// sample finds the metric of family name with exactly these labels.
func sample(mf map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	f := mf[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

func TestReadiness(t *testing.T) {
	nc := testConn(t)
	g := metricsIngress(t, Options{NC: nc, Servers: &servercache.Cache{}})
	w := serve(g, http.MethodGet, "/health/readiness", "203.0.113.9:1", nil, "")
	if w.Code != http.StatusOK || w.Body.String() != `{"status":"healthy","nats":"connected","registry":"loaded"}` {
		t.Fatalf("ready: HTTP %d %s", w.Code, w.Body)
	}
	if w := serve(g, http.MethodGet, "/health/liveliness", "203.0.113.9:1", nil, ""); w.Code != http.StatusOK || w.Body.String() != `"I'm alive!"` {
		t.Fatalf("liveliness: HTTP %d %s", w.Code, w.Body)
	}

	nc.Close()
	w = serve(g, http.MethodGet, "/health/readiness", "203.0.113.9:1", nil, "")
	var rep struct {
		Status, NATS, Registry string
		Failed                 []string
	}
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || w.Code != http.StatusServiceUnavailable ||
		rep.Status != "unhealthy" || rep.NATS != "closed" || rep.Registry != "loaded" || len(rep.Failed) != 1 || rep.Failed[0] != "nats" {
		t.Fatalf("NATS closed: HTTP %d %s", w.Code, w.Body)
	}
	if w := serve(g, http.MethodGet, "/health/liveliness", "203.0.113.9:1", nil, ""); w.Code != http.StatusOK {
		t.Fatalf("liveliness with NATS closed: HTTP %d, want 200 (alive, not ready)", w.Code)
	}

	// A registry cache whose connection is down no longer follows the
	// bucket: not ready.
	ns := bustest.Server(t)
	cacheConn := bustest.Conn(t, ns)
	js, _ := jetstream.New(cacheConn)
	if _, err := bus.ServersBucket(context.Background(), js, bus.StatePolicy{}); err != nil {
		t.Fatal(err)
	}
	cache, err := servercache.Follow(context.Background(), cacheConn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g3 := metricsIngress(t, Options{NC: bustest.Conn(t, ns), Servers: cache})
	if w := serve(g3, http.MethodGet, "/health/readiness", "203.0.113.9:1", nil, ""); w.Code != http.StatusOK {
		t.Fatalf("following: HTTP %d %s", w.Code, w.Body)
	}
	cacheConn.Close()
	if w := serve(g3, http.MethodGet, "/health/readiness", "203.0.113.9:1", nil, ""); w.Code != http.StatusServiceUnavailable ||
		!strings.Contains(w.Body.String(), `"registry":"not following (its bus connection is down)","failed":["registry"]`) {
		t.Fatalf("registry cache disconnected: HTTP %d %s", w.Code, w.Body)
	}

	// No registry cache: not ready either.
	g2 := metricsIngress(t, Options{})
	w = serve(g2, http.MethodGet, "/health/readiness", "203.0.113.9:1", nil, "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"registry":"not loaded","failed":["registry"]`) {
		t.Fatalf("no registry cache: HTTP %d %s", w.Code, w.Body)
	}
}

// /metrics answers internal callers without a key. With metrics in
// external_routes, it answers external ones only with the master key, and is
// otherwise absent (404) for them, whatever they send; without (the
// default), external callers get 403 naming the setting, even with the
// master key.
func TestMetricsEndpointAccess(t *testing.T) {
	nc := testConn(t)
	fakeVerify(t, nc)
	g := metricsIngress(t, Options{NC: nc, ExternalRoutes: []bus.RouteFamily{bus.RoutesMCP, bus.RoutesMetrics}})
	const external = "203.0.113.9:1234"
	cases := []struct {
		name, method, remote string
		header               http.Header
		want                 int
	}{
		{"internal, no key", http.MethodGet, "10.1.2.3:5555", nil, http.StatusOK},
		{"internal, HEAD", http.MethodHead, "10.1.2.3:5555", nil, http.StatusOK},
		{"internal, POST", http.MethodPost, "10.1.2.3:5555", nil, http.StatusMethodNotAllowed},
		{"external, no key", http.MethodGet, external, nil, http.StatusNotFound},
		{"external, POST", http.MethodPost, external, nil, http.StatusNotFound},
		{"external, user key", http.MethodGet, external, http.Header{"Authorization": {"Bearer " + testUserKey}}, http.StatusNotFound},
		{"external, bad key", http.MethodGet, external, http.Header{"Authorization": {"Bearer sk-wrong"}}, http.StatusNotFound},
		{"external, master key", http.MethodGet, external, http.Header{"X-Litellm-Api-Key": {testMasterKey}}, http.StatusOK},
	}
	notFound := serve(g, http.MethodGet, "/no-such-endpoint", external, nil, "")
	for _, c := range cases {
		w := serve(g, c.method, "/metrics", c.remote, c.header, "")
		if w.Code != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, w.Code, c.want)
		}
		if c.want == http.StatusNotFound && (w.Body.String() != notFound.Body.String() || w.Header().Get("Content-Type") != notFound.Header().Get("Content-Type")) {
			t.Errorf("%s: 404 %q differs from an absent endpoint's %q", c.name, w.Body, notFound.Body)
		}
		if c.want == http.StatusOK && c.method == http.MethodGet && !strings.Contains(w.Body.String(), "mcpbus_http_requests_total") {
			t.Errorf("%s: no HTTP metrics in %s", c.name, w.Body)
		}
	}

	closed := metricsIngress(t, Options{NC: nc})
	for _, c := range cases {
		w := serve(closed, c.method, "/metrics", c.remote, c.header, "")
		internal := strings.HasPrefix(c.remote, "10.")
		if internal && w.Code != c.want {
			t.Errorf("default external_routes, %s: HTTP %d, want %d", c.name, w.Code, c.want)
		}
		if !internal && (w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "MCPBUS_ROUTE_NOT_EXPOSED") ||
			!strings.Contains(w.Body.String(), "external_routes: [mcp]")) {
			t.Errorf("default external_routes, %s: HTTP %d %s; want 403 MCPBUS_ROUTE_NOT_EXPOSED naming external_routes", c.name, w.Code, w.Body)
		}
	}
}

// Requests are counted by route (never the raw path), method and status.
func TestHTTPMetricsByRoute(t *testing.T) {
	nc := testConn(t)
	fakeVerify(t, nc)
	g := metricsIngress(t, Options{NC: nc, Servers: &servercache.Cache{}})
	const remote = "10.0.0.1:1"
	for _, name := range []string{"github", "secret-internal-db", "x1", "x2"} {
		serve(g, http.MethodPut, "/mcp/"+name, remote, nil, "") // 405
	}
	serve(g, http.MethodPost, "/mcp", remote, nil, `{"jsonrpc":"2.0","id":1,"method":"ping"}`) // 401: no key
	serve(g, http.MethodPost, "/mcp/a/b", remote, nil, "")                                     // 404: UNKNOWN_SERVER
	serve(g, http.MethodGet, "/health/readiness", remote, nil, "")
	serve(g, http.MethodGet, "/key/list", remote, nil, "")
	serve(g, http.MethodGet, "/team/list", remote, nil, "")
	serve(g, http.MethodGet, "/nothing/here", remote, nil, "")
	serve(g, "BREW", "/health/liveliness", remote, nil, "")

	mf := scrape(t, g)
	for _, c := range []struct {
		route, method, status string
		n                     float64
	}{
		{"/mcp/{server}", "PUT", "405", 4},
		{"/mcp", "POST", "401", 1},
		{"/mcp/{server}", "POST", "404", 1},
		{"/health/readiness", "GET", "200", 1},
		{"/key/*", "GET", "401", 1},
		{"/team/*", "GET", "401", 1},
		{"unmatched", "GET", "404", 1},
		{"unmatched", "other", "405", 1},
	} {
		m := sample(mf, "mcpbus_http_requests_total", map[string]string{"route": c.route, "method": c.method, "status": c.status})
		if m == nil || m.Counter.GetValue() != c.n {
			t.Errorf("requests{route=%s,method=%s,status=%s} = %v, want %v", c.route, c.method, c.status, m, c.n)
		}
	}
	h := sample(mf, "mcpbus_http_request_duration_seconds", map[string]string{"route": "/mcp/{server}"})
	if h == nil || h.Histogram.GetSampleCount() != 5 {
		t.Errorf("duration{route=/mcp/{server}} = %v, want 5 samples", h)
	}
	for _, f := range mf {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "secret-internal-db") || strings.Contains(l.GetValue(), "nothing") {
					t.Errorf("a raw path reached a label: %s %v", f.GetName(), m.Label)
				}
			}
		}
	}
}

func TestRouteLabel(t *testing.T) {
	for pattern, want := range map[string]string{
		"":                        "unmatched",
		"/mcp":                    "/mcp",
		"/mcp/":                   "/mcp/{server}",
		"/sse":                    "/sse",
		"/sse/":                   "/sse/{server}",
		"/messages":               "/messages",
		"POST /mcp/{server}":      "/mcp/{server}",
		"GET /health/readiness":   "/health/readiness",
		"GET /health/liveliness":  "/health/liveliness",
		"/metrics":                "/metrics",
		"/key/generate":           "/key/*",
		"POST /team/{id}/members": "/team/*",
		"GET /v1/mcp/server/{id}": "/v1/*",
		"example.com/mcp":         "/mcp",
		"/":                       "/*",
	} {
		if got := routeLabel(pattern); got != want {
			t.Errorf("routeLabel(%q) = %q, want %q", pattern, got, want)
		}
	}
}

type lockedBuffer = bustest.Buffer

// The access log is one Info line per request (not for probes and scrapes)
// with its request id, and never the key or the body.
func TestAccessLog(t *testing.T) {
	nc := testConn(t)
	fakeVerify(t, nc)
	logs := &lockedBuffer{}
	g := metricsIngress(t, Options{NC: nc, Servers: &servercache.Cache{},
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h := http.Header{"Authorization": {"Bearer " + testUserKey}, "Content-Type": {"application/json"}}
	serve(g, http.MethodPost, "/mcp/github", "10.0.0.1:1", h, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"secret":"p4ssw0rd"}}`)
	serve(g, http.MethodGet, "/health/readiness", "10.0.0.1:1", nil, "")
	out := logs.String()
	lines := strings.Count(out, `msg="mcp request"`)
	if lines != 1 || strings.Contains(out, "/health/readiness") {
		t.Fatalf("%d access log lines, want 1 (and none for the probe):\n%s", lines, out)
	}
	for _, want := range []string{"request_id=", "method=tools/list", "caller=alice", "route=/mcp/{server}", "ip_class=internal", "servers=github", "status="} {
		if !strings.Contains(out, want) {
			t.Errorf("access log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{testUserKey, "p4ssw0rd", bus.HashKey(testUserKey)} {
		if strings.Contains(out, secret) {
			t.Errorf("access log contains a secret %q:\n%s", secret, out)
		}
	}

	// At Info the line is there too (the default level), for admin routes
	// as well; at Warn, nothing.
	logs2 := &lockedBuffer{}
	g2 := metricsIngress(t, Options{NC: nc, Servers: &servercache.Cache{}, Log: slog.New(slog.NewTextHandler(logs2, nil))})
	serve(g2, http.MethodPost, "/mcp", "10.0.0.1:1", h, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	serve(g2, http.MethodGet, "/key/list", "10.0.0.1:1", h, "")
	if s := logs2.String(); !strings.Contains(s, `level=INFO msg="mcp request"`) || !strings.Contains(s, `msg="http request"`) {
		t.Errorf("access log at Info level: %s", s)
	}
	logs3 := &lockedBuffer{}
	g3 := metricsIngress(t, Options{NC: nc, Servers: &servercache.Cache{}, Log: slog.New(slog.NewTextHandler(logs3, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	serve(g3, http.MethodPost, "/mcp", "10.0.0.1:1", h, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if s := logs3.String(); strings.Contains(s, "request") {
		t.Errorf("access log at Warn level: %s", s)
	}
}

// The status writer keeps SSE flushing and http.ResponseController working.
func TestStatusWriterFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec}
	if err := http.NewResponseController(sw).Flush(); err != nil {
		t.Fatal(err)
	}
	if !rec.Flushed || sw.status != http.StatusOK {
		t.Fatalf("flushed %v, status %d", rec.Flushed, sw.status)
	}
}

// BenchmarkMeterHTTP measures what the metrics wrapper adds per request, on
// two of the cheapest answers (liveliness; a GET on the MCP endpoint, refused
// with 406 for want of Accept: text/event-stream before any bus call), so the
// overhead is not hidden by work.
func BenchmarkMeterHTTP(b *testing.B) {
	nc := bustest.Conn(b, bustest.Server(b))
	g := New(Options{NC: nc, InternalRanges: internalNet, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer g.Close()
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"bare-mux", g.mux}, {"metered-mux", g.meterHTTP(g.mux)},
		// A handler that does nothing: the wrapper's own cost, undiluted.
		{"bare-noop", noopHandler}, {"metered-noop", g.meterHTTP(noopHandler)},
	} {
		for _, path := range []string{"/health/liveliness", "/mcp/github"} {
			b.Run(c.name+path, func(b *testing.B) {
				r := httptest.NewRequest(http.MethodGet, path, nil)
				b.ReportAllocs()
				for b.Loop() {
					w := discardWriter{h: http.Header{}}
					c.h.ServeHTTP(w, r)
				}
			})
		}
	}
}

var noopHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
