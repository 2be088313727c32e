package gateway

import (
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics. Each gateway has a registry of its own (not Prometheus's global
// one), so several gateways in one process (tests) do not collide; the ingress
// serves it on /metrics (ingress/metrics.go: internal callers only). In it:
//
//   - the ingress's HTTP metrics (mcpbus_http_*), registered by ingress.New;
//   - the workers' call metrics and state gauges (mcpbus_upstream_*,
//     mcpbus_worker_*), one toolworkers.Metrics shared by every worker the
//     manager starts, read from the live workers at scrape time;
//   - the state of this process's NATS connections (mcpbus_nats_*), read at
//     scrape time;
//   - Go runtime and process metrics (go_*, process_*).
//
// `mcpbus worker` builds the same registry (NewMetricsRegistry) for its one
// connection.
func (g *Gateway) metricsRegistry() (*prometheus.Registry, *toolworkers.Metrics, error) {
	// g.conns is complete before the HTTP server (so any scrape) starts.
	return NewMetricsRegistry(func() []*nats.Conn { return g.conns })
}

// NewMetricsRegistry is a process's registry: Go and process metrics, the
// state of the NATS connections conns returns at scrape time, and the
// workers' metrics (which a process that runs no worker leaves empty).
func NewMetricsRegistry(conns func() []*nats.Conn) (*prometheus.Registry, *toolworkers.Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), natsCollector{conns})
	wm, err := toolworkers.NewMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	return reg, wm, nil
}

// natsCollector reports each bus connection of the gateway by its name
// (mcpbus-auth, -registry, -servers, -router, -workers, -ingress): connected or
// not, and its message, byte and reconnect counts (nats.Conn.Stats: a copy
// under the connection's lock, cheap at scrape time).
type natsCollector struct{ conns func() []*nats.Conn }

var (
	natsConnectedDesc = prometheus.NewDesc("mcpbus_nats_connected",
		"1 while the NATS connection is connected, else 0 (reconnecting, closed...).", []string{"connection"}, nil)
	natsInMsgsDesc = prometheus.NewDesc("mcpbus_nats_in_msgs_total",
		"Messages received on the NATS connection.", []string{"connection"}, nil)
	natsOutMsgsDesc = prometheus.NewDesc("mcpbus_nats_out_msgs_total",
		"Messages sent on the NATS connection.", []string{"connection"}, nil)
	natsInBytesDesc = prometheus.NewDesc("mcpbus_nats_in_bytes_total",
		"Payload bytes received on the NATS connection.", []string{"connection"}, nil)
	natsOutBytesDesc = prometheus.NewDesc("mcpbus_nats_out_bytes_total",
		"Payload bytes sent on the NATS connection.", []string{"connection"}, nil)
	natsReconnectsDesc = prometheus.NewDesc("mcpbus_nats_reconnects_total",
		"Reconnections of the NATS connection.", []string{"connection"}, nil)
)

func (c natsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{natsConnectedDesc, natsInMsgsDesc, natsOutMsgsDesc, natsInBytesDesc, natsOutBytesDesc, natsReconnectsDesc} {
		ch <- d
	}
}

func (c natsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, nc := range c.conns() {
		name := nc.Opts.Name
		connected := 0.0
		if nc.Status() == nats.CONNECTED {
			connected = 1
		}
		s := nc.Stats()
		ch <- prometheus.MustNewConstMetric(natsConnectedDesc, prometheus.GaugeValue, connected, name)
		ch <- prometheus.MustNewConstMetric(natsInMsgsDesc, prometheus.CounterValue, float64(s.InMsgs), name)
		ch <- prometheus.MustNewConstMetric(natsOutMsgsDesc, prometheus.CounterValue, float64(s.OutMsgs), name)
		ch <- prometheus.MustNewConstMetric(natsInBytesDesc, prometheus.CounterValue, float64(s.InBytes), name)
		ch <- prometheus.MustNewConstMetric(natsOutBytesDesc, prometheus.CounterValue, float64(s.OutBytes), name)
		ch <- prometheus.MustNewConstMetric(natsReconnectsDesc, prometheus.CounterValue, float64(s.Reconnects), name)
	}
}
