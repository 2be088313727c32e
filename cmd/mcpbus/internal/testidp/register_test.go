package testidp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func register(t *testing.T, idp *IdP, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(idp.Issuer()+"/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// A public client registered dynamically (as the MCP TypeScript SDK does)
// completes the code flow, from a loopback port other than the one it
// registered; registrations a real server refuses are refused.
func TestDynamicRegistration(t *testing.T) {
	idp := start(t)
	status, out := register(t, idp, `{"redirect_uris":["http://localhost:3333/oauth/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"client_name":"e2e"}`)
	id, _ := out["client_id"].(string)
	if status != http.StatusCreated || id == "" || out["client_secret"] != nil || out["client_name"] != "e2e" {
		t.Fatalf("register: %d %v", status, out)
	}
	tok, err := idp.AuthorizationCodeFlow(context.Background(), id, "http://localhost:4444/oauth/callback", resource, "alice", "alice-pw", "openid", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	if claims, verr := validate(t, idp, resource, tok.AccessToken); verr != nil || claims.All["client_id"] != id || tok.RefreshToken == "" {
		t.Errorf("token of the registered client: %v %+v", verr, claims)
	}

	status, out = register(t, idp, `{"redirect_uris":["http://localhost/cb"],"token_endpoint_auth_method":"client_secret_post"}`)
	if secret, _ := out["client_secret"].(string); status != http.StatusCreated || secret == "" {
		t.Errorf("confidential registration: %d %v", status, out)
	}

	for body, want := range map[string]string{
		`{"redirect_uris":["http://evil.example.test/cb"],"token_endpoint_auth_method":"none"}`:                              "invalid_redirect_uri",
		`{"token_endpoint_auth_method":"none"}`:                                                                              "invalid_redirect_uri",
		`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}`: "invalid_client_metadata",
		`{"redirect_uris":["http://127.0.0.1/cb"],"response_types":["token"]}`:                                               "invalid_client_metadata",
		`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"private_key_jwt"}`:                           "invalid_client_metadata",
		`not json`: "invalid_client_metadata",
	} {
		if status, out := register(t, idp, body); status != http.StatusBadRequest || out["error"] != want {
			t.Errorf("%s: %d %v, want 400 %s", body, status, out, want)
		}
	}
}
