package auth

import (
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// A key's metadata.mcp_tool_search decides; a key that does not set it has
// its team's.
func TestToolSearchFromKeyOrTeam(t *testing.T) {
	on := map[string]any{bus.MetaToolSearch: true}
	off := map[string]any{bus.MetaToolSearch: false}
	for _, c := range []struct {
		name      string
		key, team map[string]any
		noTeam    bool
		want      bool
	}{
		{"neither", nil, nil, false, false},
		{"key on", on, nil, true, true},
		{"team on", nil, on, false, true},
		{"key off wins over team on", off, on, false, false},
		{"key on wins over team off", on, off, false, true},
	} {
		var team *bus.TeamRecord
		if !c.noTeam {
			team = &bus.TeamRecord{Metadata: c.team}
		}
		if got := toolSearch(bus.KeyRecord{Metadata: c.key}, team); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
