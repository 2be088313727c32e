package config

import (
	"slices"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// pinningValues is the error of a tool_pinning or mcp_tool_pinning not
// among bus.PinningModes.
const pinningValues = "must be off, withhold (a changed tool is left out until an admin approves it) or flag (listed, marked as changed); docs/PINNING.md"

// readToolPinning reads general_settings.mcp_tool_pinning: the tool_pinning
// (docs/PINNING.md) of every server, from the file or the API, that does
// not set its own. off is kept as written, so the pin API reports it; ""
// (unset) is off.
func readToolPinning(p *problems, path string, n *yaml.Node, env LookupEnv) string {
	if isNull(n) {
		return ""
	}
	s, ok := p.str(path, n)
	if !ok {
		return ""
	}
	s, ferr := resolve(path, s, env)
	if ferr != nil {
		p.add(*ferr)
		return ""
	}
	s = strings.TrimSpace(s)
	if !slices.Contains(bus.PinningModes, s) {
		p.errorf(path, pinningValues)
		return ""
	}
	return s
}
