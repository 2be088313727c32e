package ingress

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// The fake gateway behind the registry REST tests: a registry that records
// what it is asked, a router that applies visibility and permissions as the
// real one does, and a worker info endpoint for "github" only.
var fakeServers = []bus.ServerSpec{
	{Name: "github", Description: "GitHub", URL: "https://api.example.com/mcp", AuthValue: "secret-value"},
	{Name: "other", URL: "https://other.example.com/mcp"},
	{Name: "pub", Alias: "Public One", URL: "https://pub.example.com/mcp", Public: true},
}

type regCall struct {
	subject string
	data    string
	env     bus.Envelope
}

type fakeBackend struct {
	mu     sync.Mutex
	calls  []regCall
	routed []regCall
	answer func(subject string, data []byte) ([]byte, *bus.Error)
	// servers is what the registry lists and the router knows (fakeServers
	// unless a test sets others).
	servers []bus.ServerSpec
}

func (f *fakeBackend) setServers(l []bus.ServerSpec) {
	f.mu.Lock()
	f.servers = l
	f.mu.Unlock()
}

func (f *fakeBackend) serverList() []bus.ServerSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.servers
}

func (f *fakeBackend) record(l *[]regCall, req micro.Request) regCall {
	env, _ := bus.ReadEnvelope(nats.Header(req.Headers()))
	c := regCall{req.Subject(), string(req.Data()), env}
	f.mu.Lock()
	*l = append(*l, c)
	f.mu.Unlock()
	return c
}

func (f *fakeBackend) registryCalls() []regCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func (f *fakeBackend) routedCalls() []regCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.routed
	f.routed = nil
	return out
}

func startFakeBackend(t *testing.T, nc *nats.Conn) *fakeBackend {
	t.Helper()
	f := &fakeBackend{servers: fakeServers}
	svc, err := micro.AddService(nc, micro.Config{Name: "fake-registry", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	for i, subject := range []string{bus.SubjectRegistryGet, bus.SubjectRegistryList, bus.SubjectRegistryCreate, bus.SubjectRegistryUpdate, bus.SubjectRegistryDelete} {
		err := svc.AddEndpoint("r"+string(rune('a'+i)), micro.HandlerFunc(func(req micro.Request) {
			f.record(&f.calls, req)
			f.mu.Lock()
			answer := f.answer
			f.mu.Unlock()
			if answer != nil {
				if out, e := answer(req.Subject(), req.Data()); e != nil {
					bus.RespondError(req, e)
				} else {
					_ = req.Respond(out)
				}
				return
			}
			if req.Subject() == bus.SubjectRegistryList {
				servers := f.serverList()
				out := make([]bus.ServerRecord, len(servers))
				for i, s := range servers {
					out[i] = bus.NewServerRecord(s, uint64(i+1))
				}
				_ = req.RespondJSON(out)
				return
			}
			_ = req.Respond(req.Data())
		}), micro.WithEndpointSubject(subject))
		if err != nil {
			t.Fatal(err)
		}
	}
	err = svc.AddEndpoint("router", micro.HandlerFunc(func(req micro.Request) {
		c := f.record(&f.routed, req)
		msg, _ := bus.ParseMessage(req.Data())
		if len(c.env.Servers) == 0 { // aggregated, as the router names and reports them
			switch {
			case msg.Method == "tools/list":
				_ = req.Respond(bus.ResultResponse(msg.ID, json.RawMessage(`{"tools":[{"name":"github__echo","description":"Echo."},{"name":"pub__p1"}],"_meta":{"mcpbus/unavailable":[{"server":"other","code":"MCPBUS_UPSTREAM_UNAVAILABLE"}]}}`)))
			case msg.Method == "tools/call" && strings.Contains(string(msg.Params), `"github__echo"`):
				_ = req.Respond(bus.ResultResponse(msg.ID, json.RawMessage(`{"content":[{"type":"text","text":"hi from github"}]}`)))
			default:
				_ = req.Respond(bus.RawErrorResponse(msg.ID, json.RawMessage(`{"code":-32602,"message":"unknown tool"}`)))
			}
			return
		}
		var spec *bus.ServerSpec
		servers := f.serverList()
		for i := range servers {
			if len(c.env.Servers) == 1 && servers[i].Name == c.env.Servers[0] {
				spec = &servers[i]
			}
		}
		if spec == nil || (!spec.Public && c.env.IPClass != bus.Internal) {
			bus.RespondError(req, bus.Errorf(bus.ErrUnknownServer, "unknown MCP server %q", strings.Join(c.env.Servers, ",")))
			return
		}
		if !c.env.Caller.Permissions.AllowsServer(*spec) {
			bus.RespondError(req, bus.Errorf(bus.ErrNotPermitted, "key '%s' may not use MCP server '%s'", c.env.Caller.Name(), spec.Name))
			return
		}
		var params struct {
			Cursor string `json:"cursor"`
			Name   string `json:"name"`
		}
		_ = json.Unmarshal(msg.Params, &params)
		var result string
		switch {
		case spec.Name == "other":
			bus.RespondError(req, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server \"other\" is unreachable"))
			return
		case msg.Method == "tools/list" && spec.Name == "quiet":
			result = `{"tools":[]}`
		case msg.Method == "tools/list" && spec.Name == "github":
			result = `{"tools":[{"name":"echo","description":"Echo.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}},{"name":"add"}]}`
		case msg.Method == "tools/list" && params.Cursor == "":
			result = `{"tools":[{"name":"p1"}],"nextCursor":"c2"}`
		case msg.Method == "tools/list":
			result = `{"tools":[{"name":"p2"}]}`
		case msg.Method == "tools/call" && params.Name == "echo":
			result = `{"content":[{"type":"text","text":"hi"}],"structuredContent":{"x":1}}`
		default:
			_ = req.Respond(bus.RawErrorResponse(msg.ID, json.RawMessage(`{"code":-32602,"message":"unknown tool"}`)))
			return
		}
		_ = req.Respond(bus.ResultResponse(msg.ID, json.RawMessage(result)))
	}), micro.WithEndpointSubject(bus.SubjectRouterRPC))
	if err != nil {
		t.Fatal(err)
	}
	err = svc.AddEndpoint("info", micro.HandlerFunc(func(req micro.Request) {
		_ = req.Respond([]byte(`{"protocolVersion":"2025-06-18","capabilities":{}}`))
	}), micro.WithEndpointSubject(bus.ToolInfo("github")))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type regEnv struct {
	*adminEnv
	fake *fakeBackend
}

func newRegEnv(t *testing.T, o Options) *regEnv {
	t.Helper()
	ns := bustest.Server(t)
	svcConn := bustest.Conn(t, ns)
	fakeVerify(t, svcConn)
	fake := startFakeBackend(t, svcConn)
	if err := svcConn.Flush(); err != nil {
		t.Fatal(err)
	}
	env := &adminEnv{logs: &syncBuffer{}}
	o.NC = bustest.Conn(t, ns)
	o.Log = slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.InternalRanges == nil {
		o.InternalRanges = prefixes("127.0.0.0/8")
	}
	env.g = New(o)
	t.Cleanup(env.g.Close)
	env.srv = httptest.NewServer(env.g.Handler())
	t.Cleanup(env.srv.Close)
	return &regEnv{env, fake}
}

func TestRegistryCRUDIsMasterKeyOnly(t *testing.T) {
	e := newRegEnv(t, Options{})
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/mcp/server", ""},
		{"GET", "/v1/mcp/server/github", ""},
		{"POST", "/v1/mcp/server", `{"server_name":"x"}`},
		{"PUT", "/v1/mcp/server", `{"server_id":"x"}`},
		{"DELETE", "/v1/mcp/server/github", ""},
	} {
		r := e.do(t, tc.method, tc.path, testUserKey, tc.body)
		if b := restBody(t, r); r.status != http.StatusForbidden || b.Error.Code != "MCPBUS_FORBIDDEN" ||
			b.Error.Message != "only the master key may manage MCP servers" {
			t.Fatalf("%s %s as a user: HTTP %d %s", tc.method, tc.path, r.status, r.body)
		}
		if r := e.do(t, tc.method, tc.path, "", tc.body); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s %s without a key: HTTP %d %s", tc.method, tc.path, r.status, r.body)
		}
	}
	if calls := e.fake.registryCalls(); len(calls) != 0 {
		t.Fatalf("refused requests reached the registry: %v", calls)
	}
}

func TestRegistryCRUDForwards(t *testing.T) {
	e := newRegEnv(t, Options{})
	for _, tc := range []struct {
		method, path, body string
		subject, sent      string
	}{
		{"GET", "/v1/mcp/server", "", bus.SubjectRegistryList, "{}"},
		{"GET", "/v1/mcp/server/github", "", bus.SubjectRegistryGet, `{"name":"github"}`},
		{"POST", "/v1/mcp/server", `{"server_name":"x","url":"https://x"}`, bus.SubjectRegistryCreate, `{"server_name":"x","url":"https://x"}`},
		{"PUT", "/v1/mcp/server", `{"server_id":"x","revision":4}`, bus.SubjectRegistryUpdate, `{"server_id":"x","revision":4}`},
		{"DELETE", "/v1/mcp/server/x", "", bus.SubjectRegistryDelete, `{"name":"x"}`},
		{"DELETE", "/v1/mcp/server/x?revision=7", "", bus.SubjectRegistryDelete, `{"name":"x","revision":7}`},
		{"DELETE", "/v1/mcp/server/health", "", bus.SubjectRegistryDelete, `{"name":"health"}`},
	} {
		r := e.do(t, tc.method, tc.path, testMasterKey, tc.body)
		calls := e.fake.registryCalls()
		if r.status != http.StatusOK || len(calls) != 1 || calls[0].subject != tc.subject || calls[0].data != tc.sent {
			t.Fatalf("%s %s: HTTP %d %s; registry got %+v", tc.method, tc.path, r.status, r.body, calls)
		}
		if !calls[0].env.Caller.Admin || calls[0].env.RequestID == "" {
			t.Fatalf("%s %s: envelope %+v", tc.method, tc.path, calls[0].env)
		}
	}
	// Errors of the registry keep their status and LiteLLM's shape.
	e.fake.answer = func(string, []byte) ([]byte, *bus.Error) {
		return nil, bus.Errorf(bus.ErrConflict, "server 'x' was changed by someone else (revision 5, you sent 4)")
	}
	r := e.do(t, "PUT", "/v1/mcp/server", testMasterKey, `{"server_id":"x","revision":4}`)
	if b := restBody(t, r); r.status != http.StatusConflict || b.Error.Type != "conflict" || !strings.Contains(b.Error.Message, "revision 5, you sent 4") {
		t.Fatalf("conflict: HTTP %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ method, path, body, allow string }{
		{"PATCH", "/v1/mcp/server", "", "GET, POST, PUT"},
		{"POST", "/v1/mcp/server/x", "", "GET, DELETE"},
		{"POST", "/v1/mcp/server/health", "", "GET"},
		{"POST", "/v1/mcp/tools", "", "GET"},
		{"GET", "/mcp-rest/tools/call", "", "POST"},
	} {
		r := e.do(t, tc.method, tc.path, testMasterKey, tc.body)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow || restBody(t, r).Error.Code != "MCPBUS_METHOD_NOT_ALLOWED" {
			t.Fatalf("%s %s: HTTP %d Allow %q %s", tc.method, tc.path, r.status, r.header.Get("Allow"), r.body)
		}
	}
	r = e.do(t, "POST", "/v1/mcp/server", testMasterKey, `[1,2]`)
	if r.status != http.StatusBadRequest {
		t.Fatalf("array body: HTTP %d %s", r.status, r.body)
	}
	r = e.do(t, "DELETE", "/v1/mcp/server/x?revision=abc", testMasterKey, "")
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "revision") {
		t.Fatalf("bad revision: HTTP %d %s", r.status, r.body)
	}
}

func TestServerHealth(t *testing.T) {
	e := newRegEnv(t, Options{})
	var got []healthStatus
	r := e.do(t, "GET", "/v1/mcp/server/health", testMasterKey, "")
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != http.StatusOK || len(got) != 3 {
		t.Fatalf("health as master: HTTP %d %s", r.status, r.body)
	}
	if got[0].ServerID != "github" || got[0].Status != "healthy" || got[0].LastError != nil {
		t.Fatalf("github: %+v", got[0])
	}
	if got[2].ServerID != "pub" || got[2].Status != "unhealthy" || got[2].LastError == nil || !strings.Contains(*got[2].LastError, "no tool worker") {
		t.Fatalf("pub: %+v", got[2])
	}
	if strings.Contains(r.body, "secret-value") || strings.Contains(r.body, "api.example.com") {
		t.Fatalf("health shows server details: %s", r.body)
	}
	// A key restricted to github sees github only.
	got = nil
	r = e.do(t, "GET", "/v1/mcp/server/health", testUserKey, "")
	json.Unmarshal([]byte(r.body), &got)
	if len(got) != 1 || got[0].ServerID != "github" {
		t.Fatalf("health as a github-only key: %s", r.body)
	}
	got = nil
	r = e.do(t, "GET", "/v1/mcp/server/health?server_ids=pub,other", testMasterKey, "")
	json.Unmarshal([]byte(r.body), &got)
	if len(got) != 2 || got[0].ServerID != "other" || got[1].ServerID != "pub" {
		t.Fatalf("health filtered: %s", r.body)
	}
	if r := e.do(t, "GET", "/v1/mcp/server/health", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("health without a key: HTTP %d", r.status)
	}
}

func TestServerHealthExternalCaller(t *testing.T) {
	e := newRegEnv(t, Options{InternalRanges: prefixes("10.0.0.0/8")})
	var got []healthStatus
	r := e.do(t, "GET", "/v1/mcp/server/health", testMasterKey, "")
	json.Unmarshal([]byte(r.body), &got)
	if len(got) != 1 || got[0].ServerID != "pub" {
		t.Fatalf("health for an external caller: %s", r.body)
	}
}

type toolsAnswer struct {
	Tools []struct {
		Name     string `json:"name"`
		ServerID string `json:"server_id"`
		MCPInfo  struct {
			ServerName string `json:"server_name"`
		} `json:"mcp_info"`
	} `json:"tools"`
	Errors []serverError `json:"errors"`
}

func toolNames(a toolsAnswer) string {
	var l []string
	for _, t := range a.Tools {
		l = append(l, t.ServerID+"/"+t.Name)
	}
	return strings.Join(l, ",")
}

func TestToolsListing(t *testing.T) {
	e := newRegEnv(t, Options{})
	for _, path := range []string{"/v1/mcp/tools", "/mcp-rest/tools/list"} {
		r := e.do(t, "GET", path, testMasterKey, "")
		var a toolsAnswer
		json.Unmarshal([]byte(r.body), &a)
		// Every page of pub is read; other fails and is named, not silently empty.
		if r.status != http.StatusOK || toolNames(a) != "github/echo,github/add,pub/p1,pub/p2" || a.Tools[0].MCPInfo.ServerName != "github" {
			t.Fatalf("%s as master: HTTP %d %s", path, r.status, r.body)
		}
		if len(a.Errors) != 1 || a.Errors[0].ServerID != "other" || a.Errors[0].Code != "MCPBUS_UPSTREAM_UNAVAILABLE" {
			t.Fatalf("%s errors: %s", path, r.body)
		}
	}
	routed := e.fake.routedCalls()
	for _, c := range routed {
		if c.env.Caller.KeyID != "master" || c.env.IPClass != bus.Internal || len(c.env.Servers) != 1 || c.env.RequestID == "" {
			t.Fatalf("routed envelope: %+v", c.env)
		}
	}
	// A github-only key: only github is asked, nothing about the others.
	r := e.do(t, "GET", "/mcp-rest/tools/list", testUserKey, "")
	var a toolsAnswer
	json.Unmarshal([]byte(r.body), &a)
	if toolNames(a) != "github/echo,github/add" || len(a.Errors) != 0 {
		t.Fatalf("github-only key: %s", r.body)
	}
	for _, c := range e.fake.routedCalls() {
		if c.env.Servers[0] != "github" || c.env.Caller.Permissions.AllowsServer(bus.ServerSpec{Name: "pub"}) {
			t.Fatalf("routed for a github-only key: %+v", c.env)
		}
	}
	// Naming a server: the router's answer decides, as a REST status, naming
	// the server; a hidden one (github, internal-only, for an external
	// caller) answers exactly like an unknown one.
	ext := newRegEnv(t, Options{InternalRanges: prefixes("10.0.0.0/8")})
	for _, path := range []string{"/mcp-rest/tools/list", "/v1/mcp/tools"} {
		for _, tc := range []struct {
			env         *regEnv
			key, server string
			status      int
			code, msg   string
		}{
			{e, testUserKey, "pub", http.StatusForbidden, "MCPBUS_FORBIDDEN", "key 'alice' may not use MCP server 'pub'"},
			{e, testMasterKey, "nope", http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "nope"`},
			{ext, testMasterKey, "github", http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "github"`},
			{e, testMasterKey, "other", http.StatusBadGateway, "MCPBUS_UPSTREAM_UNAVAILABLE", `upstream server "other" is unreachable`},
		} {
			r := tc.env.do(t, "GET", path+"?server_id="+tc.server, tc.key, "")
			if b := restBody(t, r); r.status != tc.status || b.Error.Code != tc.code || b.Error.Message != tc.msg {
				t.Fatalf("%s?server_id=%s: HTTP %d %s", path, tc.server, r.status, r.body)
			}
		}
	}
	r = e.do(t, "GET", "/mcp-rest/tools/list?server_id=pub", testMasterKey, "")
	a = toolsAnswer{}
	json.Unmarshal([]byte(r.body), &a)
	if toolNames(a) != "pub/p1,pub/p2" {
		t.Fatalf("server_id=pub: %s", r.body)
	}
}

func TestToolsListingOpenAIFormat(t *testing.T) {
	e := newRegEnv(t, Options{})
	r := e.do(t, "GET", "/mcp-rest/tools/list?server_id=github&format=openai", testMasterKey, "")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || len(got) != 2 {
		t.Fatalf("openai format: HTTP %d %s", r.status, r.body)
	}
	want := `{"function":{"description":"Echo.","name":"echo","parameters":{"properties":{"text":{"type":"string"}},"type":"object"}},"type":"function"}`
	if b, _ := json.Marshal(got[0]); string(b) != want {
		t.Fatalf("openai tool = %s, want %s", b, want)
	}
	if b, _ := json.Marshal(got[1]["function"]); string(b) != `{"name":"add","parameters":{"properties":{},"type":"object"}}` {
		t.Fatalf("tool without a schema = %s", b)
	}
	// Without server_id: the aggregated list, with the router's unique names
	// (several servers have an echo), its missing servers in the header.
	r = e.do(t, "GET", "/mcp-rest/tools/list?format=openai", testMasterKey, "")
	got = nil
	_ = json.Unmarshal([]byte(r.body), &got)
	if r.header.Get("X-Mcpbus-Unavailable-Servers") != "other" || len(got) != 2 || fmt.Sprint(got[0]["function"].(map[string]any)["name"]) != "github__echo" {
		t.Fatalf("openai format, all servers: header %q, %s", r.header.Get("X-Mcpbus-Unavailable-Servers"), r.body)
	}
	if r := e.do(t, "GET", "/mcp-rest/tools/list?format=xml", testMasterKey, ""); r.status != http.StatusBadRequest {
		t.Fatalf("format=xml: HTTP %d", r.status)
	}
}

func TestRESTToolsCall(t *testing.T) {
	e := newRegEnv(t, Options{})
	r := e.do(t, "POST", "/mcp-rest/tools/call", testUserKey, `{"server_id":"github","name":"echo","arguments":{"text":"hi"}}`)
	if r.status != http.StatusOK || r.body != `{"content":[{"type":"text","text":"hi"}],"structuredContent":{"x":1}}` {
		t.Fatalf("call: HTTP %d %s", r.status, r.body)
	}
	routed := e.fake.routedCalls()
	var msg struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	json.Unmarshal([]byte(routed[0].data), &msg)
	if msg.Method != "tools/call" || string(msg.Params) != `{"name":"echo","arguments":{"text":"hi"}}` ||
		!slices.Equal(routed[0].env.Servers, []string{"github"}) || routed[0].env.Caller.Alias != "alice" {
		t.Fatalf("routed: %+v", routed[0])
	}
	for _, tc := range []struct {
		key, body string
		status    int
		want      string
	}{
		{testUserKey, `{"name":"echo"}`, http.StatusBadRequest, `refused tools/call: unknown tool`}, // no server_id: an aggregated name is wanted
		{testUserKey, `{}`, http.StatusBadRequest, "name is required"},
		{testUserKey, `{"server_id":"github"}`, http.StatusBadRequest, "name is required"},
		{testUserKey, `{"server_id":"github","name":"echo","arguments":[1]}`, http.StatusBadRequest, "arguments: expected an object"},
		{testUserKey, `not json`, http.StatusBadRequest, "JSON object"},
		{testUserKey, `{"server_id":"pub","name":"echo"}`, http.StatusForbidden, "key 'alice' may not use MCP server 'pub'"},
		{testUserKey, `{"server_id":"github","name":"nope"}`, http.StatusBadRequest, `server "github" refused tools/call: unknown tool (JSON-RPC error -32602)`},
		{"", `{"server_id":"github","name":"echo"}`, http.StatusUnauthorized, "no key"},
	} {
		r := e.do(t, "POST", "/mcp-rest/tools/call", tc.key, tc.body)
		if b := restBody(t, r); r.status != tc.status || !strings.Contains(b.Error.Message, tc.want) {
			t.Fatalf("call %s: HTTP %d %s", tc.body, r.status, r.body)
		}
	}
}

type registryJSON struct {
	Servers []struct {
		Server struct {
			Name, Title, Description, Version string
			Remotes                           []struct{ Type, URL string }
		}
	}
}

func getRegistryJSON(t *testing.T, e *regEnv, header http.Header) (int, registryJSON, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/mcp/registry.json", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var doc registryJSON
	json.Unmarshal(b, &doc)
	return res.StatusCode, doc, string(b)
}

func TestRegistryJSON(t *testing.T) {
	off := newRegEnv(t, Options{})
	if status, _, body := getRegistryJSON(t, off, nil); status != http.StatusNotFound || !strings.Contains(body, "enable_mcp_registry") {
		t.Fatalf("registry.json while disabled: HTTP %d %s", status, body)
	}

	e := newRegEnv(t, Options{EnableMCPRegistry: true, Version: "9.9.9"})
	status, doc, body := getRegistryJSON(t, e, nil) // no key: served, by IP class
	base := e.srv.URL
	if status != http.StatusOK || len(doc.Servers) != 4 {
		t.Fatalf("registry.json: HTTP %d %s", status, body)
	}
	first := doc.Servers[0].Server
	if first.Name != "mcpbus" || first.Version != "9.9.9" || len(first.Remotes) != 1 ||
		first.Remotes[0].Type != "streamable-http" || first.Remotes[0].URL != base+"/mcp" {
		t.Fatalf("gateway entry: %s", body)
	}
	gh := doc.Servers[1].Server
	if gh.Name != "github" || gh.Title != "github" || gh.Description != "GitHub" || gh.Remotes[0].URL != base+"/mcp/github" {
		t.Fatalf("github entry: %s", body)
	}
	if pub := doc.Servers[3].Server; pub.Title != "Public One" || pub.Remotes[0].URL != base+"/mcp/pub" {
		t.Fatalf("pub entry: %s", body)
	}
	if strings.Contains(body, "secret-value") || strings.Contains(body, "example.com") {
		t.Fatalf("registry.json shows upstream details: %s", body)
	}
	// X-Forwarded-* from an untrusted peer are ignored.
	_, doc, _ = getRegistryJSON(t, e, http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}})
	if doc.Servers[0].Server.Remotes[0].URL != base+"/mcp" {
		t.Fatalf("forwarded headers from an untrusted peer were used: %+v", doc.Servers[0])
	}

	// An external caller sees the public server only.
	ext := newRegEnv(t, Options{EnableMCPRegistry: true, InternalRanges: prefixes("10.0.0.0/8")})
	_, doc, body = getRegistryJSON(t, ext, nil)
	if len(doc.Servers) != 2 || doc.Servers[1].Server.Name != "pub" {
		t.Fatalf("registry.json for an external caller: %s", body)
	}

	// Behind a trusted proxy the forwarded scheme and host are the base.
	proxied := newRegEnv(t, Options{EnableMCPRegistry: true, UseXFF: true, TrustedProxies: prefixes("127.0.0.0/8"), InternalRanges: prefixes("10.0.0.0/8")})
	_, doc, body = getRegistryJSON(t, proxied, http.Header{"X-Forwarded-For": {"10.1.2.3"},
		"X-Forwarded-Host": {"gw.example.com"}, "X-Forwarded-Proto": {"https"}})
	if len(doc.Servers) != 4 || doc.Servers[1].Server.Remotes[0].URL != "https://gw.example.com/mcp/github" {
		t.Fatalf("registry.json behind a trusted proxy: %s", body)
	}
	_, doc, _ = getRegistryJSON(t, proxied, http.Header{"X-Forwarded-For": {"10.1.2.3"}, "X-Forwarded-Host": {"bad host/x"}})
	if got := doc.Servers[0].Server.Remotes[0].URL; !strings.HasPrefix(got, "http://127.0.0.1:") {
		t.Fatalf("an invalid forwarded host was used: %s", got)
	}
}

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"gw.example.com": true, "gw.example.com:8443": true, "127.0.0.1:4000": true, "[::1]:4000": true,
		"": false, "a b": false, "evil.com/x": false, "user@evil.com": false, "a\r\nb": false, ":80": false,
	} {
		if validHost(h) != want {
			t.Errorf("validHost(%q) = %v", h, !want)
		}
	}
}
