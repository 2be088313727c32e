package gateway

// Held attack 1: the caller's gateway key never reaches an upstream, on any
// header, whatever way it is spelled, duplicated or smuggled, on every route
// that leads to an upstream and over both HTTP upstream transports.
//
// Covered elsewhere (not repeated here):
//   - TestUpstreamSeesOnlyTheConfiguredCredential (gateway_test.go): the master
//     key in Authorization and x-litellm-api-key (and a Cookie) on /mcp/{server},
//     go-sdk client, Streamable HTTP upstreams of every auth_type.
//   - TestPerRequestCredentials (upstreams_test.go): x-mcp-{server}-{header}
//     reaching only its server, static_headers winning.
//   - TestForwardHeaders (ingress/forward_test.go): the ingress's forwarding
//     rule as a unit (x-mcp-{server}-authorization carrying the key dropped).
//   - TestPerRequestHeadersPrecedenceAndBlocklist (toolworkers): the worker's
//     never-forwarded list as a unit.
// Added here: virtual keys as well as the master key; every key spelling
// (bare, "Bearer ", lower/upper case scheme, mixed-case header names on the
// wire, duplicated header lines, both headers at once); the key embedded in
// x-mcp-{server}-{header}, in extra_headers headers (Authorization included),
// in a header whose name collides with a static header, in never-forwarded
// headers; on /mcp/{server}, /mcp with a selection header, /mcp aggregated,
// /sse + /messages, /mcp-rest/tools/call, /mcp-rest/tools/list,
// /v1/mcp/tools and /v1/mcp/server/health; Streamable HTTP and legacy SSE
// upstreams; and positive controls proving the forwarding path was live.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// heldCollStatic is the static Authorization of the server "coll", whose
// static header names collide with the headers that carry the key.
const heldCollStatic = "Bearer coll-static-cred-51ab"

// heldKeyRig is a gateway with three upstreams that would all happily take
// the key if the gateway passed it: "web" (Streamable HTTP) forwards every
// header that can carry it through extra_headers, "coll" (Streamable HTTP)
// has static headers of the same names, "legacy" is an HTTP+SSE upstream
// that forwards Authorization.
type heldKeyRig struct {
	g                 *testGateway
	web, coll, legacy *heldTap
	keys              map[string]string // "master", "virtual"
}

func heldKeyGateway(t *testing.T) *heldKeyRig {
	t.Helper()
	webURL, web := heldHTTPUpstream(t, "web")
	collURL, coll := heldHTTPUpstream(t, "coll")
	legacyURL, legacy := heldSSEUpstream(t, "legacy")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: os.environ/MASTER}
mcp_servers:
  web: {url: %q, extra_headers: [Authorization, X-Litellm-Api-Key, X-Custom, Proxy-Authorization, Cookie]}
  coll: {url: %q, static_headers: {Authorization: os.environ/COLL_STATIC, X-Custom: coll-static-custom}, extra_headers: [Authorization, X-Custom]}
  legacy: {url: %q, transport: sse, extra_headers: [Authorization, X-Custom]}
`, webURL, collURL, legacyURL), map[string]string{"MASTER": master, "COLL_STATIC": heldCollStatic})
	virtual := generateKey(t, g.URL(), map[string]any{"key_alias": "held-caller"})
	return &heldKeyRig{g: g, web: web, coll: coll, legacy: legacy, keys: map[string]string{"master": master, "virtual": virtual}}
}

// heldSpelling is one way a client may present its key.
type heldSpelling struct {
	name   string
	header http.Header
}

// heldKeySpellings are the ways a client can send key, each with the
// harmless per-request headers of heldBenign added.
func heldKeySpellings(key string) []heldSpelling {
	sp := []heldSpelling{
		{"authorization bearer", http.Header{"Authorization": {"Bearer " + key}}},
		{"authorization lower-case scheme padded", http.Header{"Authorization": {"bearer    " + key + "  "}}},
		{"x-litellm-api-key bearer", http.Header{"X-Litellm-Api-Key": {"Bearer " + key}}},
		// The key in x-litellm-api-key leaves Authorization to the caller's own
		// upstream credential, which web's extra_headers forwards.
		{"x-litellm-api-key bare", http.Header{"X-Litellm-Api-Key": {key}, "Authorization": {"Bearer caller-oauth-for-web"}, "X-Custom": {"custom-ok"}}},
		// Sent on the wire exactly as written.
		{"mixed-case header names", http.Header{"aUTHORIZATION": {"BEARER " + key}, "x-LiteLLM-API-KEY": {"bEaReR " + key}}},
		{"authorization twice", http.Header{"Authorization": {"Bearer " + key, "Bearer " + key}}},
		{"both headers, x-litellm-api-key twice", http.Header{"X-Litellm-Api-Key": {key, "Bearer " + key}, "Authorization": {"Bearer " + key}}},
		{"embedded in other headers", http.Header{
			"X-Litellm-Api-Key":              {"Bearer " + key},
			"Authorization":                  {"Basic " + key},        // extra_headers of web and coll
			"X-Custom":                       {"custom=" + key + ";"}, // extra_headers; a static header of coll
			"Proxy-Authorization":            {key},
			"Cookie":                         {"session=" + key},
			"X-Mcp-Web-Authorization":        {"Bearer " + key},
			"X-Mcp-Web-X-Custom":             {"per-request " + key},
			"X-Mcp-Web-X-Litellm-Api-Key":    {key},
			"X-Mcp-Web-Proxy-Authorization":  {key},
			"X-Mcp-Web-X-Tenant":             {key, "second-line"}, // only the first line counts
			"X-Mcp-Coll-Authorization":       {key},
			"X-Mcp-Coll-X-Custom":            {key},
			"X-Mcp-Legacy-Authorization":     {"Bearer " + key},
			"X-Mcp-Legacy-X-Custom":          {key},
			"X-Mcp-Web-X-Litellm-Mcp-Server": {key},
		}},
	}
	for _, s := range sp {
		for k, v := range heldBenign {
			s.header[k] = v
		}
	}
	return sp
}

// heldBenign are per-request headers every spelling also sends, so that the
// forwarding path is live and an absent key means a filtered key.
var heldBenign = http.Header{
	"X-Mcp-Web-X-Trace":    {"web-trace"},
	"X-Mcp-Coll-X-Trace":   {"coll-trace"},
	"X-Mcp-Legacy-X-Trace": {"legacy-trace"},
}

// check fails the test for every place a key reached an upstream, and checks
// the positive controls: per-request headers arrived, coll's static header
// was sent alone.
func (rig *heldKeyRig) check(t *testing.T) {
	t.Helper()
	for name, tp := range map[string]*heldTap{"web": rig.web, "coll": rig.coll, "legacy": rig.legacy} {
		if len(tp.requests()) == 0 {
			t.Errorf("upstream %s received nothing: the test did not exercise it", name)
		}
		for kname, key := range rig.keys {
			for _, l := range tp.leaks(key) {
				t.Errorf("the %s key reached upstream %s: %s", kname, name, l)
			}
		}
	}
	if !rig.web.sawHeader("X-Trace", "web-trace") || !rig.coll.sawHeader("X-Trace", "coll-trace") {
		t.Errorf("the harmless per-request header x-mcp-{server}-x-trace did not arrive: the forwarding path was not exercised")
	}
	if !rig.legacy.sawHeader("X-Trace", "legacy-trace") {
		t.Errorf("the SSE upstream never got its per-request header: the forwarding path was not exercised")
	}
	for i, r := range rig.coll.requests() {
		if got := r.header.Values("Authorization"); len(got) != 1 || got[0] != heldCollStatic {
			t.Errorf("coll request %d: Authorization %d values, want exactly its static header", i, len(got))
		}
	}
}

// POST /mcp/{server}, /mcp with x-litellm-mcp-server, and /mcp aggregating
// all three servers (the router fans lists out with the forwarded headers).
func TestSecurityHeldKeyStreamableRoutes(t *testing.T) {
	rig := heldKeyGateway(t)
	base := rig.g.URL()
	call := func(t *testing.T, url string, h http.Header, tool string) {
		t.Helper()
		s := initSession(t, url, h)
		r := post(t, url, s, rpc("tools/call", 2, fmt.Sprintf(`{"name":%q,"arguments":{"text":"held-echo"}}`, tool)))
		if r.status != http.StatusOK || !strings.Contains(string(r.result), "held-echo") {
			t.Fatalf("%s %s: HTTP %d %s", url, tool, r.status, r.body)
		}
	}
	for kname, key := range rig.keys {
		for _, sp := range heldKeySpellings(key) {
			t.Run(kname+"/"+sp.name, func(t *testing.T) {
				call(t, base+"/mcp/web", sp.header, "echo")
				sel := sp.header.Clone()
				sel.Set("X-Litellm-Mcp-Server", "coll")
				call(t, base+"/mcp", sel, "echo")
				for _, tool := range []string{"web__echo", "coll__echo", "legacy__echo"} {
					call(t, base+"/mcp", sp.header, tool)
				}
			})
		}
	}
	rig.check(t)
	if !rig.web.sawHeader("Authorization", "Bearer caller-oauth-for-web") || !rig.web.sawHeader("X-Custom", "custom-ok") {
		t.Error("web never got the caller's own extra_headers (Authorization, X-Custom): the extra_headers path was not exercised")
	}
}

// The legacy HTTP+SSE downstream transport: GET /sse/{server}, then POST
// /messages?session_id=..., both carrying the key.
func TestSecurityHeldKeyLegacySSEDownstream(t *testing.T) {
	rig := heldKeyGateway(t)
	for kname, key := range rig.keys {
		for _, sp := range heldKeySpellings(key) {
			t.Run(kname+"/"+sp.name, func(t *testing.T) {
				for _, server := range []string{"web", "coll", "legacy"} {
					cs, err := heldConnectLegacy(t, rig.g.URL()+"/sse/"+server, sp.header)
					if err != nil {
						t.Fatalf("/sse/%s: %v", server, err)
					}
					res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "held-sse"}})
					if err != nil || res.IsError {
						t.Fatalf("/sse/%s echo: %v %+v", server, err, res)
					}
					cs.Close()
				}
			})
		}
	}
	rig.check(t)
}

// The REST tool surface: calls and listings go through the router and the
// workers with the request's forwarded headers.
func TestSecurityHeldKeyRESTToolRoutes(t *testing.T) {
	rig := heldKeyGateway(t)
	base := rig.g.URL()
	for kname, key := range rig.keys {
		for _, sp := range heldKeySpellings(key) {
			t.Run(kname+"/"+sp.name, func(t *testing.T) {
				h := sp.header.Clone()
				h.Set("Content-Type", "application/json")
				for _, server := range []string{"web", "coll", "legacy"} {
					r := heldDo(t, "POST", base+"/mcp-rest/tools/call", h, fmt.Sprintf(`{"server_id":%q,"name":"echo","arguments":{"text":"held-rest"}}`, server))
					if r.status != http.StatusOK || !strings.Contains(string(r.body), "held-rest") {
						t.Fatalf("/mcp-rest/tools/call %s: HTTP %d %s", server, r.status, r.body)
					}
				}
				for _, path := range []string{"/mcp-rest/tools/list?server_id=legacy", "/mcp-rest/tools/list", "/v1/mcp/tools", "/v1/mcp/server/health"} {
					if r := heldDo(t, "GET", base+path, sp.header, ""); r.status != http.StatusOK {
						t.Fatalf("GET %s: HTTP %d %s", path, r.status, r.body)
					}
				}
			})
		}
	}
	rig.check(t)
}

// Each smuggling place on its own, on a fresh gateway, so one header's
// filtering cannot hide another's: the key in that one header is dropped
// while a harmless value in the same header still arrives.
func TestSecurityHeldKeyEmbeddedHeaderByHeader(t *testing.T) {
	for _, c := range []struct {
		header, upstreamName, server string
	}{
		{"Authorization", "Authorization", "web"}, // extra_headers, key carried by x-litellm-api-key
		{"X-Custom", "X-Custom", "web"},           // extra_headers
		{"X-Mcp-Web-Authorization", "Authorization", "web"},
		{"X-Mcp-Web-X-Custom", "X-Custom", "web"},
		{"X-Mcp-Legacy-Authorization", "Authorization", "legacy"},
		{"X-Mcp-Legacy-X-Custom", "X-Custom", "legacy"},
		{"X-Mcp-Coll-X-Tenant", "X-Tenant", "coll"},
	} {
		t.Run(c.header, func(t *testing.T) {
			rig := heldKeyGateway(t)
			tp := map[string]*heldTap{"web": rig.web, "coll": rig.coll, "legacy": rig.legacy}[c.server]
			url := rig.g.URL() + "/mcp/" + c.server
			for kname, key := range rig.keys {
				for i, v := range []string{"Bearer " + key, "prefix-" + key + "-suffix", "harmless-" + kname} {
					h := http.Header{"X-Litellm-Api-Key": {"Bearer " + key}, c.header: {v}}
					s := initSession(t, url, h)
					r := post(t, url, s, rpc("tools/call", 2+i, `{"name":"echo","arguments":{"text":"x"}}`))
					if r.status != http.StatusOK || r.rpcErr.Code != 0 {
						t.Fatalf("%s key, %s: HTTP %d %s", kname, c.header, r.status, r.body)
					}
				}
				if !tp.sawHeader(c.upstreamName, "harmless-"+kname) {
					t.Errorf("%s: the harmless value never reached %s as %s: the test cannot see a filter", c.header, c.server, c.upstreamName)
				}
				for _, l := range tp.leaks(key) {
					t.Errorf("%s: the %s key reached %s: %s", c.header, kname, c.server, l)
				}
			}
		})
	}
}
