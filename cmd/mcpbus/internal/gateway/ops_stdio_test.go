package gateway

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A stdio server's canary is a new command "version" the config file names:
// at 100% every session reaches it; without mcp_allow_stdio_servers_from_api
// the API may still ramp and promote it (it runs nothing the file did not
// name), and the promoted command keeps running.
func TestStdioCanaryThroughTheGateway(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  local:
    transport: stdio
    command: %q
    args: ["--demo-name=v1"]
    canary_command: %q
    canary_args: ["--demo-name=v2"]
    canary_percent: 100
    env: {MCPBUS_GATEWAY_TEST_DEMO_STDIO: "1"}
    timeout: 30s
`, opsMaster, exe, exe), nil)
	base := g.URL()
	// which reads the demo's readme, which names the variant that answered.
	which := func() error {
		cs, err := connectPlain(t, base+"/mcp/local", bearer(opsMaster))
		if err != nil {
			return err
		}
		defer cs.Close()
		res, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "demo://readme"})
		if err != nil {
			return err
		}
		return fmt.Errorf("%s", strings.Fields(res.Contents[0].Text)[0])
	}
	want := func(name string) {
		t.Helper()
		bustest.Eventually(t, 60*time.Second, "sessions reach "+name, func() error {
			if err := which(); err.Error() != name {
				return fmt.Errorf("answered by %v, want %s", err, name)
			}
			return nil
		})
	}
	want("v2")
	if status, _, body := rest(t, http.MethodPost, base+"/v1/mcp/server/local/canary", opsMaster, `{"percent": 0}`); status != http.StatusOK {
		t.Fatalf("ramp to 0: HTTP %d %s", status, body)
	}
	want("v1")
	if status, _, body := rest(t, http.MethodPost, base+"/v1/mcp/server/local/canary/promote", opsMaster, ""); status != http.StatusOK || !strings.Contains(body, `"args":["[redacted]"]`) {
		t.Fatalf("promote: HTTP %d %s", status, body)
	}
	want("v2")
	// A command the file does not name is refused.
	status, _, body := rest(t, http.MethodPost, base+"/v1/mcp/server/local/canary", opsMaster, `{"command": "/bin/sh", "args": ["-c", "id"], "percent": 100}`)
	wantREST(t, "an API-named stdio canary", status, body, http.StatusForbidden, "MCPBUS_FORBIDDEN", "mcp_allow_stdio_servers_from_api")
}
