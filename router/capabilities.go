package router

import "encoding/json"

// capability is the part of a server capability the router merges.
type capability struct {
	ListChanged bool `json:"listChanged,omitempty"`
	Subscribe   bool `json:"subscribe,omitempty"`
}

// mergeCapabilities is what an aggregation can route: tools, prompts,
// resources, completions and logging when any server has them, listChanged
// when any server sends it, resources.subscribe when any server takes it.
// With no server's capabilities at all, tools only (fallbackCapabilities).
func mergeCapabilities(all []json.RawMessage) json.RawMessage {
	if len(all) == 0 {
		return fallbackCapabilities
	}
	merged := map[string]*capability{}
	for _, raw := range all {
		var c map[string]json.RawMessage
		if json.Unmarshal(raw, &c) != nil {
			continue
		}
		for _, name := range []string{"tools", "prompts", "resources", "completions", "logging"} {
			v, ok := c[name]
			if !ok || string(v) == "null" {
				continue
			}
			var one capability
			_ = json.Unmarshal(v, &one)
			m := merged[name]
			if m == nil {
				m = &capability{}
				merged[name] = m
			}
			m.ListChanged = m.ListChanged || one.ListChanged
			m.Subscribe = m.Subscribe || one.Subscribe
		}
	}
	out, _ := json.Marshal(merged)
	return out
}
