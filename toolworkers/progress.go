package toolworkers

import (
	"bytes"
	"encoding/json"
)

// rewriteProgressToken replaces params._meta.progressToken with token and returns
// the new params and the caller's original token (raw JSON). ok is false when the
// request asked for no progress; then params are returned untouched. A rewritten
// object is re-encoded: its values are the same, its key order and spacing may
// not be (only requests that ask for progress pay for this).
func rewriteProgressToken(params json.RawMessage, token string) (out, original json.RawMessage, ok bool) {
	if !bytes.Contains(params, []byte(`"progressToken"`)) {
		return params, nil, false
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return params, nil, false
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(p["_meta"], &meta) != nil || len(meta["progressToken"]) == 0 {
		return params, nil, false
	}
	original = meta["progressToken"]
	meta["progressToken"], _ = json.Marshal(token)
	p["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(p)
	if err != nil {
		return params, nil, false
	}
	return out, original, true
}

// restoreProgressToken puts the caller's token back into a progress notification.
func restoreProgressToken(params, original json.RawMessage) json.RawMessage {
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return params
	}
	p["progressToken"] = original
	out, err := json.Marshal(p)
	if err != nil {
		return params
	}
	return out
}
