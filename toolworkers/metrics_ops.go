package toolworkers

import "github.com/prometheus/client_golang/prometheus"

// callRunning counts one call of server as running until the returned
// function is called (mcpbus_worker_in_flight_calls).
func (m *Metrics) callRunning(server string) (done func()) {
	if m == nil {
		return func() {}
	}
	g, ok := m.running.Load(server)
	if !ok {
		g, _ = m.running.LoadOrStore(server, m.inCalls.WithLabelValues(server))
	}
	gauge := g.(prometheus.Gauge)
	gauge.Inc()
	return gauge.Dec
}

// setDrained shows (or stops showing) server as drained (mcpbus_worker_drained).
func (m *Metrics) setDrained(server string, drained bool) {
	if m == nil {
		return
	}
	if drained {
		m.drained.WithLabelValues(server).Set(1)
	} else {
		m.drained.DeleteLabelValues(server)
	}
}
