package toolworkers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/pool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func metricsWorker(t testing.TB, m *Metrics, name string, maxConcurrent int) *Worker {
	t.Helper()
	w := &Worker{
		up:      &config.Upstream{Name: name},
		pool:    pool.New(8),
		limit:   newLimiter(name, maxConcurrent, 10),
		breaker: newBreaker(name, 2, time.Hour),
		metrics: m,
	}
	m.add(w)
	return w
}

func TestRecordMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	w := metricsWorker(t, m, "github", 0)
	start := time.Now().Add(-30 * time.Millisecond)
	w.recordMetrics(callRecord{method: "tools/call", tool: "search", status: "ok", start: start})
	w.recordMetrics(callRecord{method: "tools/call", tool: "search", status: "error", errCode: "-32602", start: start})
	w.recordMetrics(callRecord{method: "tools/call", tool: "search", status: "failed", errCode: "MCPBUS_UPSTREAM_TIMEOUT", start: start})
	w.recordMetrics(callRecord{method: "tools/list", status: "ok", start: start})
	w.recordMetrics(callRecord{method: "x/made-up", status: "error", errCode: "42", start: start})
	// A name the upstream never answered is not admitted as a label value.
	w.recordMetrics(callRecord{method: "tools/call", tool: "no-such-tool", status: "error", errCode: "-32602", start: start})

	for code, n := range map[string]float64{"-32602": 2, "MCPBUS_UPSTREAM_TIMEOUT": 1, "other": 1} {
		if got := testutil.ToFloat64(m.errors.WithLabelValues("github", code, "stable")); got != n {
			t.Errorf("errors{%s} = %v, want %v", code, got, n)
		}
	}
	if n := testutil.CollectAndCount(m.errors); n != 3 {
		t.Errorf("%d error series, want 3", n)
	}
	for _, c := range []struct {
		method, tool, status string
		n                    float64
	}{
		{"tools/call", "search", "ok", 1},
		{"tools/call", "search", "error", 1},
		{"tools/call", "search", "failed", 1},
		{"tools/call", "other", "error", 1},
		{"tools/list", "", "ok", 1},
		{"other", "", "error", 1},
	} {
		if got := testutil.ToFloat64(m.calls.WithLabelValues("github", c.method, c.tool, c.status, "stable")); got != c.n {
			t.Errorf("calls{%s,%s,%s} = %v, want %v", c.method, c.tool, c.status, got, c.n)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 3 {
		t.Errorf("%d duration series, want 3 (tools/call, tools/list, other)", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP mcpbus_upstream_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open. Of the stable upstream: a canary's own breaker shows in its errors (variant canary).
# TYPE mcpbus_upstream_breaker_state gauge
mcpbus_upstream_breaker_state{server="github"} 0
`), "mcpbus_upstream_breaker_state"); err != nil {
		t.Error(err)
	}
}

// Tool names are capped per server; the rest fold into "other".
func TestToolLabelCap(t *testing.T) {
	m, _ := NewMetrics(prometheus.NewRegistry())
	for i := range MaxToolLabels + 50 {
		if got, want := m.toolLabel("a", fmt.Sprintf("t%d", i), true), fmt.Sprintf("t%d", i); i < MaxToolLabels && got != want {
			t.Fatalf("tool %d: label %q, want %q", i, got, want)
		} else if i >= MaxToolLabels && got != "other" {
			t.Fatalf("tool %d past the cap: label %q, want other", i, got)
		}
	}
	if got := m.toolLabel("a", "t3", false); got != "t3" {
		t.Errorf("an admitted name, failed call: %q", got)
	}
	if got := m.toolLabel("b", "t0", true); got != "t0" {
		t.Errorf("another server has its own cap: %q", got)
	}
	for _, bad := range []string{"", strings.Repeat("x", 129), "\xff"} {
		if got := m.toolLabel("c", bad, true); got != "other" {
			t.Errorf("toolLabel(%q) = %q, want other", bad, got)
		}
	}
}

// The state gauges are read from the live workers at scrape time: in flight
// and queued from the limiter, the breaker's state, summed or worst over the
// replicas of a server; a stopped worker is no longer reported.
func TestWorkerStateGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := NewMetrics(reg)
	a1 := metricsWorker(t, m, "a", 1)
	a2 := metricsWorker(t, m, "a", 1)
	b := metricsWorker(t, m, "b", 0)

	release, err := a1.limit.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		r, err := a1.limit.acquire(context.Background())
		if err == nil {
			r()
		}
	}()
	bustest.Eventually(t, 30*time.Second, "a caller waits in a1's queue", func() error { return bustest.Want("queued", a1.limit.queued(), 1) })
	// b's breaker opens after two failures (threshold 2).
	for range 2 {
		done, _ := b.breaker.allow()
		done(bus.Errorf(bus.ErrUpstreamUnavailable, "down"))
	}
	// a2's breaker: open, then its cooldown passes (half-open).
	for range 2 {
		done, _ := a2.breaker.allow()
		done(errors.New("internal"))
	}
	a2.breaker.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	b.pool.Go(func() { <-waiting })

	gauges := func() string {
		var out []string
		for _, name := range []string{"mcpbus_worker_in_flight", "mcpbus_worker_queue_depth", "mcpbus_upstream_breaker_state"} {
			for _, server := range []string{"a", "b"} {
				v := -1.0
				mfs, _ := reg.Gather()
				for _, mf := range mfs {
					if mf.GetName() != name {
						continue
					}
					for _, mm := range mf.Metric {
						if mm.Label[0].GetValue() == server {
							v = mm.Gauge.GetValue()
						}
					}
				}
				out = append(out, fmt.Sprintf("%s{%s}=%v", name, server, v))
			}
		}
		return strings.Join(out, " ")
	}
	want := "mcpbus_worker_in_flight{a}=1 mcpbus_worker_in_flight{b}=1 mcpbus_worker_queue_depth{a}=1 mcpbus_worker_queue_depth{b}=0 mcpbus_upstream_breaker_state{a}=1 mcpbus_upstream_breaker_state{b}=2"
	if got := gauges(); got != want {
		t.Errorf("gauges\n got %s\nwant %s", got, want)
	}
	release()
	<-waiting
	m.remove(b)
	want = "mcpbus_worker_in_flight{a}=0 mcpbus_worker_in_flight{b}=-1 mcpbus_worker_queue_depth{a}=0 mcpbus_worker_queue_depth{b}=-1 mcpbus_upstream_breaker_state{a}=1 mcpbus_upstream_breaker_state{b}=-1"
	if got := gauges(); got != want {
		t.Errorf("after the call and b's stop\n got %s\nwant %s", got, want)
	}
}

func TestErrorCodeLabel(t *testing.T) {
	for _, c := range []struct{ status, code, want string }{
		{"failed", "MCPBUS_UPSTREAM_BUSY", "MCPBUS_UPSTREAM_BUSY"},
		{"failed", "", "other"},
		{"error", "-32601", "-32601"},
		{"error", "-32000", "-32000"},
		{"error", "-31999", "other"},
		{"error", "123456789", "other"},
		{"error", "", "other"},
	} {
		if got := errorCodeLabel(c.status, c.code); got != c.want {
			t.Errorf("errorCodeLabel(%s, %q) = %q, want %q", c.status, c.code, got, c.want)
		}
	}
}

// BenchmarkRecordMetrics is the per-call cost of the worker metrics.
func BenchmarkRecordMetrics(b *testing.B) {
	m, _ := NewMetrics(prometheus.NewRegistry())
	w := metricsWorker(b, m, "github", 0)
	rec := callRecord{method: "tools/call", tool: "search", status: "ok", start: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		w.recordMetrics(rec)
	}
}
