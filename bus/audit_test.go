package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// The hash is of the canonical arguments: the same arguments spelt with
// other key order or spacing hash the same; numbers keep their digits.
func TestAuditArgumentsHash(t *testing.T) {
	a, b := AuditRecord{}, AuditRecord{}
	a.SetArguments(AuditArgsHash, json.RawMessage(`{"b": 2, "a": {"y": [1, 2.50], "x": "s"}}`))
	b.SetArguments(AuditArgsHash, json.RawMessage(`{"a":{"x":"s","y":[1,2.50]},"b":2}`))
	want := sha256.Sum256([]byte(`{"a":{"x":"s","y":[1,2.50]},"b":2}`))
	if a.ArgumentsSHA256 != hex.EncodeToString(want[:]) || b.ArgumentsSHA256 != a.ArgumentsSHA256 {
		t.Errorf("hashes %s, %s, want %x", a.ArgumentsSHA256, b.ArgumentsSHA256, want)
	}
	if a.Arguments != nil || a.ArgumentsTruncated {
		t.Errorf("hash mode kept the arguments: %s", a.Arguments)
	}
	var none AuditRecord
	none.SetArguments(AuditArgsNone, json.RawMessage(`{"a":1}`))
	if none.ArgumentsSHA256 != "" || none.Arguments != nil {
		t.Errorf("none kept %+v", none)
	}
	var full AuditRecord
	full.SetArguments(AuditArgsFull, json.RawMessage(`{"b":1, "a":2}`))
	if string(full.Arguments) != `{"a":2,"b":1}` || full.ArgumentsSHA256 == "" {
		t.Errorf("full: %s %s", full.Arguments, full.ArgumentsSHA256)
	}
	var big AuditRecord
	big.SetArguments(AuditArgsFull, json.RawMessage(`{"s":"`+strings.Repeat("x", AuditMaxArguments)+`"}`))
	if big.Arguments != nil || !big.ArgumentsTruncated || big.ArgumentsSHA256 == "" {
		t.Errorf("arguments over the bound: %d bytes kept, truncated %v", len(big.Arguments), big.ArgumentsTruncated)
	}
	if err := (&AuditRecord{RequestID: "r", Server: "a", Outcome: AuditOK, Arguments: make(json.RawMessage, AuditMaxArguments+1)}).Validate(); err == nil {
		t.Error("a record with arguments over the bound is valid")
	}
}

func TestAuditSubjectsAndValidate(t *testing.T) {
	if s := AuditSubject("github", AuditDenied); s != "mcpbus.v1.audit.github.denied" {
		t.Errorf("subject %s", s)
	}
	if s := AuditSubject("github", "anything.else"); s != "mcpbus.v1.audit.github.error" {
		t.Errorf("an unknown outcome makes subject %s", s)
	}
	if f := AuditFilter("", AuditDenied); f != "mcpbus.v1.audit.*.denied" {
		t.Errorf("filter %s", f)
	}
	for r, msg := range map[*AuditRecord]string{
		{Server: "a", Outcome: AuditOK}:                   "request_id is empty",
		{RequestID: "r", Server: "a.b", Outcome: AuditOK}: `server "a.b" is not a subject token`,
		{RequestID: "r", Server: "a", Outcome: "maybe"}:   `outcome "maybe" is not one of`,
	} {
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%+v: %v, want %q", r, err, msg)
		}
	}
}

// A worker limited to server a publishes a's records only; only the audit
// role (and no dashboard) reads the stream; only the registry creates it.
func TestAuditPermissions(t *testing.T) {
	w := RolePermissions("w", []Role{RoleWorkers}, []string{"a"})
	if !may(w.Publish.Allow, AuditSubject("a", AuditOK)) || may(w.Publish.Allow, AuditSubject("b", AuditOK)) {
		t.Errorf("a worker for a publishes %v", w.Publish.Allow)
	}
	for _, r := range Roles {
		p := RolePermissions("u", []Role{r}, nil)
		if reads := may(p.Publish.Allow, jsMsgGet(StreamAudit)); reads != (r == RoleAudit) {
			t.Errorf("role %s may read the audit stream: %v", r, reads)
		}
		if creates := may(p.Publish.Allow, jsStreamCreate(StreamAudit)); creates != (r == RoleRegistry) {
			t.Errorf("role %s may create the audit stream: %v", r, creates)
		}
	}
	ing := RolePermissions("i", []Role{RoleIngress}, nil)
	if may(ing.Publish.Allow, AuditSubject("a", AuditOK)) {
		t.Error("the ingress may publish audit records")
	}
}
