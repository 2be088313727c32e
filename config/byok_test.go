package config

import (
	"strings"
	"testing"
)

// is_byok (LiteLLM's bring-your-own-key flag) loads into the record and
// the upstream; a server it cannot apply to is an error naming the path, and
// a misspelt key is an error, not ignored.
func TestBYOKServer(t *testing.T) {
	f, err := Parse("config.yaml", []byte(`
mcp_servers:
  github:
    url: https://api.example.com/mcp
    auth_type: bearer_token
    is_byok: true
`), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Servers[0].BYOK {
		t.Fatalf("is_byok not read: %+v", f.Servers[0])
	}
	up, err := Provision(f.Servers[0], mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !up.BYOK || !up.CredentialFromRequest || len(up.Header) != 0 {
		t.Errorf("upstream: byok %v, from request %v, header %v", up.BYOK, up.CredentialFromRequest, up.Header)
	}

	for name, tc := range map[string]struct{ src, want string }{
		"no header auth_type": {"    auth_type: oauth2\n    token_url: https://a.example.com/t\n    client_id: c\n    client_secret: s\n",
			"mcp_servers.github.is_byok: each user brings their own credential"},
		"no auth_type":        {"", "(got none)"},
		"a shared auth_value": {"    auth_type: api_key\n    auth_value: k-123456\n", "no auth_value"},
		"stdio":               {"    transport: stdio\n    command: node\n    auth_type: token\n", "transport http or sse"},
	} {
		_, err := Parse("config.yaml", []byte("mcp_servers:\n  github:\n    url: https://api.example.com/mcp\n    is_byok: true\n"+tc.src), mapEnv(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mcp_servers.github.is_byok") {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "k-123456") {
			t.Errorf("%s: the error quotes the value: %v", name, err)
		}
	}
	_, err = Parse("config.yaml", []byte("mcp_servers:\n  github:\n    url: https://api.example.com/mcp\n    auth_type: token\n    is_bYok: true\n"), mapEnv(nil))
	if err == nil || !strings.Contains(err.Error(), "is_bYok") {
		t.Errorf("misspelt key: %v", err)
	}
}
