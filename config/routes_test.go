package config

import (
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func TestExternalRoutes(t *testing.T) {
	env := func(k string) (string, bool) { return "mcp,llm", k == "ROUTES" }
	for _, c := range []struct{ yaml, want string }{
		{"general_settings: {}", "<nil>"},
		{"general_settings: {external_routes: [mcp, admin]}", "mcp,admin"},
		{"general_settings: {external_routes: \"mcp, metrics\"}", "mcp,metrics"},
		{"general_settings: {external_routes: os.environ/ROUTES}", "mcp,llm"},
		{"general_settings: {external_routes: [all]}", "mcp,llm,agents,admin,ui,metrics"},
		{"general_settings: {external_routes: []}", "none"},
	} {
		f, err := Parse("config.yaml", []byte(c.yaml), env)
		if err != nil {
			t.Fatalf("%s: %v", c.yaml, err)
		}
		got := "<nil>"
		if f.ExternalRoutes != nil {
			got = bus.JoinRouteFamilies(f.ExternalRoutes)
		}
		if got != c.want {
			t.Errorf("%s: %s, want %s", c.yaml, got, c.want)
		}
	}
	_, err := Parse("config.yaml", []byte("general_settings: {external_routes: [mcp, chat]}"), env)
	if err == nil || !strings.Contains(err.Error(), "general_settings.external_routes[1]: is not a route family: use mcp,llm,agents,admin,ui,metrics or all") {
		t.Fatalf("a misspelt family: %v", err)
	}
}

func TestBusUserRoutes(t *testing.T) {
	env := func(k string) (string, bool) { return "bus-password-0123456789", k == "PW" }
	f, err := Parse("config.yaml", []byte(`general_settings:
  mcp_bus_users:
    - {user: edge, password: os.environ/PW, roles: [ingress], routes: [mcp]}
    - {user: inside, password: os.environ/PW, roles: [ingress]}
`), env)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.BusUsers[0].Routes; bus.JoinRouteFamilies(got) != "mcp" {
		t.Errorf("edge routes: %v", got)
	}
	if f.BusUsers[1].Routes != nil {
		t.Errorf("a user without routes: %v, want nil (every family)", f.BusUsers[1].Routes)
	}
	_, err = Parse("config.yaml", []byte(`general_settings:
  mcp_bus_users:
    - {user: w, password: os.environ/PW, roles: [workers], routes: [mcp]}
`), env)
	if err == nil || !strings.Contains(err.Error(), "general_settings.mcp_bus_users[0]: user \"w\": routes applies to the ingress role only") {
		t.Fatalf("routes on a workers user: %v", err)
	}
}
