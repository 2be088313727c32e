package toolworkers

import (
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
)

// toolFilter applies a server's allowed_tools and disallowed_tools: when
// allowed_tools is set only those tools exist; disallowed_tools are removed.
type toolFilter struct {
	allowed    map[string]bool
	disallowed map[string]bool
}

func newToolFilter(allowed, disallowed []string) toolFilter {
	f := toolFilter{}
	if len(allowed) > 0 {
		f.allowed = map[string]bool{}
		for _, t := range allowed {
			f.allowed[t] = true
		}
	}
	if len(disallowed) > 0 {
		f.disallowed = map[string]bool{}
		for _, t := range disallowed {
			f.disallowed[t] = true
		}
	}
	return f
}

func (f toolFilter) active() bool { return f.allowed != nil || f.disallowed != nil }

func (f toolFilter) allows(name string) bool {
	if f.allowed != nil && !f.allowed[name] {
		return false
	}
	return !f.disallowed[name]
}

// list removes tools the filter does not allow from a tools/list result.
func (f toolFilter) list(result json.RawMessage) json.RawMessage {
	return filterTools(result, f.allows)
}

// filterTools removes the tools allow refuses from a tools/list result, keeping
// every other field of the result and of each kept tool as the upstream sent it.
func filterTools(result json.RawMessage, allow func(name string) bool) json.RawMessage {
	var r map[string]json.RawMessage
	if json.Unmarshal(result, &r) != nil {
		return result
	}
	var tools []json.RawMessage
	if json.Unmarshal(r["tools"], &tools) != nil {
		return result
	}
	kept := tools[:0]
	for _, t := range tools {
		var named struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(t, &named) == nil && allow(named.Name) {
			kept = append(kept, t)
		}
	}
	r["tools"], _ = json.Marshal(kept)
	out, err := json.Marshal(r)
	if err != nil {
		return result
	}
	return out
}

// toolName reads params.name of a tools/call by its exact key, as the
// upstream reads the same bytes. ok is false when there is no such string, or
// when params holds the key twice or in another case too (which
// bus.ParseMessage refuses, so only a message that did not come through it).
func toolName(params json.RawMessage) (name string, ok bool) {
	name, ok, ambiguous := bus.StringField(params, "name")
	return name, ok && !ambiguous && name != ""
}
