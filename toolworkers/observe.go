package toolworkers

import (
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// callRecord is what the worker knows about one finished call.
type callRecord struct {
	env      bus.Envelope
	method   string
	tool     string // tools/call only
	start    time.Time
	status   string // "ok", "error" (a JSON-RPC error from upstream) or "failed" (a gateway error)
	errCode  string // catalog code, or the upstream's JSON-RPC error code
	bytesIn  int
	bytesOut int
	cache    string // catalog cache outcome (catalog.go), "" for methods not cached
	// For the audit record (audit.go), with audit on: when the worker took
	// the call, its params, and whether its client cancelled it.
	received  time.Time
	params    json.RawMessage
	cancelled bool
	// guards: the guards' decisions (guards.go), nil when none ran.
	guards []bus.AuditGuard
}

// observe records one finished call: a usage event on the bus (usage.go) and
// the worker's metrics (metrics.go).
func (w *Worker) observe(rec callRecord) {
	w.publishUsage(rec)
	w.observeAudit(&rec)
	w.recordMetrics(rec)
}

// observeAudit queues the audit record of rec (audit.go); with audit off it
// does nothing, not even copy rec.
func (w *Worker) observeAudit(rec *callRecord) {
	if w.audit != nil {
		w.auditCall(*rec, auditOutcome(*rec))
	}
}

// rpcErrorCode reads error.code of a raw JSON-RPC error object as text.
func rpcErrorCode(raw []byte) string {
	var e struct {
		Code json.Number `json:"code"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return ""
	}
	return e.Code.String()
}
