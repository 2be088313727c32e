package config

import (
	"strings"
	"testing"
	"time"
)

// A server a connector serves is declared in the gateway's config by its
// policy alone; the gateway refuses to hold its URL, command or
// credentials, which stay on the connector's machine.
func TestConnectorServers(t *testing.T) {
	f, err := Parse("config.yaml", []byte(`mcp_servers:
  laptop_files:
    transport: connector
    description: files on Ana's laptop
    available_on_public_internet: true
    allowed_tools: [read_file]
    extra_headers: [x-user]
    timeout: 20s
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	up, err := Provision(f.Servers[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if up.Transport != TransportConnector || up.URL != nil || !up.Public || up.Timeout != 20*time.Second ||
		len(up.AllowedTools) != 1 || len(up.Header) != 0 || up.ExtraHeaders[0] != "X-User" {
		t.Fatalf("connector server provisioned as %#v", up)
	}

	_, err = Parse("config.yaml", []byte(`mcp_servers:
  laptop_files:
    transport: connector
    url: http://10.0.0.5/mcp
    auth_type: bearer_token
    auth_value: os.environ/LAPTOP_TOKEN
`), mapEnv(map[string]string{"LAPTOP_TOKEN": "t0ken-value"}))
	if err == nil {
		t.Fatal("a connector server with a URL and a credential loaded")
	}
	for _, field := range []string{"url", "auth_type", "auth_value"} {
		want := "mcp_servers.laptop_files." + field + ": is the connector's to know"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nwant %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "t0ken-value") || strings.Contains(err.Error(), "10.0.0.5") {
		t.Errorf("error %q quotes a value", err)
	}
}
