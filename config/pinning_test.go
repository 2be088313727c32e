package config

import (
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// tool_pinning is off, withhold or flag; off and unset leave the upstream
// without pinning, anything else is refused naming the field.
func TestToolPinningValues(t *testing.T) {
	for value, want := range map[string]string{"": "", "off": "", "withhold": "withhold", "flag": "flag"} {
		up, err := Provision(bus.ServerSpec{Name: "a", URL: "https://a.example.com/mcp", ToolPinning: value}, nil)
		if err != nil {
			t.Errorf("tool_pinning %q: %v", value, err)
		} else if up.ToolPinning != want {
			t.Errorf("tool_pinning %q: upstream has %q, want %q", value, up.ToolPinning, want)
		}
	}
	_, err := Provision(bus.ServerSpec{Name: "a", URL: "https://a.example.com/mcp", ToolPinning: "on"}, nil)
	if err == nil || !strings.Contains(err.Error(), "mcp_servers.a.tool_pinning: must be off, withhold") {
		t.Fatalf("tool_pinning on: %v", err)
	}
	cfg, err := Parse("config.yaml", []byte("mcp_servers:\n  a: {url: https://a.example.com/mcp, tool_pinning: flag}\n"), mapEnv(nil))
	if err != nil || cfg.Servers[0].ToolPinning != "flag" {
		t.Fatalf("a config file's tool_pinning: %v %+v", err, cfg)
	}
}

// general_settings.mcp_tool_pinning is the pinning of every server that sets
// none; a server's own value, off included, wins.
func TestGeneralToolPinning(t *testing.T) {
	cfg, err := Parse("config.yaml", []byte(`
general_settings: {mcp_tool_pinning: withhold}
mcp_servers:
  a: {url: https://a.example.com/mcp}
  b: {url: https://b.example.com/mcp, tool_pinning: "off"}
  c: {url: https://c.example.com/mcp, tool_pinning: flag}
`), mapEnv(nil))
	if err != nil || cfg.ToolPinning != "withhold" {
		t.Fatalf("mcp_tool_pinning: %v %+v", err, cfg)
	}
	for i, want := range []string{"withhold", "off", "flag"} {
		if got := bus.EffectivePinning(cfg.Servers[i].ToolPinning, cfg.ToolPinning); got != want {
			t.Errorf("server %s: pinning %q, want %q", cfg.Servers[i].Name, got, want)
		}
	}
	if got := bus.EffectivePinning("", ""); got != "off" {
		t.Errorf("neither set: %q, want off", got)
	}
	_, err = Parse("config.yaml", []byte("general_settings: {mcp_tool_pinning: always}\n"), mapEnv(nil))
	if err == nil || !strings.Contains(err.Error(), "general_settings.mcp_tool_pinning: must be off, withhold") {
		t.Fatalf("mcp_tool_pinning always: %v", err)
	}
	_, err = Parse("config.yaml", []byte("general_settings: {mcp_tool_pining: withhold}\n"), mapEnv(nil))
	if err == nil || !strings.Contains(err.Error(), "mcp_tool_pinning") {
		t.Fatalf("a misspelled mcp_tool_pinning: %v", err)
	}
}
