package ingress

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The registration shim: the provider's metadata published as the
// gateway's with the shim's endpoint, and every client that registers a
// loopback or listed redirect URI given the provider's one public client.
func TestRegistrationShim(t *testing.T) {
	var idp *httptest.Server
	idp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tenant/v2.0/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": idp.URL + "/tenant/v2.0", "authorization_endpoint": idp.URL + "/authorize",
			"token_endpoint": idp.URL + "/token", "jwks_uri": idp.URL + "/keys", "code_challenge_methods_supported": []string{"plain", "S256"}})
	}))
	t.Cleanup(idp.Close)
	is := newTestIssuer(t)
	o := is.options(t)
	o.AuthorizationServers = []string{testResource}
	o.Registration = &Registration{ClientID: "entra-app-1", RedirectURIs: []string{"https://claude.ai/api/mcp/auth_callback"}, Issuer: idp.URL + "/tenant/v2.0"}
	o.HTTPClient = idp.Client()
	h := newHarness(t, Options{OAuth: o}, nil)

	resp := do(t, http.MethodGet, h.url+WellKnownAuthorizationServer, nil, "")
	var md map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || md["issuer"] != testResource || md["authorization_endpoint"] != idp.URL+"/authorize" ||
		md["token_endpoint"] != idp.URL+"/token" || md["registration_endpoint"] != testResource+RegisterPath ||
		md["client_id_metadata_document_supported"] != false {
		t.Fatalf("metadata: HTTP %d %v", resp.StatusCode, md)
	}
	if m, _ := md["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
		t.Fatalf("PKCE methods: %v", md["code_challenge_methods_supported"])
	}

	register := func(body string) (int, map[string]any) {
		resp := do(t, http.MethodPost, h.url+RegisterPath, nil, body)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	for _, uris := range []string{`["http://127.0.0.1:33418/callback"]`, `["http://localhost:6274/oauth/callback/debug"]`, `["https://claude.ai/api/mcp/auth_callback"]`} {
		code, out := register(`{"client_name":"Inspector","redirect_uris":` + uris + `,"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`)
		if code != http.StatusCreated || out["client_id"] != "entra-app-1" || out["client_secret"] != nil || out["token_endpoint_auth_method"] != "none" {
			t.Errorf("register %s: HTTP %d %v", uris, code, out)
		}
	}
	for body, want := range map[string]string{
		`{"redirect_uris":["https://evil.example/cb"]}`:                                                "invalid_redirect_uri",
		`{"redirect_uris":["http://127.0.0.1.evil.example/cb"]}`:                                       "invalid_redirect_uri",
		`{"redirect_uris":[]}`:                                                                         "invalid_redirect_uri",
		`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}`: "invalid_client_metadata",
		`[1,2]`: "invalid_client_metadata",
	} {
		code, out := register(body)
		if code != http.StatusBadRequest || out["error"] != want || out["error_description"] == "" {
			t.Errorf("register %s: HTTP %d %v, want 400 %s", body, code, out, want)
		}
	}

	// The resource metadata names the gateway as the authorization server.
	resp = do(t, http.MethodGet, h.url+WellKnownProtectedResource+"/mcp", nil, "")
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != testResource {
		t.Fatalf("resource metadata: %+v", prm)
	}
}
