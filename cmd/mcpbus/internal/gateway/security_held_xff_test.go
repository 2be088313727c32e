package gateway

// Held attack 3: X-Forwarded-For counts only from trusted proxies and only
// from the right (never the client-written left part); with
// use_x_forwarded_for off it is ignored; garbage means external; and an
// internal-only server stays hidden from an external caller, answering
// exactly like a missing one, on every surface.
//
// Covered elsewhere (not repeated here):
//   - TestForwardedForFromTrustedProxiesOnly (access_test.go): initialize on
//     /mcp/{server} for trusted and untrusted peers, one and two hops, the
//     spoofed left entry, several lines, garbage, no header, IPv6.
//   - TestExternalCallerProbesInternalServer, TestExternalCallersSeeOnlyPublicServers
//     (access_test.go, gateway_test.go): initialize by path, ?server=,
//     x-litellm-mcp-server, x-mcp-servers, a public session pointed at the
//     hidden server, /mcp choosing the visible one (class by peer address).
//   - TestRegistryJSONDiscovery (registry_api_test.go): registry.json,
//     /v1/mcp/tools, /mcp-rest/tools/list?server_id= and health for an
//     external peer; TestMetricsHiddenFromExternalCallers: /metrics.
//   - Unit level: ingress TestIPClassXFF (every entry form, hops, IPv6,
//     mapped addresses), TestIPClassXFFNoTrustedProxies; toolworkers
//     TestWorkerRefusesCallersTheRouterWould; router selection tests.
// Added here: the class chosen by X-Forwarded-For (a trusted proxy) checked
// on every surface at once; the hidden server answering byte for byte like a
// missing one (name aside) on initialize by every selection, tools/call,
// prompts/get and resources/read through /mcp, /v1/mcp/tools?server_id=,
// /mcp-rest/tools/list, /mcp-rest/tools/call, health, the legacy /sse
// endpoint and the registry API for a non-master key; aggregated lists
// leaving it out; use_x_forwarded_for off; an untrusted peer; and the
// spoofing and garbage forms checked on the REST surfaces and /metrics.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// heldVisibilityGateway runs pub and pub2 (public) and priv (internal only)
// with general_settings settings (plus the master key and the registry
// document), and returns it with a virtual key that may use every server.
func heldVisibilityGateway(t *testing.T, settings string) (*testGateway, string) {
	t.Helper()
	pub, _ := heldHTTPUpstream(t, "pub")
	pub2, _ := heldHTTPUpstream(t, "pub2")
	priv, _ := heldHTTPUpstream(t, "priv")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, enable_mcp_registry: true, %s}
mcp_servers:
  pub: {url: %q, available_on_public_internet: true}
  pub2: {url: %q, available_on_public_internet: true}
  priv: {url: %q}
`, master, settings, pub, pub2, priv), nil)
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "held-everywhere", "mcp_servers": []string{"pub", "pub2", "priv"}})
	return g, key
}

// heldSurfaces is what a caller with header h finds on the surfaces that
// list servers: whether priv is listed or callable on each.
func heldSurfaces(t *testing.T, base string, h http.Header) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	r := heldDo(t, "GET", base+"/v1/mcp/registry.json", h, "")
	seen["registry.json"] = strings.Contains(string(r.body), "/mcp/priv")
	r = heldDo(t, "GET", base+"/v1/mcp/tools", h, "")
	seen["/v1/mcp/tools"] = strings.Contains(string(r.body), `"server_id":"priv"`)
	r = heldDo(t, "GET", base+"/mcp-rest/tools/list", h, "")
	seen["/mcp-rest/tools/list"] = strings.Contains(string(r.body), `"server_id":"priv"`)
	r = heldDo(t, "GET", base+"/v1/mcp/server/health", h, "")
	seen["health"] = strings.Contains(string(r.body), `"priv"`)
	hc := h.Clone()
	hc.Set("Content-Type", "application/json")
	r = heldDo(t, "POST", base+"/mcp-rest/tools/call", hc, `{"server_id":"priv","name":"echo","arguments":{"text":"reached-priv"}}`)
	seen["/mcp-rest/tools/call"] = strings.Contains(string(r.body), "reached-priv")
	r = post(t, base+"/mcp/priv", h, initBody)
	seen["/mcp/priv"] = r.status == http.StatusOK
	s := initSession(t, base+"/mcp", h)
	r = post(t, base+"/mcp", s, rpc("tools/list", 2, ""))
	seen["/mcp tools/list"] = strings.Contains(string(r.body), "priv__echo")
	// /metrics: internal callers scrape without a key (the key is dropped here).
	mh := h.Clone()
	mh.Del("Authorization")
	seen["/metrics"] = heldDo(t, "GET", base+"/metrics", mh, "").status == http.StatusOK
	return seen
}

// heldClassIs fails unless every surface treated the caller as want.
func heldClassIs(t *testing.T, what string, seen map[string]bool, internal bool) {
	t.Helper()
	for surface, found := range seen {
		if found != internal {
			t.Errorf("%s: %s treats the caller as internal=%v, want internal=%v", what, surface, found, internal)
		}
	}
}

// The X-Forwarded-For forms a client can send through one trusted proxy,
// each judged the same way by every surface.
func TestSecurityHeldXFFClassOnEverySurface(t *testing.T) {
	g, key := heldVisibilityGateway(t, heldXFF)
	for _, c := range []struct {
		name     string
		xff      []string
		internal bool
	}{
		{"internal client", []string{heldInternalIP}, true},
		{"external client", []string{heldExternalIP}, false},
		{"spoofed internal entry on the left", []string{heldInternalIP + ", " + heldExternalIP}, false},
		{"spoofed internal line before the proxy's", []string{heldInternalIP, heldExternalIP}, false},
		{"external entry on the left, proxy wrote internal", []string{heldExternalIP + ", " + heldInternalIP}, true},
		{"no header from a trusted proxy", nil, false},
		{"unknown", []string{"unknown"}, false},
		{"a CIDR", []string{heldInternalIP + "/8"}, false},
		{"a hostname", []string{"localhost"}, false},
		{"trailing comma", []string{heldInternalIP + ","}, false},
		{"empty line", []string{""}, false},
		{"obfuscated identifier", []string{"_hidden"}, false},
		{"garbage right of a spoofed internal entry", []string{heldInternalIP + ", not-an-ip"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for kname, k := range map[string]string{"master": master, "virtual": key} {
				heldClassIs(t, kname+" key", heldSurfaces(t, g.URL(), heldWith(bearer(k), c.xff...)), c.internal)
			}
		})
	}
}

// use_x_forwarded_for off: the header is never read, whatever it says and
// whatever the trusted ranges are; a peer outside the trusted ranges is
// classified by its own address.
func TestSecurityHeldXFFIgnoredWhenOffOrUntrusted(t *testing.T) {
	for _, c := range []struct {
		name, settings string
	}{
		{"off", `mcp_internal_ip_ranges: ["10.0.0.0/8"], external_routes: [mcp, admin]`},
		{"off with trusted ranges and hops set", `use_x_forwarded_for: false, mcp_trusted_proxy_ranges: ["127.0.0.0/8"], mcp_xff_num_trusted_hops: 1, mcp_internal_ip_ranges: ["10.0.0.0/8"], external_routes: [mcp, admin]`},
		{"on, peer not a trusted proxy", `use_x_forwarded_for: true, mcp_trusted_proxy_ranges: ["192.168.0.0/16"], mcp_internal_ip_ranges: ["10.0.0.0/8"], external_routes: [mcp, admin]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, _ := heldVisibilityGateway(t, c.settings)
			for _, xff := range [][]string{{heldInternalIP}, {heldExternalIP, heldInternalIP}, {"127.0.0.1"}} {
				heldClassIs(t, fmt.Sprintf("XFF %q", xff), heldSurfaces(t, g.URL(), heldWith(bearer(master), xff...)), false)
			}
		})
	}
	// The other way round: the peer (127.0.0.1) is internal by default, and
	// an external X-Forwarded-For does not demote it when the header is off.
	g, _ := heldVisibilityGateway(t, `use_x_forwarded_for: false`)
	heldClassIs(t, "XFF off, external XFF from an internal peer", heldSurfaces(t, g.URL(), heldWith(bearer(master), heldExternalIP)), true)
}

// heldSame fails unless the answer about the hidden server is the answer
// about a missing one, the name aside.
func heldSame(t *testing.T, what string, hidden, missing rawResponse) {
	t.Helper()
	h := strings.ReplaceAll(string(hidden.body), "priv", "NAME")
	m := strings.ReplaceAll(string(missing.body), "nope", "NAME")
	if hidden.status != missing.status || h != m {
		t.Errorf("%s: the hidden server answers differently from a missing one:\nhidden:  HTTP %d %s\nmissing: HTTP %d %s", what, hidden.status, hidden.body, missing.status, missing.body)
	}
	if hidden.status == http.StatusOK && strings.Contains(string(hidden.body), "result") && !strings.Contains(string(hidden.body), "error") {
		t.Errorf("%s: the hidden server answered with a result: %s", what, hidden.body)
	}
}

// An external caller (X-Forwarded-For from the trusted proxy) gets, for the
// internal-only server, exactly the answer it gets for a server that does
// not exist, on every surface and with every key.
func TestSecurityHeldXFFHiddenServerAnswersLikeAMissingOne(t *testing.T) {
	g, key := heldVisibilityGateway(t, heldXFF)
	base := g.URL()
	for kname, k := range map[string]string{"master": master, "virtual": key} {
		ext := heldWith(bearer(k), heldExternalIP)
		both := func(what string, do func(name string) rawResponse) {
			t.Helper()
			heldSame(t, kname+": "+what, do("priv"), do("nope"))
		}
		both("initialize by path", func(n string) rawResponse { return post(t, base+"/mcp/"+n, ext, initBody) })
		both("initialize by ?server=", func(n string) rawResponse { return post(t, base+"/mcp?server="+n, ext, initBody) })
		for _, hdr := range []string{"X-Litellm-Mcp-Server", "X-Mcp-Servers"} {
			both("initialize by "+hdr, func(n string) rawResponse {
				h := ext.Clone()
				h.Set(hdr, "pub,"+n)
				return post(t, base+"/mcp", h, initBody)
			})
		}
		both("tools/call by path without a session", func(n string) rawResponse {
			return post(t, base+"/mcp/"+n, ext, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"x"}}`))
		})
		// An aggregated session of the two public servers: names of the hidden
		// one are unknown names.
		s := initSession(t, base+"/mcp", ext)
		both("tools/call of a namespaced tool", func(n string) rawResponse {
			return post(t, base+"/mcp", s, rpc("tools/call", 3, `{"name":"`+n+`__echo","arguments":{"text":"x"}}`))
		})
		both("prompts/get of a namespaced prompt", func(n string) rawResponse {
			return post(t, base+"/mcp", s, rpc("prompts/get", 4, `{"name":"`+n+`__greet","arguments":{"name":"x"}}`))
		})
		for _, m := range []string{"tools/list", "prompts/list"} {
			if r := post(t, base+"/mcp", s, rpc(m, 5, "")); r.rpcErr.Code != 0 || strings.Contains(string(r.body), "priv") || !strings.Contains(string(r.body), "pub2__") {
				t.Errorf("%s: aggregated %s for an external caller: %s", kname, m, r.body)
			}
		}
		// demo://readme is listed by every server; priv sorts first, so only
		// visibility keeps the read on a public one.
		if r := post(t, base+"/mcp", s, rpc("resources/read", 6, `{"uri":"demo://readme"}`)); strings.Contains(string(r.body), "priv is") || !strings.Contains(string(r.body), "pub is") {
			t.Errorf("%s: resources/read for an external caller: %s", kname, r.body)
		}
		jsonH := ext.Clone()
		jsonH.Set("Content-Type", "application/json")
		for _, path := range []string{"/v1/mcp/tools?server_id=", "/mcp-rest/tools/list?server_id=", "/v1/mcp/server/health?server_id="} {
			both("GET "+path, func(n string) rawResponse { return heldDo(t, "GET", base+path+n, ext, "") })
		}
		both("POST /mcp-rest/tools/call", func(n string) rawResponse {
			return heldDo(t, "POST", base+"/mcp-rest/tools/call", jsonH, `{"server_id":"`+n+`","name":"echo","arguments":{"text":"x"}}`)
		})
		both("legacy /sse", func(n string) rawResponse {
			_, err := heldConnectLegacy(t, base+"/sse/"+n, ext)
			if err == nil {
				return rawResponse{status: http.StatusOK, body: []byte("connected")}
			}
			return rawResponse{status: -1, body: []byte(err.Error())}
		})
	}
	// The registry API is the master key's alone (not filtered by IP class,
	// ACCESS.md); any other key is refused alike for both names.
	ext := heldWith(bearer(key), heldExternalIP)
	for _, m := range []string{"GET", "DELETE"} {
		heldSame(t, m+" /v1/mcp/server/{id} with a virtual key", heldDo(t, m, base+"/v1/mcp/server/priv", ext, ""), heldDo(t, m, base+"/v1/mcp/server/nope", ext, ""))
	}

	// The same calls from inside reach the server: the comparisons above
	// are about visibility, not about a broken server.
	in := heldWith(bearer(key), heldInternalIP)
	if r := post(t, base+"/mcp/priv", in, initBody); r.status != http.StatusOK {
		t.Fatalf("internal caller, initialize on priv: HTTP %d %s", r.status, r.body)
	}
	s := initSession(t, base+"/mcp", in)
	if r := post(t, base+"/mcp", s, rpc("tools/call", 7, `{"name":"priv__echo","arguments":{"text":"inside"}}`)); !strings.Contains(string(r.body), "inside") {
		t.Fatalf("internal caller, priv__echo: %s", r.body)
	}
	cs, err := heldConnectLegacy(t, base+"/sse/priv", in)
	if err != nil {
		t.Fatalf("internal caller, /sse/priv: %v", err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatalf("internal caller, echo over /sse/priv: %v", err)
	}
}
