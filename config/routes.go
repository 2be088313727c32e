package config

import (
	"slices"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// readRouteFamilies reads a list of route families (bus.RouteFamily): a
// YAML list, or one comma-separated string; "all" is every family. An
// empty list is kept as an empty, non-nil list (no family), apart from an
// absent setting (nil: the default).
func readRouteFamilies(p *problems, path string, n *yaml.Node, env LookupEnv) []bus.RouteFamily {
	if isNull(n) {
		return nil
	}
	out := []bus.RouteFamily{}
	for _, it := range readStringList(p, path, n, env) {
		if it.s == "" {
			continue
		}
		fs, err := bus.ParseRouteFamilies([]string{it.s})
		if err != nil {
			p.errorf(it.path, "is not a route family: use "+bus.JoinRouteFamilies(bus.RouteFamilies)+" or all")
			continue
		}
		for _, f := range fs {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}
