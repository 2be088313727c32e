package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func TestCostPerQueryShapes(t *testing.T) {
	f, err := Parse("config.yaml", []byte(`
mcp_servers:
  litellm:
    url: http://a.example/mcp
    mcp_info:
      server_name: litellm
      description: shown in LiteLLM's UI
      mcp_server_cost_info:
        default_cost_per_query: 0.01
        tool_name_to_cost_per_query: {search: 0.05, free: 0}
  flat:
    url: http://b.example/mcp
    cost_per_query: {default: 0.02, tools: {create_issue: 1.5}}
  number:
    url: http://c.example/mcp
    cost_per_query: 0.3
  none:
    url: http://d.example/mcp
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]float64{
		"litellm": {"": 0.01, "search": 0.05, "free": 0},
		"flat":    {"": 0.02, "create_issue": 1.5},
		"number":  {"": 0.3},
		"none":    nil,
	}
	for _, s := range f.Servers {
		if !reflect.DeepEqual(s.CostPerQuery, want[s.Name]) {
			t.Errorf("%s: cost %v, want %v", s.Name, s.CostPerQuery, want[s.Name])
		}
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "mcp_servers.litellm.mcp_info: ignoring keys mcpbus does not use yet: description, server_name") {
		t.Fatalf("warnings: %q", f.Warnings)
	}
	up, err := Provision(f.Servers[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	for tool, c := range map[string]float64{"search": 0.05, "free": 0, "other": 0.01} {
		if got := up.Cost(tool); got != c {
			t.Errorf("Cost(%q) = %v, want %v", tool, got, c)
		}
	}
	if got := (&Upstream{}).Cost("x"); got != 0 {
		t.Errorf("no cost configured: %v", got)
	}
}

func TestCostPerQueryErrors(t *testing.T) {
	_, err := Parse("config.yaml", []byte(`
mcp_servers:
  a:
    url: http://a.example/mcp
    cost_per_query: {default: -1, tools: {x: lots}, per: 3}
  b:
    url: http://b.example/mcp
    cost_per_query: 0.1
    mcp_info: {mcp_server_cost_info: {default_cost_per_query: 0.2}}
  c:
    url: http://c.example/mcp
    mcp_info: {mcp_server_cost_info: [1]}
`), nil)
	if err == nil {
		t.Fatal("bad costs loaded")
	}
	for _, want := range []string{
		"mcp_servers.a.cost_per_query.default: must be a number, 0 or more",
		"mcp_servers.a.cost_per_query.tools.x: must be a number, 0 or more",
		"mcp_servers.a.cost_per_query.per: unknown key",
		"mcp_servers.b.mcp_info: give the cost once",
		"mcp_servers.c.mcp_info.mcp_server_cost_info: must be a mapping",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	// A record from the API skipped the file's checks: Provision refuses it too.
	_, err = Provision(bus.ServerSpec{Name: "api", URL: "http://a.example/mcp", CostPerQuery: map[string]float64{"x": -2}}, nil)
	if err == nil || !strings.Contains(err.Error(), "mcp_servers.api.cost_per_query.tools.x: must be a number, 0 or more") {
		t.Fatalf("negative cost over the API: %v", err)
	}
}
