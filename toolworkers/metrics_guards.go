package toolworkers

import (
	"github.com/prometheus/client_golang/prometheus"
)

// guardKey is one series of mcpbus_guard_decisions_total: all its labels
// are bounded by the config (server and guard names, phases, decisions).
type guardKey struct{ server, guard, phase, decision string }

func newGuardDecisions() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpbus_guard_decisions_total",
		Help: "Guard decisions on tools/calls (docs/GUARDS.md) by server, guard, phase (request, result) and decision: pass, modify, block, fail_open and fail_closed (an external guard that did not answer in time, or unreadably).",
	}, []string{"server", "guard", "phase", "decision"})
}

// guardDecision counts one guard's decision on a call.
func (m *Metrics) guardDecision(server, guard, phase, decision string) {
	if m == nil {
		return
	}
	k := guardKey{server, guard, phase, decision}
	c, ok := m.guardSeries.Load(k)
	if !ok {
		c, _ = m.guardSeries.LoadOrStore(k, m.guards.WithLabelValues(server, guard, phase, decision))
	}
	c.(prometheus.Counter).Inc()
}
