package config

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Per-tool cost, in either of two shapes:
//
//	mcp_info:                      # LiteLLM's
//	  mcp_server_cost_info:
//	    default_cost_per_query: 0.01
//	    tool_name_to_cost_per_query: {search: 0.05}
//
//	cost_per_query: {default: 0.01, tools: {search: 0.05}}   # flatter
//	cost_per_query: 0.01                                     # default only
//
// Both read into ServerSpec.CostPerQuery, the default under the key "".

// readMCPInfo reads LiteLLM's mcp_info block; only mcp_server_cost_info is
// used, its other keys are named in one warning.
func readMCPInfo(p *problems, path string, n *yaml.Node) map[string]float64 {
	if isNull(n) {
		return nil
	}
	if !isMapping(n) {
		p.errorf(path, "must be a mapping (mcp_server_cost_info, ...)")
		return nil
	}
	var cost map[string]float64
	var unknown []string
	for _, kv := range pairs(n) {
		at := path + "." + kv.key
		if kv.key != "mcp_server_cost_info" {
			unknown = append(unknown, kv.key)
			continue
		}
		if isNull(kv.val) {
			continue
		}
		if !isMapping(kv.val) {
			p.errorf(at, "must be a mapping with default_cost_per_query and tool_name_to_cost_per_query")
			continue
		}
		cost = map[string]float64{}
		for _, c := range pairs(kv.val) {
			switch c.key {
			case "default_cost_per_query":
				if v, ok := p.cost(at+"."+c.key, c.val); ok {
					cost[""] = v
				}
			case "tool_name_to_cost_per_query":
				p.toolCosts(at+"."+c.key, c.val, cost)
			default:
				unknown = append(unknown, kv.key+"."+c.key)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		p.warn(path, "ignoring keys mcpbus does not use yet: "+strings.Join(unknown, ", "))
	}
	return emptyNil(cost)
}

// readCostPerQuery reads the flatter cost_per_query: a number (the default)
// or {default: N, tools: {name: N}}.
func readCostPerQuery(p *problems, path string, n *yaml.Node) map[string]float64 {
	if isNull(n) {
		return nil
	}
	cost := map[string]float64{}
	if deref(n).Kind == yaml.ScalarNode {
		if v, ok := p.cost(path, n); ok {
			cost[""] = v
		}
		return emptyNil(cost)
	}
	if !isMapping(n) {
		p.errorf(path, "must be a number or a mapping with default and tools")
		return nil
	}
	for _, kv := range pairs(n) {
		switch kv.key {
		case "default":
			if v, ok := p.cost(path+".default", kv.val); ok {
				cost[""] = v
			}
		case "tools":
			p.toolCosts(path+".tools", kv.val, cost)
		default:
			p.errorf(path+"."+kv.key, "unknown key: cost_per_query takes default and tools")
		}
	}
	return emptyNil(cost)
}

// toolCosts reads a mapping of tool name to cost into into.
func (p *problems) toolCosts(path string, n *yaml.Node, into map[string]float64) {
	if isNull(n) {
		return
	}
	if !isMapping(n) {
		p.errorf(path, "must be a mapping of tool name to cost")
		return
	}
	for _, kv := range pairs(n) {
		if kv.key == "" {
			p.errorf(path, "a tool name must not be empty")
			continue
		}
		if v, ok := p.cost(path+"."+kv.key, kv.val); ok {
			into[kv.key] = v
		}
	}
}

// cost reads one cost: a finite number, 0 or more.
func (p *problems) cost(path string, n *yaml.Node) (float64, bool) {
	s, ok := p.str(path, n)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !validCost(v) {
		p.errorf(path, costRule)
		return 0, false
	}
	return v, true
}

const costRule = "must be a number, 0 or more"

func validCost(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

func emptyNil(m map[string]float64) map[string]float64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// checkCosts copies a server's cost_per_query, refusing negative or
// non-finite costs (a record that came over the API skipped the file's
// checks).
func checkCosts(base string, in map[string]float64) (map[string]float64, Errors) {
	if len(in) == 0 {
		return nil, nil
	}
	var errs Errors
	out := make(map[string]float64, len(in))
	for k, v := range in {
		if !validCost(v) {
			name := "default"
			if k != "" {
				name = "tools." + k
			}
			errs = append(errs, FieldError{base + ".cost_per_query." + name, costRule})
			continue
		}
		out[k] = v
	}
	return out, errs
}

// Cost is what one tools/call of tool costs: its own cost_per_query, else
// the server's default, else 0.
func (u *Upstream) Cost(tool string) float64 {
	if c, ok := u.CostPerQuery[tool]; ok {
		return c
	}
	return u.CostPerQuery[""]
}
