package ingress

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// /v1/mcp/registry.json and /metrics need no key from an internal caller, and
// registry.json writes the Host into its URLs: both take the MCP endpoints'
// Host/Origin rule (origin.go), so a page that rebinds its name to the
// gateway can neither read them nor plant its name in the URLs.

// hostGet sends GET path to e with Host host ("" leaves the server's
// address) and the extra headers.
func hostGet(t *testing.T, e *regEnv, path, host string, header http.Header) adminResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return adminResp{res.StatusCode, res.Header, string(b)}
}

// wantHostRefused checks the 403 of the Host/Origin rule: FORBIDDEN naming
// the refused value, the endpoint and the setting to change.
func wantHostRefused(t *testing.T, what string, r adminResp, refused, endpoint string) {
	t.Helper()
	b := restBody(t, r)
	if r.status != http.StatusForbidden || b.Error.Code != "MCPBUS_FORBIDDEN" || !strings.Contains(b.Error.Message, refused) ||
		!strings.Contains(b.Error.Message, endpoint) || !strings.Contains(b.Error.Message, "DNS rebinding") ||
		!strings.Contains(b.Error.Message, "mcp_allowed_origins") {
		t.Fatalf("%s: HTTP %d %s; want 403 MCPBUS_FORBIDDEN naming %s", what, r.status, r.body, refused)
	}
}

// registryURLs is every remote URL in a registry.json answer.
func registryURLs(t *testing.T, r adminResp) []string {
	t.Helper()
	var doc registryJSON
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil || r.status != http.StatusOK || len(doc.Servers) == 0 {
		t.Fatalf("registry.json: HTTP %d %s", r.status, r.body)
	}
	var out []string
	for _, s := range doc.Servers {
		for _, rem := range s.Server.Remotes {
			out = append(out, rem.URL)
		}
	}
	return out
}

func TestRegistryJSONChecksHost(t *testing.T) {
	e := newRegEnv(t, Options{EnableMCPRegistry: true, ListenAddr: "127.0.0.1:4000", AllowedOrigins: []string{"gw.example.com"}})
	const path = "/v1/mcp/registry.json"

	// A foreign Host or Origin: the same 403 as /mcp, before anything else.
	t.Run("evil Host", func(t *testing.T) {
		r := hostGet(t, e, path, "evil.example.com", nil)
		wantHostRefused(t, "evil Host", r, `Host "evil.example.com"`, path)
		if strings.Contains(r.body, "evil.example.com/mcp") || strings.Contains(r.body, "github") {
			t.Fatalf("a refused registry.json shows servers: %s", r.body)
		}
	})
	t.Run("evil Host and Origin", func(t *testing.T) {
		r := hostGet(t, e, path, "evil.example.com:4000", http.Header{"Origin": {"http://evil.example.com:4000"}})
		wantHostRefused(t, "evil Host and Origin", r, `Host "evil.example.com:4000"`, path)
	})
	t.Run("evil Origin", func(t *testing.T) {
		r := hostGet(t, e, path, "", http.Header{"Origin": {"http://evil.example.com"}})
		wantHostRefused(t, "evil Origin", r, `Origin "http://evil.example.com"`, path)
	})
	t.Run("evil Host, registry off", func(t *testing.T) {
		off := newRegEnv(t, Options{ListenAddr: "127.0.0.1:4000"})
		wantHostRefused(t, "evil Host, registry off", hostGet(t, off, path, "evil.example.com", nil), `Host "evil.example.com"`, path)
	})

	// Allowed Hosts (localhost names on loopback, the allow-list) are the base.
	t.Run("allowed Host", func(t *testing.T) {
		for host, base := range map[string]string{
			"":                    e.srv.URL,
			"localhost:4000":      "http://localhost:4000",
			"gw.example.com":      "http://gw.example.com",
			"GW.example.com:8443": "http://GW.example.com:8443",
		} {
			urls := registryURLs(t, hostGet(t, e, path, host, http.Header{"Origin": {"http://localhost:5173"}}))
			if len(urls) != 4 || urls[0] != base+"/mcp" || urls[1] != base+"/mcp/github" {
				t.Fatalf("Host %q: URLs %v, want them under %s", host, urls, base)
			}
		}
	})
}

// Behind a trusted proxy the forwarded host and scheme are the base, as
// before; the forwarded headers do not stand in for the Host check.
func TestRegistryJSONTrustedProxyHost(t *testing.T) {
	e := newRegEnv(t, Options{EnableMCPRegistry: true, ListenAddr: "127.0.0.1:4000",
		UseXFF: true, TrustedProxies: prefixes("127.0.0.0/8"), InternalRanges: prefixes("10.0.0.0/8")})
	const path = "/v1/mcp/registry.json"
	fwd := http.Header{"X-Forwarded-For": {"10.1.2.3"}, "X-Forwarded-Host": {"gw.example.com"}, "X-Forwarded-Proto": {"https"}}

	t.Run("forwarded host is the base", func(t *testing.T) {
		urls := registryURLs(t, hostGet(t, e, path, "", fwd))
		if len(urls) != 4 || urls[0] != "https://gw.example.com/mcp" || urls[3] != "https://gw.example.com/mcp/pub" {
			t.Fatalf("behind a trusted proxy: %v", urls)
		}
	})
	t.Run("evil Host with a forwarded host", func(t *testing.T) {
		r := hostGet(t, e, path, "evil.example.com", fwd)
		wantHostRefused(t, "evil Host behind a trusted proxy", r, `Host "evil.example.com"`, path)
		if strings.Contains(r.body, "gw.example.com/mcp") {
			t.Fatalf("a refused registry.json holds URLs: %s", r.body)
		}
	})
}

func TestMetricsChecksHost(t *testing.T) {
	in := newRegEnv(t, Options{ListenAddr: "127.0.0.1:4000"}) // 127.0.0.1 is internal: scrapes without a key
	t.Run("evil Host", func(t *testing.T) {
		r := hostGet(t, in, "/metrics", "evil.example.com", nil)
		wantHostRefused(t, "evil Host", r, `Host "evil.example.com"`, "/metrics")
		if strings.Contains(r.body, "# HELP") {
			t.Fatalf("a refused scrape got metrics: %s", r.body)
		}
	})
	t.Run("evil Origin", func(t *testing.T) {
		r := hostGet(t, in, "/metrics", "", http.Header{"Origin": {"http://evil.example.com"}})
		wantHostRefused(t, "evil Origin", r, `Origin "http://evil.example.com"`, "/metrics")
	})
	t.Run("allowed Host", func(t *testing.T) {
		for _, host := range []string{"", "localhost:4000", "[::1]:4000"} {
			if r := hostGet(t, in, "/metrics", host, nil); r.status != http.StatusOK || !strings.Contains(r.body, "mcpbus_http_requests_total") {
				t.Fatalf("scrape with Host %q: HTTP %d %s", host, r.status, r.body)
			}
		}
	})

	// With /metrics open to external callers (external_routes), an
	// external caller still finds no /metrics without the master key,
	// whatever its Host; with the key, the Host rule applies.
	ext := newRegEnv(t, Options{ListenAddr: "127.0.0.1:4000", InternalRanges: prefixes("10.0.0.0/8"),
		ExternalRoutes: []bus.RouteFamily{bus.RoutesMCP, bus.RoutesMetrics}})
	master := http.Header{"Authorization": {"Bearer " + testMasterKey}}
	t.Run("external, no key", func(t *testing.T) {
		if r := hostGet(t, ext, "/metrics", "evil.example.com", nil); r.status != http.StatusNotFound {
			t.Fatalf("external, no key, evil Host: HTTP %d %s", r.status, r.body)
		}
	})
	t.Run("external with the master key, evil Host", func(t *testing.T) {
		r := hostGet(t, ext, "/metrics", "evil.example.com", master)
		wantHostRefused(t, "external with the master key, evil Host", r, `Host "evil.example.com"`, "/metrics")
		if r := hostGet(t, ext, "/metrics", "", master); r.status != http.StatusOK {
			t.Fatalf("external with the master key: HTTP %d %s", r.status, r.body)
		}
	})

	// Behind a trusted proxy: the Host is checked; a forwarded host neither
	// lets a foreign Host through nor matters otherwise (/metrics writes no URL).
	proxied := newRegEnv(t, Options{ListenAddr: "127.0.0.1:4000", UseXFF: true, TrustedProxies: prefixes("127.0.0.0/8"), InternalRanges: prefixes("10.0.0.0/8")})
	t.Run("evil Host with a forwarded host", func(t *testing.T) {
		fwd := http.Header{"X-Forwarded-For": {"10.1.2.3"}, "X-Forwarded-Host": {"localhost"}}
		wantHostRefused(t, "evil Host behind a trusted proxy", hostGet(t, proxied, "/metrics", "evil.example.com", fwd), `Host "evil.example.com"`, "/metrics")
	})
	t.Run("forwarded host", func(t *testing.T) {
		fwd := http.Header{"X-Forwarded-For": {"10.1.2.3"}, "X-Forwarded-Host": {"gw.example.com"}}
		if r := hostGet(t, proxied, "/metrics", "", fwd); r.status != http.StatusOK {
			t.Fatalf("through a trusted proxy: HTTP %d %s", r.status, r.body)
		}
	})
}
