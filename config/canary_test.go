package config

import (
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// A canary is checked with the server: its URL like url, its percent in
// 0..100 with somewhere to send the calls, and a kind that fits the transport.
// Every error names its field.
func TestCanaryChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec bus.ServerSpec
		want string
	}{
		{"percent over 100", bus.ServerSpec{URL: "https://a.example.com/mcp", CanaryURL: "https://b.example.com/mcp", CanaryPercent: 101},
			"mcp_servers.a.canary_percent: must be a whole number from 0 to 100"},
		{"percent without canary", bus.ServerSpec{URL: "https://a.example.com/mcp", CanaryPercent: 10},
			"mcp_servers.a.canary_percent: needs a canary: canary_url (canary_command for a stdio server)"},
		{"canary url not http", bus.ServerSpec{URL: "https://a.example.com/mcp", CanaryURL: "ftp://b.example.com/mcp", CanaryPercent: 10},
			"mcp_servers.a.canary_url: must be an http(s) URL"},
		{"canary url without host", bus.ServerSpec{URL: "https://a.example.com/mcp", CanaryURL: "https:///mcp"},
			"mcp_servers.a.canary_url: must include a host"},
		{"stdio canary url", bus.ServerSpec{Transport: "stdio", Command: "srv", CanaryURL: "https://b.example.com/mcp"},
			"mcp_servers.a.canary_url: a stdio server's canary is canary_command"},
	} {
		tc.spec.Name = "a"
		_, err := Provision(tc.spec, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// The canary upstream is the server with the canary's URL (or command):
// credentials and headers are the stable spec's.
func TestCanaryUpstreamKeepsCredentials(t *testing.T) {
	up, err := Provision(bus.ServerSpec{Name: "a", URL: "https://a.example.com/mcp", AuthType: "bearer_token", AuthValue: "t",
		CanaryURL: "https://b.example.com/mcp", CanaryPercent: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := up.Canary()
	if c == nil || c.URL.String() != "https://b.example.com/mcp" || c.Header.Get("Authorization") != "Bearer t" || c.HasCanary() {
		t.Fatalf("canary upstream: %v", c)
	}
	if up.URL.String() != "https://a.example.com/mcp" || up.CanaryPercent != 30 {
		t.Errorf("stable changed: %v", up)
	}
	st, err := Provision(bus.ServerSpec{Name: "s", Transport: "stdio", Command: "srv", Args: []string{"v1"},
		CanaryCommand: "srv", CanaryArgs: []string{"v2"}, CanaryPercent: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Canary(); c == nil || c.Command != "srv" || len(c.Args) != 1 || c.Args[0] != "v2" {
		t.Errorf("stdio canary: %#v", c)
	}
}
