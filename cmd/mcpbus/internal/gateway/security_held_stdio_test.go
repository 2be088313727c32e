package gateway

// Held attack 5: the API cannot make the gateway run a command. Without
// general_settings.mcp_allow_stdio_servers_from_api, POST and PUT
// /v1/mcp/server cannot create a stdio server, turn a server into one, or
// change what a config-file stdio server runs (command, args, env), however
// the transport is spelled, even with the master key; nothing refused is
// stored and no process starts.
//
// Covered elsewhere (not repeated here):
//   - TestRegistryAPI (registry_api_test.go): POST with a command and no
//     transport is a 403 naming mcp_allow_stdio_servers_from_api.
//   - TestRegistryAPIStdioAllowed: with the switch on, the same POST works.
//   - TestStdioOnlyFromConfig (upstreams_test.go): a worker refuses an
//     API-made stdio record put on the bus directly.
//   - Unit level: registry TestWriteValidation (stdio by command and by
//     transport), TestUpdate (a config stdio server's command; http to
//     stdio), TestStdioAllowedFromAPI.
// Added here, end to end through the HTTP API: transport "stdio" with and
// without a command, odd spellings of the transport (upper case, padded, an
// os.environ/ reference that resolves to stdio), a command given to an HTTP
// server by POST and by PUT, PUT turning an HTTP server into stdio, PUT
// changing a config stdio server's command, args, env (added variable,
// changed value) or naming its command through os.environ/, and re-creating
// a deleted config stdio server through the API; each checked by the
// answer, the stored record, the MCP surface and a marker file the command
// would have written.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestSecurityHeldStdioNotFromTheAPI(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "the-api-ran-a-command")
	web, _ := heldHTTPUpstream(t, "web")
	g := startGatewayOpts(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  web: {url: %q}
  local:
    transport: stdio
    command: %q
    env: {MCPBUS_GATEWAY_TEST_DEMO_STDIO: "1"}
    timeout: 10s
`, master, web, exe), nil, func(o *Options) {
		// Variables the registry may resolve; not secrets (the suite's scan
		// would flag the command path the worker logs).
		vars := map[string]string{"HELD_T": "stdio", "HELD_CMD": exe, "HELD_SH": "/bin/sh"}
		o.Env = func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	})
	base := g.URL()
	localBefore, _ := storedServer(t, g, "local")
	webBefore, _ := storedServer(t, g, "web")
	touch := `["-c","touch ` + marker + `"]`
	asMaster := http.Header{"Authorization": {"Bearer " + master}, "Content-Type": {"application/json"}}

	for _, c := range []struct {
		what, method, body string
		name               string // the record the write names
	}{
		{"POST transport stdio with a command", "POST", `{"server_name":"s1","transport":"stdio","command":"/bin/sh","args":` + touch + `}`, "s1"},
		{"POST transport stdio without a command", "POST", `{"server_name":"s2","transport":"stdio"}`, "s2"},
		{"POST transport STDIO", "POST", `{"server_name":"s3","transport":"STDIO","command":"/bin/sh","args":` + touch + `}`, "s3"},
		{"POST transport Stdio padded", "POST", `{"server_name":"s4","transport":" Stdio ","command":"/bin/sh","args":` + touch + `}`, "s4"},
		{"POST transport from the environment", "POST", `{"server_name":"s5","transport":"os.environ/HELD_T","command":"/bin/sh","args":` + touch + `}`, "s5"},
		{"POST command from the environment", "POST", `{"server_name":"s6","transport":"stdio","command":"os.environ/HELD_SH","args":` + touch + `}`, "s6"},
		{"POST a copy of the config stdio server", "POST", fmt.Sprintf(`{"server_name":"s7","transport":"stdio","command":%q,"env":{"MCPBUS_GATEWAY_TEST_DEMO_STDIO":"1"}}`, exe), "s7"},
		{"POST an http server with a command", "POST", `{"server_name":"s8","url":"http://127.0.0.1:1/mcp","transport":"http","command":"/bin/sh","args":` + touch + `}`, "s8"},
		{"POST an sse server with a command", "POST", `{"server_name":"s9","url":"http://127.0.0.1:1/sse","transport":"sse","command":"/bin/sh","args":` + touch + `}`, "s9"},
		{"PUT http to stdio", "PUT", `{"server_id":"web","transport":"stdio","command":"/bin/sh","args":` + touch + `}`, "web"},
		{"PUT a command onto an http server", "PUT", `{"server_id":"web","command":"/bin/sh","args":` + touch + `}`, "web"},
		{"PUT the config stdio server's command", "PUT", `{"server_id":"local","command":"/bin/sh"}`, "local"},
		{"PUT the config stdio server's args", "PUT", `{"server_id":"local","args":` + touch + `}`, "local"},
		{"PUT an added env variable", "PUT", `{"server_id":"local","env":{"MCPBUS_GATEWAY_TEST_DEMO_STDIO":"1","LD_PRELOAD":"/tmp/held-evil.so"}}`, "local"},
		{"PUT a changed env value", "PUT", `{"server_id":"local","env":{"MCPBUS_GATEWAY_TEST_DEMO_STDIO":"0"}}`, "local"},
		{"PUT the same command through os.environ/", "PUT", `{"server_id":"local","command":"os.environ/HELD_CMD"}`, "local"},
		{"PUT the command and transport together", "PUT", `{"server_id":"local","transport":"stdio","command":"/bin/sh","args":` + touch + `}`, "local"},
	} {
		r := heldDo(t, c.method, base+"/v1/mcp/server", asMaster, c.body)
		s, stored := storedServer(t, g, c.name)
		switch {
		case r.status == http.StatusForbidden || r.status == http.StatusBadRequest:
			// Refused: nothing may have changed.
			code, msg := heldRESTError(r.body)
			if r.status == http.StatusForbidden && (code != "MCPBUS_FORBIDDEN" || !strings.Contains(msg, "mcp_allow_stdio_servers_from_api")) {
				t.Errorf("%s: HTTP 403 %s, want it to name mcp_allow_stdio_servers_from_api", c.what, r.body)
			}
			if c.method == "POST" && stored {
				t.Errorf("%s: refused, yet a record %q was stored: %+v", c.what, c.name, s)
			}
		case r.status == http.StatusOK:
			// Accepted only as what it is: no stdio server, no command kept.
			if !stored || s.Transport == "stdio" || s.Command != "" || len(s.Args) != 0 || len(s.Env) != 0 {
				t.Errorf("%s: HTTP 200 %s, and the stored record runs a command: %+v", c.what, r.body, s)
			}
		default:
			t.Errorf("%s: HTTP %d %s, want a refusal", c.what, r.status, r.body)
		}
	}
	if s, _ := storedServer(t, g, "local"); !reflect.DeepEqual(s, localBefore) {
		t.Errorf("the config stdio server changed:\nbefore %+v\nafter  %+v", localBefore, s)
	}
	if s, _ := storedServer(t, g, "web"); s.Transport != webBefore.Transport || s.Command != "" || s.URL != webBefore.URL {
		t.Errorf("the http server was turned into something else: %+v", s)
	}

	// Every server a write named answers on the MCP surface as before: the
	// made-up ones are unknown, local still runs the config file's command.
	for _, name := range []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7"} {
		if r := post(t, base+"/mcp/"+name, bearer(master), initBody); r.status != http.StatusNotFound {
			t.Errorf("/mcp/%s after a refused write: HTTP %d %s", name, r.status, r.body)
		}
	}
	cs, err := connect(t, base+"/mcp/local", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "still-the-file's"}}); err != nil || res.IsError {
		t.Fatalf("the config stdio server after the refused writes: %v %+v", err, res)
	}
	for _, server := range []string{"web", "s8", "s9"} {
		post(t, base+"/mcp/"+server, bearer(master), initBody)
	}

	// A config stdio server deleted through the API cannot come back
	// through it, not even with the very command the file had.
	if r := heldDo(t, "DELETE", base+"/v1/mcp/server/local", asMaster, ""); r.status != http.StatusOK {
		t.Fatalf("DELETE local: HTTP %d %s", r.status, r.body)
	}
	again, _ := json.Marshal(map[string]any{"server_name": "local", "transport": "stdio", "command": exe, "env": map[string]string{"MCPBUS_GATEWAY_TEST_DEMO_STDIO": "1"}})
	r := heldDo(t, "POST", base+"/v1/mcp/server", asMaster, string(again))
	if code, _ := heldRESTError(r.body); r.status != http.StatusForbidden || code != "MCPBUS_FORBIDDEN" {
		t.Errorf("re-creating the deleted config stdio server: HTTP %d %s, want 403", r.status, r.body)
	}
	if _, stored := storedServer(t, g, "local"); stored {
		t.Error("the deleted config stdio server was re-created through the API")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command written through the API ran on the gateway host")
	}
}
