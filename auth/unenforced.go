package auth

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/mcpbus/mcpbus/bus"
)

// LiteLLM's key and team fields that limit what a key may do, and that
// mcpbus does not enforce yet. A key written with one would be less limited
// than its writer meant, so a write that sets one is refused, naming it,
// rather than stored without it. A field left empty (null, [], {}, "") sets
// no limit and passes: LiteLLM's own clients send models: [] by default.
var unenforcedFields = map[string]string{
	"soft_budget":            "budgets",
	"max_parallel_requests":  "parallel-request limits",
	"allowed_routes":         "route limits",
	"allowed_cache_controls": "cache-control limits",
	"guardrails":             "guardrails",
	"enforced_params":        "enforced parameters",
}

// unenforcedObjectFields are those of object_permission.
var unenforcedObjectFields = map[string]string{
	"vector_stores": "vector store limits",
}

// unenforcedOrgFields are LiteLLM's organization fields that limit its
// keys and that mcpbus does not enforce on an organization (it does on a
// key, or reads the limit elsewhere).
var unenforcedOrgFields = map[string]string{
	"model_max_budget":           "per-model budgets of an organization",
	"model_rpm_limit":            "per-model rpm limits of an organization",
	"model_tpm_limit":            "per-model tpm limits of an organization",
	"budget_id":                  "shared budget tables; set max_budget, budget_duration, tpm_limit and rpm_limit",
	"allowed_models":             "allowed_models; set models",
	"max_budget_in_organization": "member budgets",
}

// refuseUnenforced answers a key, team or organization write that sets a
// limit mcpbus would not enforce with 400 naming the field(s); extra are
// more such fields of the record written.
func refuseUnenforced(data []byte, extra map[string]string) *bus.Error {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil // decode reports malformed bodies
	}
	var bad []string
	for _, fields := range []map[string]string{unenforcedFields, extra} {
		for field, what := range fields {
			if sets(top[field]) {
				bad = append(bad, field+" ("+what+")")
			}
		}
	}
	var op map[string]json.RawMessage
	if json.Unmarshal(top["object_permission"], &op) == nil {
		for field, what := range unenforcedObjectFields {
			if sets(op[field]) {
				bad = append(bad, "object_permission."+field+" ("+what+")")
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	msg := "not enforced by mcpbus yet, so a key, team or organization limited by it is refused rather than stored without the limit: "
	for i, b := range bad {
		if i > 0 {
			msg += ", "
		}
		msg += b
	}
	return bus.Errorf(bus.ErrBadRequest, "%s", msg)
}

// sets reports whether a JSON value sets a limit: anything but absent,
// null, an empty list, object or string.
func sets(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	switch string(v) {
	case "", "null", "[]", "{}", `""`:
		return false
	}
	if len(v) > 1 && (v[0] == '[' || v[0] == '{') {
		var any []json.RawMessage
		if v[0] == '[' && json.Unmarshal(v, &any) == nil && len(any) == 0 {
			return false
		}
		var obj map[string]json.RawMessage
		if v[0] == '{' && json.Unmarshal(v, &obj) == nil && len(obj) == 0 {
			return false
		}
	}
	return true
}
