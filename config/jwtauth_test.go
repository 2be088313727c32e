package config

import (
	"reflect"
	"strings"
	"testing"
)

// LiteLLM's JWT settings become typed issuers: the top-level claim fields
// are every issuer's defaults, an issuer's own win, the authorization
// servers default to the issuers, and LiteLLM's keys mcpbus does not use
// are named in a warning.
func TestOAuthSettings(t *testing.T) {
	src := `
general_settings:
  master_key: sk-master
  enable_jwt_auth: true
  litellm_jwtauth:
    team_ids_jwt_field: groups
    team_id_default: everyone
    user_id_upsert: true
    issuers:
      - issuer: https://keycloak.example.com/realms/r
        audience: [mcpbus, account]
        user_email_jwt_field: mail
      - issuer: http://127.0.0.1:9000
        jwks_url: http://127.0.0.1:9000/keys
        team_id_jwt_field: tid
        algorithms: ES256
  mcp_oauth:
    resource: https://mcp.example.com/
    scopes_supported: [mcp]
`
	f, err := Parse("c.yaml", []byte(src), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := OAuth{Enabled: true, Resource: "https://mcp.example.com", Scopes: []string{"mcp"}, TeamIDDefault: "everyone",
		AuthorizationServers: []string{"https://keycloak.example.com/realms/r", "http://127.0.0.1:9000"},
		Issuers: []Issuer{
			{Issuer: "https://keycloak.example.com/realms/r", Audiences: []string{"mcpbus", "account"},
				Claims: ClaimFields{UserID: "sub", UserEmail: "mail", TeamIDs: "groups"}},
			{Issuer: "http://127.0.0.1:9000", JWKSURL: "http://127.0.0.1:9000/keys", Algorithms: []string{"ES256"},
				Claims: ClaimFields{UserID: "sub", UserEmail: "email", TeamIDs: "groups", TeamID: "tid"}},
		}}
	if !reflect.DeepEqual(f.OAuth, want) {
		t.Fatalf("got  %+v\nwant %+v", f.OAuth, want)
	}
	if w := strings.Join(f.Warnings, "\n"); !strings.Contains(w, "litellm_jwtauth: ignoring LiteLLM settings mcpbus does not use: user_id_upsert") {
		t.Fatalf("warnings: %s", w)
	}

	// The environment form, with the issuer mcpbus also needs.
	f, err = Parse("c.yaml", []byte("general_settings:\n  enable_jwt_auth: true\n  mcp_oauth: {resource: https://mcp.example.com}\n"),
		mapEnv(map[string]string{"JWT_ISSUER": "https://idp.example.com", "JWT_PUBLIC_KEY_URL": "https://idp.example.com/keys", "JWT_AUDIENCE": "a, b"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.OAuth.Issuers; len(got) != 1 || got[0].JWKSURL != "https://idp.example.com/keys" || !reflect.DeepEqual(got[0].Audiences, []string{"a", "b"}) || got[0].Claims.UserID != "sub" {
		t.Fatalf("environment issuer: %+v", got)
	}

	// Off: nothing is trusted, and the settings written are said to be unused.
	f, err = Parse("c.yaml", []byte("general_settings:\n  litellm_jwtauth: {issuers: [{issuer: https://i.example.com}]}\n"), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if f.OAuth.Enabled || len(f.OAuth.Issuers) != 0 || !strings.Contains(strings.Join(f.Warnings, "\n"), "enable_jwt_auth: is not true") {
		t.Fatalf("disabled: %+v %v", f.OAuth, f.Warnings)
	}
}
