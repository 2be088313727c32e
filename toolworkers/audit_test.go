package toolworkers

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

func auditBenchRecord() callRecord {
	return callRecord{env: bus.Envelope{RequestID: "r1", Caller: bus.Identity{KeyID: "k", Alias: "bot"}, IPClass: bus.Internal},
		method: bus.MethodToolsCall, tool: "echo", start: time.Now(), status: "ok",
		params: json.RawMessage(`{"name":"echo","arguments":{"text":"hello","n":3}}`)}
}

// With audit off a call does no audit work: no record, no allocation.
func TestAuditOffCostsNothing(t *testing.T) {
	w := &Worker{up: &config.Upstream{Name: "a"}, audit: newAuditPublisher(config.Audit{}, nil, nil)}
	if w.audit != nil {
		t.Fatal("audit off made a publisher")
	}
	rec := auditBenchRecord()
	e := bus.Errorf(bus.ErrToolNotAllowed, "no")
	msg := &bus.Message{Method: bus.MethodToolsCall, Params: rec.params}
	if n := testing.AllocsPerRun(100, func() {
		w.observeAudit(&rec)
		w.auditRefused(rec.env, msg, "echo", time.Time{}, e)
	}); n != 0 {
		t.Errorf("audit off allocates %v per call", n)
	}
	if s := w.AuditStats(); s != (AuditStats{}) {
		t.Errorf("audit off counts %+v", s)
	}
}

// The outcome of a call the worker answered: the client's cancellation
// first, then the status.
func TestAuditOutcome(t *testing.T) {
	for _, c := range []struct {
		rec  callRecord
		want string
	}{
		{callRecord{status: "ok"}, bus.AuditOK},
		{callRecord{status: "error"}, bus.AuditError},
		{callRecord{status: "failed"}, bus.AuditError},
		{callRecord{status: "failed", cancelled: true}, bus.AuditCancelled},
	} {
		if got := auditOutcome(c.rec); got != c.want {
			t.Errorf("%+v: %s, want %s", c.rec, got, c.want)
		}
	}
}

func BenchmarkAuditOff(b *testing.B) {
	w := &Worker{up: &config.Upstream{Name: "a"}}
	rec := auditBenchRecord()
	b.ReportAllocs()
	for b.Loop() {
		w.observeAudit(&rec)
	}
}

// Building one record (the part on the call's goroutine; JSON and publish
// are the publisher's).
func BenchmarkAuditRecordHash(b *testing.B) {
	w := &Worker{up: &config.Upstream{Name: "a"}, audit: &auditPublisher{args: bus.AuditArgsHash}}
	rec := auditBenchRecord()
	b.ReportAllocs()
	for b.Loop() {
		_ = w.auditRecord(rec, bus.AuditOK, time.Now())
	}
}
