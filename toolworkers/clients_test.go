package toolworkers

import (
	"testing"

	"github.com/mcpbus/mcpbus/config"
)

func TestPerRequestHeadersPrecedenceAndBlocklist(t *testing.T) {
	w := &Worker{up: &config.Upstream{Name: "gh"}, extra: map[string]bool{"X-Tenant": true, "Mcp-Session-Id": true, "Host": true}}
	for i := 0; i < 50; i++ { // map order must not matter
		got := w.perRequestHeaders(map[string]string{
			"X-Tenant":          "from-extra",
			"X-Mcp-Gh-X-Tenant": "from-x-mcp",
			"Mcp-Session-Id":    "hijack",
			"Host":              "evil.example",
			"X-Mcp-Gh-Host":     "evil.example",
		})
		if got.Get("X-Tenant") != "from-x-mcp" {
			t.Fatalf("X-Tenant = %q: the explicit x-mcp-gh-* header must win over extra_headers", got.Get("X-Tenant"))
		}
		if got.Get("Mcp-Session-Id") != "" || got.Get("Host") != "" || len(got) != 1 {
			t.Fatalf("transport/session headers were forwarded: %v", got)
		}
	}
}
