package ingress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/oauth"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPBuckets are the request duration buckets, in seconds. An MCP request
// lasts as long as its upstream call (up to minutes); /health and /metrics
// take microseconds.
var HTTPBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// httpMetrics are the ingress's request metrics and the /metrics handler.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler
	// series caches the counter and histogram of each (route, method,
	// status): the label sets are few, and a cache hit skips hashing them.
	series sync.Map // seriesKey -> *series
}

type seriesKey struct {
	route, method string
	status        int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (m *httpMetrics) observe(route, method string, status int, elapsed time.Duration) {
	k := seriesKey{route, method, status}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(route),
		})
	}
	s := v.(*series)
	s.requests.Inc()
	s.duration.Observe(elapsed.Seconds())
}

// meters returns the ingress's metrics, registering them on first use in
// Options.Metrics (or a private registry).
func (g *Ingress) meters() *httpMetrics {
	if g.metrics != nil {
		return g.metrics
	}
	reg := g.o.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpbus_http_requests_total",
			Help: "HTTP requests answered by the ingress. route is the endpoint (/mcp, /mcp/{server}, /sse, /sse/{server}, /messages, /health/..., /metrics, /key/*, /team/*, ...), never the raw path.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpbus_http_request_duration_seconds",
			Help:    "Time from receiving an HTTP request to the end of its answer (for an SSE stream: its last event).",
			Buckets: HTTPBuckets,
		}, []string{"route"}),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogErrorLog{g.log}}),
	}
	m.requests = registerOrReuse(reg, m.requests)
	m.duration = registerOrReuse(reg, m.duration)
	g.metrics = m
	return m
}

// registerOrReuse registers c, or returns the collector already registered
// under its name (several ingresses in one process share one registry).
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: conflicting metric definitions
	}
	return c
}

type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) {
	l.log.Warn("metrics: gathering failed", "err", fmt.Sprint(v...))
}

// metricsRoutes registers /metrics. It answers only internal callers (by IP
// class, as for servers that are not available_on_public_internet), without a
// key, as Prometheus scrapes on an internal network; an external caller gets
// the metrics only with the master key, and otherwise a 404, as if there were
// no such endpoint. A caller that may scrape must then pass the MCP
// endpoints' Host/Origin check (origin.go, 403): without it, a web page an
// internal user opens could rebind its name to the gateway and read the
// metrics, which need no key from inside.
func (g *Ingress) metricsRoutes(mux *http.ServeMux) {
	m := g.meters()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if !g.mayScrape(r) {
			noRoute(w) // as an absent endpoint answers (notfound.go)
			return
		}
		if e := g.origin.checkOn(r, "/metrics"); e != nil {
			writeRESTError(w, e)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		m.handler.ServeHTTP(w, r)
	})
}

func (g *Ingress) mayScrape(r *http.Request) bool {
	if g.ipClass(r) == bus.Internal {
		return true
	}
	if callerKey(r) == "" {
		return false
	}
	id, e := g.verify(r)
	return e == nil && id.Admin
}

// meterHTTP records every request's count and duration by route, method and
// status, and writes the access log line of MCP requests.
func (g *Ingress) meterHTTP(h http.Handler) http.Handler {
	m := g.meters()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{sw: statusWriter{ResponseWriter: w, oauth: g.oauth, path: r.URL.Path}} // one allocation for both
		sw, inner := &info.sw, r
		if !polled(r.URL.Path) {
			// Copying the request for the context is most of this wrapper's
			// cost: probes and scrapes, which log nothing, skip it.
			info.id = nuid.Next() // made here, so handler goroutines only read it
			inner = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
			if r.Body != nil && r.Body != http.NoBody {
				// On the handler's copy only: net/http's own handling of
				// an unread body looks at the request it made.
				info.body.ReadCloser = r.Body
				inner.Body, info.sw.body = &info.body, &info.body
			}
		}
		h.ServeHTTP(sw, inner)
		// The mux records the pattern it matched on the request it was given;
		// pass it out to the wrappers around this one (tracing names spans by it).
		r.Pattern = inner.Pattern
		elapsed := time.Since(start)
		status := sw.status
		if status == 0 {
			status = http.StatusOK // nothing written: net/http answers 200
		}
		route := routeLabel(r.Pattern) // set by the mux on this request
		m.observe(route, methodLabel(r.Method), status, elapsed)
		if !polled(r.URL.Path) && g.log.Enabled(r.Context(), slog.LevelInfo) {
			g.accessLog(inner, info, route, status, elapsed)
		}
	})
}

// mcpRoute reports the routes of the MCP transports, whose access log lines
// say "mcp request" (others: "http request").
func mcpRoute(route string) bool {
	switch route {
	case "/mcp", "/mcp/{server}", "/sse", "/sse/{server}", "/messages":
		return true
	}
	return false
}

// polled reports the endpoints monitoring polls: no request id, no access log.
func polled(path string) bool {
	return path == "/metrics" || strings.HasPrefix(path, "/health/")
}

// accessLog writes one Debug line per MCP request: what was asked, by whom
// (the key's alias or short id, never the key), and how it ended. Debug, so a
// busy gateway does not pay for it unless asked (--log-level debug); failures
// are logged at Warn by the services anyway. Headers and bodies are never
// logged.
func (g *Ingress) accessLog(r *http.Request, info *reqInfo, route string, status int, elapsed time.Duration) {
	attrs := []slog.Attr{
		slog.String("request_id", requestID(r)),
		slog.String("http_method", r.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
	}
	if req := info.req; req != nil {
		attrs = append(attrs,
			slog.String("method", req.msg.Method),
			slog.String("caller", req.env.Caller.Name()),
			slog.String("ip_class", string(req.env.IPClass)),
			slog.String("servers", strings.Join(req.env.Servers, ",")))
	}
	msg := "http request"
	if mcpRoute(route) {
		msg = "mcp request"
	}
	g.log.LogAttrs(r.Context(), slog.LevelInfo, msg, attrs...)
}

// reqInfo is what the handlers tell the access log about one HTTP request.
type reqInfo struct {
	sw   statusWriter
	body trackedBody
	id   string
	req  *request // the admitted MCP request, if any
}

type reqInfoKey struct{}

// requestID is the id of the HTTP request being handled: the envelope's
// request id on the bus and the request_id of every log line about it. It is
// made once per request, so lines written before and after admission agree.
func requestID(r *http.Request) string {
	if info, _ := r.Context().Value(reqInfoKey{}).(*reqInfo); info != nil {
		return info.id
	}
	return nuid.Next() // not behind meterHTTP (or a polled endpoint)
}

// noteRequest hands the admitted MCP request to the access log.
func noteRequest(r *http.Request, req *request) {
	if info, _ := r.Context().Value(reqInfoKey{}).(*reqInfo); info != nil {
		info.req = req
	}
}

// routeLabel maps the mux pattern that served a request to a bounded route
// label: /mcp and /mcp/{server} (never the server name itself), the health
// and metrics endpoints, and every other endpoint grouped by its first path
// segment (/key/*, /team/*, /v1/*...). Requests no pattern matched are
// "unmatched".
func routeLabel(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = pattern[i+1:] // "GET /path"
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:] // "host/path"
	}
	switch pattern {
	case "":
		return "unmatched"
	case "/mcp":
		return "/mcp"
	case "/mcp/", "/mcp/{server}":
		return "/mcp/{server}"
	case "/sse", "/messages":
		return pattern
	case "/sse/", "/sse/{server}":
		return "/sse/{server}"
	case "/metrics", "/health/liveliness", "/health/readiness":
		return pattern
	}
	seg, _, _ := strings.Cut(pattern[1:], "/")
	if seg == "" {
		return "/*"
	}
	return "/" + seg + "/*"
}

// methodLabel bounds the method label: a client may send any method token.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

// statusWriter records the status a handler answers with. It keeps Flush
// (SSE) and Unwrap (http.ResponseController) working. An answer given before
// the request's body was read (a refused key, a bad header) closes the
// connection: net/http would otherwise read up to 256 KiB of the unread body
// before it writes the answer, with no deadline, so a client trickling it
// could hold the connection (and get no answer) for as long as it liked.
type statusWriter struct {
	http.ResponseWriter
	status int
	body   *trackedBody // nil: the request has no body
	// With OAuth on, a 401 says where the resource metadata is, and why a
	// token was refused (oauth.go): path is the request's, oauthErr the
	// refusal verifyToken noted.
	oauth    *oauthGate
	path     string
	oauthErr *oauth.Error
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
		if s.oauth != nil && code == http.StatusUnauthorized {
			s.Header().Set("WWW-Authenticate", s.oauth.challenge(s.path, s.oauthErr))
		}
		if s.body != nil && !s.body.done {
			s.Header().Set("Connection", "close")
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// trackedBody notes when a request body has been read to its end.
type trackedBody struct {
	io.ReadCloser
	done bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF { // not on a timeout: the rest is still unread
		b.done = true
	}
	return n, err
}

func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
