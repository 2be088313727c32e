package toolworkers

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxToolLabels caps the distinct tool label values per server. Tool names
// come from callers (tools/call params) and upstream lists, so they are not
// bounded by the gateway; past the cap, and for names no upstream has answered
// yet, the label is "other".
const MaxToolLabels = 200

// Metrics holds the Prometheus metrics of every worker in this process: call
// counters and durations recorded per finished call, and worker state (limiter
// and breaker) read from the live workers when scraped. One Metrics serves all
// the workers of a process; pass it in Options.Metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	cache    *prometheus.CounterVec
	usage    *prometheus.CounterVec
	// Operations (metrics_ops.go): calls running per server, drained servers.
	running sync.Map // server -> prometheus.Gauge
	inCalls *prometheus.GaugeVec
	drained *prometheus.GaugeVec

	mu      sync.Mutex
	workers map[*Worker]struct{}
	tools   sync.Map // server -> *toolSet
	// series caches the metrics of each label set: they are bounded, and a
	// hit skips hashing four label values per call.
	series      sync.Map // callKey -> *callSeries
	cacheSeries sync.Map // callKey{server, method, status: outcome} -> prometheus.Counter
	// Guard decisions (metrics_guards.go).
	guards      *prometheus.CounterVec
	guardSeries sync.Map // guardKey -> prometheus.Counter
}

type callKey struct{ server, method, tool, status, variant string }

type callSeries struct {
	calls    prometheus.Counter
	duration prometheus.Observer
}

// CallBuckets are the upstream call duration buckets, in seconds: MCP calls
// range from milliseconds (lists) to minutes (long tools).
var CallBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// NewMetrics creates the worker metrics and registers them in reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpbus_upstream_calls_total",
			Help: "Upstream calls finished by the tool workers. status: ok (a result), error (a JSON-RPC error from the upstream), failed (a gateway error: unreachable, timeout, busy, breaker open...). tool is set for tools/call only; past " + strconv.Itoa(MaxToolLabels) + " names per server, or before the upstream has answered a name once, it is \"other\". variant: stable, or canary for the calls a canary upstream served.",
		}, []string{"server", "method", "tool", "status", "variant"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpbus_upstream_call_duration_seconds",
			Help:    "Duration of upstream calls in the tool workers, from the limiter wait to the answer.",
			Buckets: CallBuckets,
		}, []string{"server", "method", "variant"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpbus_upstream_errors_total",
			Help: "Failed upstream calls by code: a gateway error catalog code (MCPBUS_UPSTREAM_TIMEOUT...) or the upstream's JSON-RPC error code (-32602...; codes outside -32768..-32000 are \"other\").",
		}, []string{"server", "code", "variant"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpbus_catalog_cache_total",
			Help: "List calls (tools/list, prompts/list, resources/list, resources/templates/list) by catalog cache outcome: hit (answered from the worker's cache), joined (shared a concurrent call's upstream fetch), shared (read from another replica's fetch while its ttlMs holds), warm (the first list after a restart, from the page kept before it), miss (fetched upstream).",
		}, []string{"server", "method", "outcome"}),
		usage: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpbus_usage_events_total",
			Help: "Usage events of the tool workers by outcome: stored (acknowledged by the usage stream), retried (published again after no acknowledgement), dropped (queue or retry buffer full: lost), lost (refused for good or not stored within 90s).",
		}, []string{"outcome"}),
		inCalls: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mcpbus_worker_in_flight_calls",
			Help: "Calls the tool workers of this process are running, per server: from when a worker takes a call to its answer (limiter wait included), retiring and draining workers and canaries included.",
		}, []string{"server"}),
		drained: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mcpbus_worker_drained",
			Help: "1 for each server this process hosts whose record says drain: its workers take no new calls.",
		}, []string{"server"}),
		workers: map[*Worker]struct{}{},
		guards:  newGuardDecisions(), // metrics_guards.go
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration, m.errors, m.cache, m.usage, m.inCalls, m.drained, stateCollector{m}, m.guards} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// usageEvent counts one usage event's outcome.
func (m *Metrics) usageEvent(outcome string) {
	if m != nil {
		m.usage.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) add(w *Worker) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.workers[w] = struct{}{}
	m.mu.Unlock()
}

func (m *Metrics) remove(w *Worker) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.workers, w)
	m.mu.Unlock()
}

// recordMetrics updates the worker's metrics for one call.
func (w *Worker) recordMetrics(rec callRecord) {
	m := w.metrics
	if m == nil {
		return
	}
	server := w.up.Name
	method := methodLabel(rec.method)
	tool := ""
	if rec.method == "tools/call" {
		tool = m.toolLabel(server, rec.tool, rec.status == "ok")
	}
	variant := w.variantLabel()
	k := callKey{server, method, tool, rec.status, variant}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &callSeries{
			calls:    m.calls.WithLabelValues(server, method, tool, rec.status, variant),
			duration: m.duration.WithLabelValues(server, method, variant),
		})
	}
	s := v.(*callSeries)
	s.calls.Inc()
	s.duration.Observe(time.Since(rec.start).Seconds())
	if rec.status != "ok" {
		m.errors.WithLabelValues(server, errorCodeLabel(rec.status, rec.errCode), variant).Inc()
	}
}

// cacheOutcome counts one list call's catalog cache outcome.
func (m *Metrics) cacheOutcome(server, method, outcome string) {
	if m == nil || outcome == "" {
		return
	}
	k := callKey{server: server, method: method, status: outcome}
	c, ok := m.cacheSeries.Load(k)
	if !ok {
		c, _ = m.cacheSeries.LoadOrStore(k, m.cache.WithLabelValues(server, method, outcome))
	}
	c.(prometheus.Counter).Inc()
}

// toolSet is the tool label values admitted for one server.
type toolSet struct {
	mu    sync.RWMutex
	names map[string]struct{}
}

// toolLabel is name if it is an admitted label value. A name is admitted once
// an upstream answered it with a result (so callers cannot fill the set with
// names that do not exist), while fewer than MaxToolLabels are.
func (m *Metrics) toolLabel(server, name string, answered bool) string {
	v, ok := m.tools.Load(server)
	if !ok {
		v, _ = m.tools.LoadOrStore(server, &toolSet{names: map[string]struct{}{}})
	}
	ts := v.(*toolSet)
	ts.mu.RLock()
	_, known := ts.names[name]
	n := len(ts.names)
	ts.mu.RUnlock()
	if known {
		return name
	}
	if !answered || n >= MaxToolLabels || name == "" || len(name) > 128 || !utf8.ValidString(name) {
		return "other"
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if _, known := ts.names[name]; !known {
		if len(ts.names) >= MaxToolLabels {
			return "other"
		}
		ts.names[name] = struct{}{}
	}
	return name
}

// methodLabel bounds the method label: callers may send any method name, and
// the worker forwards it, so names outside MCP's are "other".
func methodLabel(method string) string {
	if knownMethods[method] {
		return method
	}
	return "other"
}

var knownMethods = map[string]bool{
	"initialize": true, "ping": true,
	"tools/list": true, "tools/call": true,
	"prompts/list": true, "prompts/get": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"completion/complete": true, "logging/setLevel": true,
	"tasks/get": true, "tasks/list": true, "tasks/result": true, "tasks/cancel": true,
}

// errorCodeLabel is the catalog code of a gateway failure, or the upstream's
// JSON-RPC error code when it is in the range JSON-RPC reserves
// (-32768..-32000); anything else is "other".
func errorCodeLabel(status, code string) string {
	if status == "failed" {
		if code == "" {
			return "other"
		}
		return code
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < -32768 || n > -32000 {
		return "other"
	}
	return code
}

// stateCollector reports the live workers' limiter and breaker state at scrape
// time, summed (in flight, queued) or worst (breaker, of the stable upstream)
// over the replicas of a server in this process, and each server's canary
// percent.
type stateCollector struct{ m *Metrics }

var (
	inFlightDesc = prometheus.NewDesc("mcpbus_worker_in_flight",
		"Upstream calls in flight: those holding a max_concurrent_requests slot, or, for a server without that limit, the worker's running call handlers.", []string{"server"}, nil)
	queuedDesc = prometheus.NewDesc("mcpbus_worker_queue_depth",
		"Calls waiting for a max_concurrent_requests slot.", []string{"server"}, nil)
	breakerDesc = prometheus.NewDesc("mcpbus_upstream_breaker_state",
		"Circuit breaker state: 0 closed, 1 half-open, 2 open. Of the stable upstream: a canary's own breaker shows in its errors (variant canary).", []string{"server"}, nil)
	canaryDesc = prometheus.NewDesc("mcpbus_worker_canary_percent",
		"The share of calls (by downstream session) the server's running canary upstream gets; 0 without one.", []string{"server"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inFlightDesc
	ch <- queuedDesc
	ch <- breakerDesc
	ch <- canaryDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	type state struct{ inFlight, queued, breaker, canary int }
	servers := map[string]*state{}
	c.m.mu.Lock()
	for w := range c.m.workers {
		s := servers[w.up.Name]
		if s == nil {
			s = &state{}
			servers[w.up.Name] = s
		}
		if w.limit != nil {
			s.inFlight += w.limit.inFlight()
		} else {
			s.inFlight += w.pool.InFlight() // no limiter: the handlers running
		}
		s.queued += w.limit.queued()
		if w.variant != variantCanary {
			s.breaker = max(s.breaker, breakerValue(w.breaker.state()))
			if w.canary.Load() != nil {
				s.canary = max(s.canary, w.up.CanaryPercent)
			}
		}
	}
	c.m.mu.Unlock()
	for name, s := range servers {
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(s.inFlight), name)
		ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(s.queued), name)
		ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, float64(s.breaker), name)
		ch <- prometheus.MustNewConstMetric(canaryDesc, prometheus.GaugeValue, float64(s.canary), name)
	}
}

func breakerValue(state string) int {
	switch state {
	case "half-open":
		return 1
	case "open":
		return 2
	}
	return 0
}
