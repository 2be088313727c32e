package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// hostRequest sends GET path with Host host ("" leaves the gateway's address)
// and the extra headers.
func hostRequest(t *testing.T, base, path, host string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// gatewayURLs is every remote URL of a registry.json answer.
func gatewayURLs(t *testing.T, status int, body string) []string {
	t.Helper()
	var doc registryDocument
	if err := json.Unmarshal([]byte(body), &doc); err != nil || status != http.StatusOK {
		t.Fatalf("registry.json: HTTP %d %s", status, body)
	}
	var out []string
	for _, s := range doc.Servers {
		for _, r := range s.Server.Remotes {
			out = append(out, r.URL)
		}
	}
	return out
}

// registry.json and /metrics follow the Host/Origin rule of /mcp: on a
// loopback gateway, localhost names and mcp_allowed_origins only, else the
// same 403. The URLs registry.json writes name only an accepted Host. The
// health probes stay open to any Host (kubelet sends the pod's address).
func TestSecurityRegistryJSONAndMetricsCheckHost(t *testing.T) {
	demo, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, enable_mcp_registry: true, mcp_allowed_origins: ["gw.example.com"]}
mcp_servers:
  demo: {url: %q}
`, master, demo), nil)
	port := g.URL()[strings.LastIndexByte(g.URL(), ':')+1:]
	evil := "evil.example.com:" + port

	for _, path := range []string{"/v1/mcp/registry.json", "/metrics"} {
		t.Run("foreign Host "+path, func(t *testing.T) {
			status, body := hostRequest(t, g.URL(), path, evil, nil)
			wantREST(t, path+" with a foreign Host", status, body, http.StatusForbidden, "MCPBUS_FORBIDDEN",
				fmt.Sprintf("Host %q is not allowed on %s (DNS rebinding protection)", evil, path))
			if strings.Contains(body, "evil.example.com:"+port+"/mcp") || strings.Contains(body, "# HELP") {
				t.Fatalf("%s refused but answered: %s", path, body)
			}
		})
		t.Run("foreign Origin "+path, func(t *testing.T) {
			status, body := hostRequest(t, g.URL(), path, "", http.Header{"Origin": {"http://evil.example.com"}})
			wantREST(t, path+" with a foreign Origin", status, body, http.StatusForbidden, "MCPBUS_FORBIDDEN",
				`Origin "http://evil.example.com" is not allowed on `+path)
		})
	}
	t.Run("allowed Host", func(t *testing.T) {
		for host, base := range map[string]string{
			"localhost:" + port: "http://localhost:" + port,
			"gw.example.com":    "http://gw.example.com",
			"":                  g.URL(),
		} {
			status, body := hostRequest(t, g.URL(), "/v1/mcp/registry.json", host, nil)
			urls := gatewayURLs(t, status, body)
			if len(urls) != 2 || urls[0] != base+"/mcp" || urls[1] != base+"/mcp/demo" {
				t.Fatalf("registry.json with Host %q: %v, want URLs under %s", host, urls, base)
			}
			if status, body := hostRequest(t, g.URL(), "/metrics", host, nil); status != http.StatusOK || !strings.Contains(body, "# HELP") {
				t.Fatalf("/metrics with Host %q: HTTP %d", host, status)
			}
		}
	})
	t.Run("health probes take any Host", func(t *testing.T) {
		for _, path := range []string{"/health/liveliness", "/health/readiness"} {
			if status, body := hostRequest(t, g.URL(), path, "10.1.2.3:"+port, nil); status != http.StatusOK {
				t.Fatalf("%s with a pod address as Host: HTTP %d %s", path, status, body)
			}
		}
	})
}

// Behind a trusted proxy registry.json's base is the forwarded host, as
// before; a foreign Host is refused all the same.
func TestSecurityRegistryJSONBehindTrustedProxy(t *testing.T) {
	demo, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, enable_mcp_registry: true,
  use_x_forwarded_for: true, mcp_trusted_proxy_ranges: ["127.0.0.1/32"]}
mcp_servers:
  demo: {url: %q}
`, master, demo), nil)
	fwd := http.Header{"X-Forwarded-For": {"10.1.2.3"}, "X-Forwarded-Host": {"mcp.example.com"}, "X-Forwarded-Proto": {"https"}}
	t.Run("forwarded host is the base", func(t *testing.T) {
		status, body := hostRequest(t, g.URL(), "/v1/mcp/registry.json", "", fwd)
		urls := gatewayURLs(t, status, body)
		if len(urls) != 2 || urls[0] != "https://mcp.example.com/mcp" || urls[1] != "https://mcp.example.com/mcp/demo" {
			t.Fatalf("registry.json behind a trusted proxy: %v", urls)
		}
	})
	for _, path := range []string{"/v1/mcp/registry.json", "/metrics"} {
		t.Run("foreign Host with a forwarded host "+path, func(t *testing.T) {
			status, body := hostRequest(t, g.URL(), path, "evil.example.com", fwd)
			wantREST(t, path+" with a foreign Host behind a trusted proxy", status, body, http.StatusForbidden, "MCPBUS_FORBIDDEN",
				`Host "evil.example.com" is not allowed on `+path)
		})
	}
}
