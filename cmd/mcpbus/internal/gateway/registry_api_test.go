package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// rest is one REST call with raw bytes, recorded for the secret scan.
func rest(t *testing.T, method, url, key, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	recordBody(b)
	return resp.StatusCode, resp.Header, string(b)
}

type restErr struct {
	Error struct{ Message, Type, Code string }
}

func wantREST(t *testing.T, what string, status int, body string, wantStatus int, wantCode, wantMsg string) {
	t.Helper()
	var e restErr
	json.Unmarshal([]byte(body), &e)
	if status != wantStatus || e.Error.Code != wantCode || !strings.Contains(e.Error.Message, wantMsg) {
		t.Fatalf("%s: HTTP %d %s; want %d %s containing %q", what, status, body, wantStatus, wantCode, wantMsg)
	}
}

// The registry API end to end: CRUD through the ingress and the registry
// service on the real KV store, every answer redacted, errors naming fields.
func TestRegistryAPI(t *testing.T) {
	demo, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  demo: {url: %q}
`, master, demo), map[string]string{"API_TOKEN": "env-token-4f1c"})
	base := g.URL() + "/v1/mcp/server"
	secrets := []string{"pw-secret-77aa", "q-secret-77aa", "auth-secret-77aa", "hdr-secret-77aa", "cs-secret-77aa"}
	registerSecret(secrets...)

	created := fmt.Sprintf(`{"server_name":"api1","url":"http://user:%s@127.0.0.1:1/mcp?token=%s","auth_type":"bearer_token",
		"auth_value":%q,"static_headers":{"X-Api":%q},"description":"made by the API","timeout":12,"mcp_info":{"ignored":true}}`,
		secrets[0], secrets[1], secrets[2], secrets[3])
	status, _, body := rest(t, "POST", base, master, created)
	var rec map[string]any
	json.Unmarshal([]byte(body), &rec)
	if status != http.StatusOK || rec["server_id"] != "api1" || rec["source"] != "api" || rec["timeout"] != "12s" ||
		rec["auth_value"] != "[redacted]" || rec["revision"] == nil {
		t.Fatalf("create: HTTP %d %s", status, body)
	}
	rev := int(rec["revision"].(float64))

	// Reads: the list has the config server and the new one, with revisions.
	status, _, body = rest(t, "GET", base, master, "")
	var list []map[string]any
	json.Unmarshal([]byte(body), &list)
	if status != http.StatusOK || len(list) != 2 || list[0]["server_id"] != "api1" || list[1]["server_id"] != "demo" ||
		list[1]["source"] != "config" || list[1]["revision"] == nil {
		t.Fatalf("list: HTTP %d %s", status, body)
	}
	status, _, body = rest(t, "GET", base+"/api1", master, "")
	json.Unmarshal([]byte(body), &rec)
	if status != http.StatusOK || int(rec["revision"].(float64)) != rev || rec["url"] != "http://127.0.0.1:1/mcp?token=[redacted]" {
		t.Fatalf("get: HTTP %d %s", status, body)
	}

	// Update with the revision read: GET, edit, PUT back (redacted values keep the stored ones).
	rec["description"] = "edited"
	put, _ := json.Marshal(rec)
	status, _, body = rest(t, "PUT", base, master, string(put))
	var updated map[string]any
	json.Unmarshal([]byte(body), &updated)
	if status != http.StatusOK || updated["description"] != "edited" || int(updated["revision"].(float64)) <= rev {
		t.Fatalf("update: HTTP %d %s", status, body)
	}
	newRev := int(updated["revision"].(float64))
	// The stale revision is refused, naming both.
	status, _, body = rest(t, "PUT", base, master, fmt.Sprintf(`{"server_id":"api1","description":"lost","revision":%d}`, rev))
	wantREST(t, "stale update", status, body, http.StatusConflict, "MCPBUS_CONFLICT",
		fmt.Sprintf("server 'api1' was changed by someone else (revision %d, you sent %d)", newRev, rev))
	// Without a revision: applies to the latest record, only the fields sent.
	status, _, body = rest(t, "PUT", base, master, `{"server_id":"api1","allowed_tools":["echo"]}`)
	json.Unmarshal([]byte(body), &updated)
	if status != http.StatusOK || updated["description"] != "edited" || fmt.Sprint(updated["allowed_tools"]) != "[echo]" {
		t.Fatalf("update without revision: HTTP %d %s", status, body)
	}
	// The stored credentials survived the redacted round trip, sealed at
	// rest: the record on the bus holds none of them.
	s, ok := storedServer(t, g, "api1")
	raw, _ := json.Marshal(s)
	for _, secret := range secrets {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("the stored record holds a credential in plain text (%.4s…)", secret)
		}
	}
	s, err := g.secrets.Open(s)
	if !ok || err != nil || s.AuthValue != secrets[2] || s.StaticHeaders["X-Api"] != secrets[3] || !strings.Contains(s.URL, secrets[0]) {
		t.Fatalf("stored record after updates: %v %v %v", ok, s.Name, err)
	}

	// Errors.
	for _, tc := range []struct {
		what, method, path, body string
		status                   int
		code, msg                string
	}{
		{"bad url", "POST", "", `{"server_name":"bad1","url":"ftp://127.0.0.1/x"}`, 400, "MCPBUS_BAD_REQUEST", "mcp_servers.bad1.url: must be an http(s) URL"},
		{"wrong type", "POST", "", `{"server_name":"bad1","url":"http://127.0.0.1:1/mcp","allowed_tools":"echo"}`, 400, "MCPBUS_BAD_REQUEST",
			"mcp_servers.bad1.allowed_tools: expected a list of strings, got a JSON string"},
		{"missing env", "POST", "", `{"server_name":"bad1","url":"http://127.0.0.1:1/mcp","auth_type":"api_key","auth_value":"os.environ/NOT_THERE"}`,
			400, "MCPBUS_BAD_REQUEST", "mcp_servers.bad1.auth_value: environment variable NOT_THERE is not set"},
		{"bad name", "POST", "", `{"server_name":"no/slash","url":"http://127.0.0.1:1/mcp"}`, 400, "MCPBUS_BAD_REQUEST",
			`mcp_servers["no/slash"]: server name must be`},
		{"duplicate", "POST", "", `{"server_name":"demo","url":"http://127.0.0.1:1/mcp"}`, 409, "MCPBUS_CONFLICT", "MCP server 'demo' already exists"},
		{"stdio", "POST", "", `{"server_name":"local","command":"sh","args":["-c","id"]}`, 403, "MCPBUS_FORBIDDEN", "mcp_allow_stdio_servers_from_api"},
		{"unknown get", "GET", "/nope", "", 404, "MCPBUS_NOT_FOUND", "MCP server 'nope' does not exist"},
		{"unknown delete", "DELETE", "/nope", "", 404, "MCPBUS_NOT_FOUND", "MCP server 'nope' does not exist"},
		{"unknown update", "PUT", "", `{"server_id":"nope","description":"x"}`, 404, "MCPBUS_NOT_FOUND", "MCP server 'nope' does not exist"},
	} {
		status, _, body := rest(t, tc.method, base+tc.path, master, tc.body)
		wantREST(t, tc.what, status, body, tc.status, tc.code, tc.msg)
	}
	// An os.environ/ reference the gateway has is accepted and stays a reference.
	status, _, body = rest(t, "POST", base, master, `{"server_name":"envy","url":"http://127.0.0.1:1/mcp","auth_type":"api_key","auth_value":"os.environ/API_TOKEN"}`)
	if s, _ := storedServer(t, g, "envy"); status != http.StatusOK || s.AuthValue != "os.environ/API_TOKEN" {
		t.Fatalf("create with an env reference: HTTP %d %s (stored %q)", status, body, s.AuthValue)
	}

	// Only the master key manages servers.
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "reader"})
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "", ""}, {"GET", "/api1", ""}, {"POST", "", `{"server_name":"x","url":"http://127.0.0.1:1/mcp"}`},
		{"PUT", "", `{"server_id":"api1","description":"x"}`}, {"DELETE", "/api1", ""},
	} {
		status, _, body := rest(t, tc.method, base+tc.path, key, tc.body)
		wantREST(t, "non-admin "+tc.method, status, body, 403, "MCPBUS_FORBIDDEN", "only the master key may manage MCP servers")
	}

	// Config servers may be edited (the next start re-applies the file) and deleted.
	status, _, body = rest(t, "PUT", base, master, `{"server_id":"demo","description":"from the API"}`)
	json.Unmarshal([]byte(body), &updated)
	if status != http.StatusOK || updated["source"] != "config" {
		t.Fatalf("update a config server: HTTP %d %s", status, body)
	}

	status, _, body = rest(t, "DELETE", base+"/api1", master, "")
	if status != http.StatusOK || !strings.Contains(body, `"deleted":true`) {
		t.Fatalf("delete: HTTP %d %s", status, body)
	}
	status, _, body = rest(t, "GET", base+"/api1", master, "")
	wantREST(t, "get after delete", status, body, 404, "MCPBUS_NOT_FOUND", "does not exist")

	for _, b := range scanBodiesFor(secrets) {
		t.Errorf("a response shows a credential: %s", b)
	}
	assertNoSecrets(t, g, secrets...)
}

// storedServer reads a record from the servers bucket, as written.
func storedServer(t *testing.T, g *testGateway, name string) (bus.ServerSpec, bool) {
	t.Helper()
	js, err := jetstreamFor(testConn(t, g.Gateway))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.BucketServers)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, name)
	if err != nil {
		return bus.ServerSpec{}, false
	}
	var s bus.ServerSpec
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		t.Fatal(err)
	}
	return s, true
}

// scanBodiesFor returns the recorded bodies that contain one of secrets.
func scanBodiesFor(secrets []string) []string {
	scan.mu.Lock()
	defer scan.mu.Unlock()
	var out []string
	for _, b := range scan.bodies {
		for _, s := range secrets {
			if strings.Contains(b, s) {
				out = append(out, b)
			}
		}
	}
	return out
}

func TestRegistryAPIStdioAllowed(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_allow_stdio_servers_from_api: true}
`, master), nil)
	status, _, body := rest(t, "POST", g.URL()+"/v1/mcp/server", master, `{"server_name":"local","command":"true","env":{"T":"stdio-env-secret"}}`)
	if status != http.StatusOK || !strings.Contains(body, `"transport":"stdio"`) || strings.Contains(body, "stdio-env-secret") {
		t.Fatalf("stdio create with the switch on: HTTP %d %s", status, body)
	}
}

type toolList struct {
	Tools []struct {
		Name     string `json:"name"`
		ServerID string `json:"server_id"`
	} `json:"tools"`
	Errors []struct{ ServerID, Code string } `json:"errors"`
}

func (l toolList) names() string {
	var out []string
	for _, t := range l.Tools {
		out = append(out, t.ServerID+"/"+t.Name)
	}
	return strings.Join(out, ",")
}

// Health, tool listing and REST calls go through the router and workers:
// visibility, key permissions and tool permissions all apply.
func TestRESTToolAccess(t *testing.T) {
	demo, _ := upstream(t, "demo")
	pub, _ := upstream(t, "pub")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  demo: {url: %q, disallowed_tools: [slow]}
  pub: {url: %q, available_on_public_internet: true}
`, master, demo, pub), nil)
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "echoer", "mcp_servers": []string{"demo"},
		"mcp_tool_permissions": map[string][]string{"demo": {"echo"}}})

	// Health: every server for the master key, the permitted one for the key.
	status, _, body := rest(t, "GET", g.URL()+"/v1/mcp/server/health", master, "")
	var health []map[string]any
	json.Unmarshal([]byte(body), &health)
	if status != http.StatusOK || len(health) != 2 || health[0]["server_id"] != "demo" || health[0]["status"] != "healthy" ||
		health[1]["status"] != "healthy" || health[0]["latency_ms"] == nil {
		t.Fatalf("health: HTTP %d %s", status, body)
	}
	status, _, body = rest(t, "GET", g.URL()+"/v1/mcp/server/health", key, "")
	json.Unmarshal([]byte(body), &health)
	if len(health) != 1 || health[0]["server_id"] != "demo" {
		t.Fatalf("health for the key: HTTP %d %s", status, body)
	}

	// Listing: the master key sees every tool but those the config removes.
	for _, path := range []string{"/v1/mcp/tools", "/mcp-rest/tools/list"} {
		status, _, body = rest(t, "GET", g.URL()+path, master, "")
		var l toolList
		json.Unmarshal([]byte(body), &l)
		if status != http.StatusOK || l.names() != "demo/add,demo/ask,demo/echo,pub/add,pub/ask,pub/echo,pub/slow" {
			t.Fatalf("%s as master: HTTP %d %s", path, status, body)
		}
		// The key: its one permitted tool on its one server.
		status, _, body = rest(t, "GET", g.URL()+path, key, "")
		l = toolList{}
		json.Unmarshal([]byte(body), &l)
		if status != http.StatusOK || l.names() != "demo/echo" || len(l.Errors) != 0 {
			t.Fatalf("%s for the key: HTTP %d %s", path, status, body)
		}
	}
	status, _, body = rest(t, "GET", g.URL()+"/mcp-rest/tools/list?server_id=pub", key, "")
	wantREST(t, "list a server the key may not use", status, body, 403, "MCPBUS_FORBIDDEN", "key 'echoer' may not use MCP server 'pub'")
	status, _, body = rest(t, "GET", g.URL()+"/mcp-rest/tools/list?server_id=nope", master, "")
	wantREST(t, "list an unknown server", status, body, 404, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "nope"`)

	// OpenAI format.
	status, _, body = rest(t, "GET", g.URL()+"/mcp-rest/tools/list?server_id=demo&format=openai", key, "")
	var fns []struct {
		Type     string
		Function struct {
			Name       string
			Parameters map[string]any
		}
	}
	json.Unmarshal([]byte(body), &fns)
	if status != http.StatusOK || len(fns) != 1 || fns[0].Type != "function" || fns[0].Function.Name != "echo" ||
		fns[0].Function.Parameters["type"] != "object" || !strings.Contains(body, `"text"`) {
		t.Fatalf("openai format: HTTP %d %s", status, body)
	}

	// Calls.
	status, _, body = rest(t, "POST", g.URL()+"/mcp-rest/tools/call", key, `{"server_id":"demo","name":"echo","arguments":{"text":"hello rest"}}`)
	if status != http.StatusOK || !strings.Contains(body, "hello rest") {
		t.Fatalf("call echo: HTTP %d %s", status, body)
	}
	status, _, body = rest(t, "POST", g.URL()+"/mcp-rest/tools/call", key, `{"server_id":"demo","name":"add","arguments":{"a":1,"b":2}}`)
	wantREST(t, "call a tool the key may not call", status, body, 403, "MCPBUS_FORBIDDEN", "key 'echoer' may not call tool 'add' on server 'demo'")
	status, _, body = rest(t, "POST", g.URL()+"/mcp-rest/tools/call", master, `{"server_id":"demo","name":"slow","arguments":{}}`)
	wantREST(t, "call a tool the config removes", status, body, 403, "MCPBUS_TOOL_NOT_ALLOWED", `tool "slow" is not allowed`)
	status, _, body = rest(t, "POST", g.URL()+"/mcp-rest/tools/call", master, `{"server_id":"demo","name":"add","arguments":{"a":1,"b":2}}`)
	if status != http.StatusOK || !strings.Contains(body, `"sum":3`) {
		t.Fatalf("call add as master: HTTP %d %s", status, body)
	}
	status, _, body = rest(t, "POST", g.URL()+"/mcp-rest/tools/call", master, `{"name":"add"}`)
	wantREST(t, "call without server_id", status, body, 400, "MCPBUS_INVALID_PARAMS", "without server_id, name is a tool's aggregated name")
	status, _, body = rest(t, "POST", g.URL()+"/mcp-rest/tools/call", "", `{"server_id":"demo","name":"echo"}`)
	wantREST(t, "call without a key", status, body, 401, "MCPBUS_UNAUTHORIZED", "no API key")
	assertNoSecrets(t, g, key)
}

type registryDocument struct {
	Servers []struct {
		Server struct {
			Name, Title, Description, Version string
			Remotes                           []struct{ Type, URL string }
		}
	}
}

// registry.json: off by default; when on, served without a key and filtered
// by the caller's IP class, like every other surface.
func TestRegistryJSONDiscovery(t *testing.T) {
	demo, _ := upstream(t, "demo")
	pub, _ := upstream(t, "pub")
	servers := fmt.Sprintf(`
mcp_servers:
  demo: {url: %q, description: "internal demo"}
  pub: {url: %q, alias: Public, available_on_public_internet: true}
`, demo, pub)
	off := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\n", master)+servers, nil)
	status, _, body := rest(t, "GET", off.URL()+"/v1/mcp/registry.json", "", "")
	wantREST(t, "registry.json while off", status, body, 404, "MCPBUS_NOT_FOUND", "enable_mcp_registry")

	on := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s, enable_mcp_registry: true}\n", master)+servers, nil)
	status, _, body = rest(t, "GET", on.URL()+"/v1/mcp/registry.json", "", "")
	var doc registryDocument
	json.Unmarshal([]byte(body), &doc)
	if status != http.StatusOK || len(doc.Servers) != 3 {
		t.Fatalf("registry.json: HTTP %d %s", status, body)
	}
	want := []struct{ name, title, url string }{
		{"mcpbus", "mcpbus", on.URL() + "/mcp"},
		{"demo", "demo", on.URL() + "/mcp/demo"},
		{"pub", "Public", on.URL() + "/mcp/pub"},
	}
	for i, w := range want {
		s := doc.Servers[i].Server
		if s.Name != w.name || s.Title != w.title || s.Version == "" || s.Description == "" || len(s.Remotes) != 1 ||
			s.Remotes[0].Type != "streamable-http" || s.Remotes[0].URL != w.url {
			t.Fatalf("registry.json entry %d = %+v, want %+v (%s)", i, s, w, body)
		}
	}
	if strings.Contains(body, demo) || strings.Contains(body, pub) {
		t.Fatalf("registry.json shows upstream URLs: %s", body)
	}

	// 127.0.0.1 outside mcp_internal_ip_ranges: an external caller.
	ext := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s, enable_mcp_registry: true, mcp_internal_ip_ranges: [\"10.0.0.0/8\"]}\n", master)+servers, nil)
	status, _, body = rest(t, "GET", ext.URL()+"/v1/mcp/registry.json", "", "")
	doc = registryDocument{}
	json.Unmarshal([]byte(body), &doc)
	if status != http.StatusOK || len(doc.Servers) != 2 || doc.Servers[0].Server.Name != "mcpbus" || doc.Servers[1].Server.Name != "pub" {
		t.Fatalf("registry.json for an external caller: HTTP %d %s", status, body)
	}
	// The same filter on the other surfaces, master key included.
	status, _, body = rest(t, "GET", ext.URL()+"/v1/mcp/tools", master, "")
	var l toolList
	json.Unmarshal([]byte(body), &l)
	if status != http.StatusOK || l.names() != "pub/add,pub/ask,pub/echo,pub/slow" {
		t.Fatalf("/v1/mcp/tools for an external caller: HTTP %d %s", status, body)
	}
	status, _, body = rest(t, "GET", ext.URL()+"/mcp-rest/tools/list?server_id=demo", master, "")
	wantREST(t, "a hidden server by name", status, body, 404, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "demo"`)
	status, _, body = rest(t, "GET", ext.URL()+"/v1/mcp/server/health", master, "")
	if status != http.StatusOK || strings.Contains(body, `"demo"`) || !strings.Contains(body, `"pub"`) {
		t.Fatalf("health for an external caller: HTTP %d %s", status, body)
	}
}
