package gateway

// Held attack 6: what a caller sends is bounded. A body over the limit is a
// 413 on every route that reads one; huge headers are refused by net/http;
// deeply nested JSON (100,000 levels) is refused or handled, never a crash or
// a hang; batches are refused; a huge id and many x-mcp-* headers get an
// explicit answer; and after each the gateway still serves.
//
// Covered elsewhere (not repeated here):
//   - TestMessageSizeLimits (bus_test.go): a 5 MiB tools/call on /mcp/{server}
//     in a session is a 413; an upstream answer over the bus limit is an
//     explicit error.
//   - TestSessionRules (gateway_test.go): malformed JSON is a 400 -32700.
//   - Unit level: bus TestParseMessage (batches, id types), ingress
//     TestAdminBadBodies (1 MiB admin limit with a fake auth service),
//     toolworkers TestSSEScannerLimits (upstream event size).
// Added here: the body limit on /mcp before any session and without a key,
// with a chunked body, on /messages, /mcp-rest/tools/call, /key/*, /team/*
// and POST/PUT /v1/mcp/server; header limits (one huge header, very many);
// nesting in params, arguments, REST and admin bodies, and in an upstream's
// answer; batches on /mcp and /messages (with whitespace, empty); huge
// string and numeric ids; thousands of x-mcp-* headers and many distinct
// per-request credential sets.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// heldBoundsGateway runs one Streamable HTTP server "web" and returns the
// gateway and the upstream's tap.
func heldBoundsGateway(t *testing.T) (*testGateway, *heldTap) {
	t.Helper()
	web, tp := heldHTTPUpstream(t, "web")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  web: {url: %q, extra_headers: [X-Extra]}\n", master, web), nil)
	return g, tp
}

// heldStillServes fails the test unless a normal call goes through.
func heldStillServes(t *testing.T, g *testGateway, after string) {
	t.Helper()
	url := g.URL() + "/mcp/web"
	s := initSession(t, url, bearer(master))
	if r := post(t, url, s, rpc("tools/call", 99, `{"name":"echo","arguments":{"text":"still-serving"}}`)); !strings.Contains(string(r.body), "still-serving") {
		t.Fatalf("after %s the gateway no longer serves: HTTP %d %s", after, r.status, r.body)
	}
}

// heldNested is depth nested arrays (or objects) around a number.
func heldNested(depth int, objects bool) string {
	open, close := "[", "]"
	if objects {
		open, close = `{"a":`, "}"
	}
	return strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth)
}

// heldChunked hides a body's length so the client sends it chunked.
type heldChunked struct{ io.Reader }

func TestSecurityHeldBoundsBodyOverTheLimit(t *testing.T) {
	g, tp := heldBoundsGateway(t)
	base := g.URL()
	s := initSession(t, base+"/mcp/web", bearer(master))
	// Bodies that would be accepted, were it not for their size.
	pad := func(n int) string { return strings.Repeat("y", n) }
	call := func(n int) string {
		return `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + pad(n) + `"}}}`
	}
	bodies := map[string]func(int) string{
		"init": func(n int) string {
			return `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"` + pad(n) + `","version":"1"}}}`
		},
		"call": call,
		"rest": func(n int) string { return `{"server_id":"web","name":"echo","arguments":{"text":"` + pad(n) + `"}}` },
		"key":  func(n int) string { return `{"key_alias":"padded","metadata":{"pad":"` + pad(n) + `"}}` },
		"team": func(n int) string { return `{"team_id":"padded","metadata":{"pad":"` + pad(n) + `"}}` },
		"server": func(n int) string {
			return `{"server_name":"padded","server_id":"padded","url":"http://127.0.0.1:1/mcp","description":"` + pad(n) + `"}`
		},
	}
	asMaster := http.Header{"Authorization": {"Bearer " + master}, "Content-Type": {"application/json"}}
	for _, c := range []struct {
		what, method, path, kind string
		h                        http.Header
		size                     int
		chunked                  bool
	}{
		{"/mcp initialize", "POST", "/mcp/web", "init", bearer(master), 4<<20 + 1024, false},
		{"/mcp initialize without a key", "POST", "/mcp/web", "init", nil, 4<<20 + 1024, false},
		{"/mcp tools/call chunked", "POST", "/mcp/web", "call", s, 4<<20 + 1024, true},
		{"/mcp-rest/tools/call", "POST", "/mcp-rest/tools/call", "rest", asMaster, 4<<20 + 1024, false},
		{"/mcp-rest/tools/call chunked", "POST", "/mcp-rest/tools/call", "rest", asMaster, 4<<20 + 1024, true},
		{"/key/generate", "POST", "/key/generate", "key", asMaster, 1<<20 + 1024, false},
		{"/team/new chunked", "POST", "/team/new", "team", asMaster, 1<<20 + 1024, true},
		{"POST /v1/mcp/server", "POST", "/v1/mcp/server", "server", asMaster, 1<<20 + 1024, false},
		{"PUT /v1/mcp/server", "PUT", "/v1/mcp/server", "server", asMaster, 1<<20 + 1024, false},
	} {
		body := bodies[c.kind](c.size)
		var rd io.Reader = strings.NewReader(body)
		if c.chunked {
			rd = heldChunked{rd}
		}
		req, _ := http.NewRequest(c.method, base+c.path, rd)
		for k, v := range c.h {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		r, _ := exchange(t, req)
		code := r.rpcErr.Data["mcpbus_code"]
		if code == "" {
			code, _ = heldRESTError(r.body)
		}
		if c.h == nil {
			// No key: refused from the headers, before any of the body is
			// read (security_body_test.go).
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s, %d bytes: HTTP %d %.300s, want 401", c.what, len(body), r.status, r.body)
			}
			continue
		}
		if r.status != http.StatusRequestEntityTooLarge || code != "MCPBUS_TOO_LARGE" {
			t.Errorf("%s, %d bytes: HTTP %d %.300s, want 413 MCPBUS_TOO_LARGE", c.what, len(body), r.status, r.body)
		}
	}
	// The legacy transport's message endpoint, in a live session.
	legacy := heldLegacyPost(t, base, "web", call(4<<20+1024))
	if legacy.status != http.StatusRequestEntityTooLarge {
		t.Errorf("/messages, over 4 MiB: HTTP %d %.300s, want 413", legacy.status, legacy.body)
	}
	for _, r := range tp.requests() {
		if bytes.Contains(r.body, []byte("yyyyyyyyyyyyyyyy")) {
			t.Fatalf("an oversized body reached the upstream (%d bytes)", len(r.body))
		}
	}
	heldStillServes(t, g, "oversized bodies")
}

// heldLegacyPost opens a legacy SSE session on /sse/{server} with the master
// key and POSTs body to its message endpoint.
func heldLegacyPost(t *testing.T, base, server, body string) rawResponse {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/sse/"+server, nil)
	req.Header.Set("Authorization", "Bearer "+master)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse/%s: %v %v", server, err, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	// The first event is "endpoint", its data the URL to POST messages to.
	lines := bufio.NewReader(resp.Body)
	endpoint := ""
	for endpoint == "" {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the endpoint event: %v", err)
		}
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data:"); ok {
			endpoint = strings.TrimSpace(data)
		}
	}
	return heldDo(t, "POST", base+endpoint,
		http.Header{"Authorization": {"Bearer " + master}, "Content-Type": {"application/json"}}, body)
}

// Headers past net/http's limit (1 MiB) are refused before the gateway's
// code sees them, as one huge header or as very many.
func TestSecurityHeldBoundsHugeHeaders(t *testing.T) {
	g, _ := heldBoundsGateway(t)
	refused := 0
	for _, c := range []struct {
		what string
		h    http.Header
	}{
		{"one 2 MiB header", http.Header{"X-Mcp-Web-X-Big": {strings.Repeat("h", 2<<20)}}},
		{"one 2 MiB authorization", http.Header{"Authorization": {"Bearer " + strings.Repeat("k", 2<<20)}}},
		{"30,000 headers", func() http.Header {
			h := http.Header{}
			for i := range 30000 {
				h.Set(fmt.Sprintf("X-Mcp-Web-X-H%05d", i), strings.Repeat("v", 32))
			}
			return h
		}()},
	} {
		for _, path := range []string{"/mcp/web", "/key/list", "/mcp-rest/tools/list"} {
			req, _ := http.NewRequest("POST", g.URL()+path, strings.NewReader(initBody))
			for k, v := range c.h {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may close the connection before the client has
				// written all of it; then there is no answer to read.
				continue
			}
			refused++
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s on %s: HTTP %d %.200s, want 431", c.what, path, resp.StatusCode, body)
			}
		}
	}
	if refused == 0 {
		t.Error("no oversized request got an answer at all: the limit was never observed")
	}
	heldStillServes(t, g, "huge headers")
}

// 100,000 levels of nesting are refused where the message is read; within
// the decoder's limit nesting is carried through and answered; an upstream
// answering with deep nesting gets an explicit answer too.
func TestSecurityHeldBoundsDeepNesting(t *testing.T) {
	deepURL := heldDeepUpstream(t)
	web, tp := heldHTTPUpstream(t, "web")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  web: {url: %q}\n  deep: {url: %q}\n", master, web, deepURL), nil)
	base := g.URL()
	s := initSession(t, base+"/mcp/web", bearer(master))
	asMaster := http.Header{"Authorization": {"Bearer " + master}, "Content-Type": {"application/json"}}
	before := len(tp.requests())
	for _, objects := range []bool{false, true} {
		deep := heldNested(100000, objects)
		for _, c := range []struct{ what, body string }{
			{"params", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":` + deep + `}`},
			{"arguments", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","deep":` + deep + `}}}`},
			{"_meta", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":{"deep":` + deep + `}}}`},
			{"id", `{"jsonrpc":"2.0","id":` + deep + `,"method":"ping"}`},
		} {
			r := post(t, base+"/mcp/web", s, c.body)
			if r.status != http.StatusBadRequest || (r.rpcErr.Code != -32700 && r.rpcErr.Code != -32600) {
				t.Errorf("100,000 levels (objects %v) in %s: HTTP %d %.300s, want 400 with -32700 or -32600", objects, c.what, r.status, r.body)
			}
		}
		for _, c := range []struct{ what, method, path, body string }{
			{"REST call arguments", "POST", "/mcp-rest/tools/call", `{"server_id":"web","name":"echo","arguments":{"deep":` + deep + `}}`},
			{"key generate", "POST", "/key/generate", `{"metadata":` + deep + `}`},
			{"server create", "POST", "/v1/mcp/server", `{"server_name":"deep","url":"http://127.0.0.1:1/mcp","mcp_info":` + deep + `}`},
		} {
			r := heldDo(t, c.method, base+c.path, asMaster, c.body)
			if code, _ := heldRESTError(r.body); r.status != http.StatusBadRequest || code != "MCPBUS_BAD_REQUEST" {
				t.Errorf("100,000 levels (objects %v) in the %s body: HTTP %d %.300s, want 400", objects, c.what, r.status, r.body)
			}
		}
	}
	if r := heldLegacyPost(t, base, "web", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":`+heldNested(100000, false)+`}`); r.status != http.StatusBadRequest {
		t.Errorf("100,000 levels on /messages: HTTP %d %.300s, want 400", r.status, r.body)
	}
	for _, r := range tp.requests()[before:] {
		if bytes.Contains(r.body, []byte("tools/call")) {
			t.Errorf("a refused message reached the upstream: %.200s", r.body)
		}
	}
	// 9,000 levels are within what JSON readers take: the call goes through
	// and gets an answer, whatever the upstream makes of it.
	r := post(t, base+"/mcp/web", s, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","deep":`+heldNested(9000, false)+`}}}`)
	if r.status != http.StatusOK || len(r.result) == 0 && r.rpcErr.Code == 0 {
		t.Errorf("9,000 levels in arguments: HTTP %d %.300s, want a JSON-RPC answer", r.status, r.body)
	}
	// An upstream answering 100,000 levels deep: an explicit answer.
	ds := initSession(t, base+"/mcp/deep", bearer(master))
	r = post(t, base+"/mcp/deep", ds, rpc("tools/call", 6, `{"name":"deep","arguments":{}}`))
	if r.status != http.StatusOK || len(r.result) == 0 && r.rpcErr.Code == 0 {
		t.Errorf("an upstream answer 100,000 levels deep: HTTP %d %.300s, want a JSON-RPC answer", r.status, r.body)
	}
	heldStillServes(t, g, "deep nesting")
}

// heldDeepUpstream is a minimal Streamable HTTP MCP server whose every
// tools/call result holds 100,000 nested arrays.
func heldDeepUpstream(t *testing.T) string {
	t.Helper()
	deep := heldNested(100000, false)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &m)
		if len(m.ID) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Mcp-Session-Id", "deep-session")
		switch m.Method {
		case "initialize":
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"deep","version":"1"}}}`, m.ID)
		case "tools/call":
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"deep"}],"structuredContent":{"deep":%s}}}`, m.ID, deep)
		default:
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, m.ID)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A batch is one POST of several messages: refused on both MCP transports,
// and nothing reaches the upstream.
func TestSecurityHeldBoundsBatchRefused(t *testing.T) {
	g, tp := heldBoundsGateway(t)
	base := g.URL()
	s := initSession(t, base+"/mcp/web", bearer(master))
	call := rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"batched"}}`)
	for _, b := range []string{
		"[" + initBody + "]",
		"[" + call + "," + call + "]",
		" \n\t[" + call + "]",
		"[]",
		"[[" + call + "]]",
	} {
		for _, c := range []struct {
			url string
			h   http.Header
		}{{base + "/mcp/web", bearer(master)}, {base + "/mcp/web", s}, {base + "/mcp", s}} {
			r := post(t, c.url, c.h, b)
			if r.status != http.StatusBadRequest || r.rpcErr.Code != -32600 && r.rpcErr.Code != -32700 {
				t.Errorf("batch %.40q on %s: HTTP %d %s, want 400 -32600", b, c.url, r.status, r.body)
			}
		}
		if r := heldLegacyPost(t, base, "web", b); r.status != http.StatusBadRequest {
			t.Errorf("batch %.40q on /messages: HTTP %d %s, want 400", b, r.status, r.body)
		}
	}
	for _, r := range tp.requests() {
		if bytes.Contains(r.body, []byte("batched")) {
			t.Fatal("a batched call reached the upstream")
		}
	}
	heldStillServes(t, g, "batches")
}

// A huge id is refused or carried back exactly; it never breaks the answer,
// the session or the gateway.
func TestSecurityHeldBoundsHugeID(t *testing.T) {
	g, _ := heldBoundsGateway(t)
	url := g.URL() + "/mcp/web"
	s := initSession(t, url, bearer(master))
	for _, id := range []string{
		`"` + strings.Repeat("i", 3<<20) + `"`,
		strings.Repeat("9", 1<<20),
		"-" + strings.Repeat("1", 64<<10) + ".5e+99999",
		`"` + strings.Repeat(`\u00e9`, 100000) + `"`,
	} {
		for _, m := range []string{
			`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`,
			`{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}`,
		} {
			r := post(t, url, s, m)
			switch {
			case r.status == http.StatusBadRequest && r.rpcErr.Code == -32600:
			case r.status == http.StatusOK && bytes.Contains(r.body, []byte(`"id":`+id)):
			default:
				t.Errorf("id of %d bytes: HTTP %d %.300s, want a 400 -32600 or the same id back", len(id), r.status, r.body)
			}
		}
	}
	heldStillServes(t, g, "huge ids")
}

// Thousands of x-mcp-* headers, one header with thousands of lines, and
// more distinct per-request credential sets than the worker keeps clients
// for: every request gets an answer, and the gateway still serves.
func TestSecurityHeldBoundsManyPerRequestHeaders(t *testing.T) {
	g, tp := heldBoundsGateway(t)
	url := g.URL() + "/mcp/web"
	answered := func(what string, r rawResponse) {
		t.Helper()
		if r.status != http.StatusOK || len(r.result) == 0 && r.rpcErr.Code == 0 {
			if r.status < 400 || r.status >= 500 || r.rpcErr.Code == 0 {
				t.Errorf("%s: HTTP %d %.300s, want a result or an explicit refusal", what, r.status, r.body)
			}
		}
	}
	many := bearer(master)
	for i := range 2000 {
		many.Set(fmt.Sprintf("X-Mcp-Web-X-H%04d", i), fmt.Sprintf("v%d", i))
		many.Set(fmt.Sprintf("X-Mcp-Nowhere%04d-X-H", i), "v")
	}
	wide := bearer(master)
	for i := range 50 {
		wide.Set(fmt.Sprintf("X-Mcp-Web-X-Wide%02d", i), strings.Repeat("w", 8<<10))
	}
	lines := bearer(master)
	for i := range 5000 {
		lines.Add("X-Mcp-Web-X-Same", fmt.Sprintf("line-%d", i))
		lines.Add("X-Extra", fmt.Sprintf("extra-%d", i))
	}
	for what, h := range map[string]http.Header{"2,000 x-mcp-web-* and 2,000 x-mcp-<unknown>-* headers": many,
		"50 x-mcp-web-* headers of 8 KiB": wide, "5,000 lines of one header": lines} {
		r := post(t, url, h, initBody)
		answered(what+" (initialize)", r)
		if r.status != http.StatusOK {
			continue // refused explicitly, before any session
		}
		s := h.Clone()
		s.Set("Mcp-Session-Id", r.header.Get("Mcp-Session-Id"))
		answered(what, post(t, url, s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"x"}}`)))
		answered(what+" (tools/list)", post(t, url, s, rpc("tools/list", 3, "")))
	}
	for _, r := range tp.requests() {
		if len(r.header.Values("X-Same")) > 1 || len(r.header.Values("X-Extra")) > 1 {
			t.Fatalf("more than the first line of a forwarded header went upstream: %d X-Same, %d X-Extra", len(r.header.Values("X-Same")), len(r.header.Values("X-Extra")))
		}
	}
	// 200 distinct credential sets (the worker keeps 128 clients).
	s := initSession(t, url, bearer(master))
	for i := range 200 {
		h := s.Clone()
		h.Set("X-Mcp-Web-Authorization", fmt.Sprintf("Bearer per-caller-%03d", i))
		r := post(t, url, h, rpc("tools/call", 10+i, `{"name":"echo","arguments":{"text":"cred"}}`))
		if !strings.Contains(string(r.body), `"cred"`) {
			t.Fatalf("credential set %d: HTTP %d %.300s", i, r.status, r.body)
		}
	}
	heldStillServes(t, g, "many per-request headers")
}
