package config

import (
	"encoding/base64"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func TestAuthHeader(t *testing.T) {
	encoded := base64.StdEncoding.EncodeToString([]byte("alice:pw"))
	cases := []struct {
		authType, value, name, val string
	}{
		{"none", "ignored", "", ""},
		{"", "", "", ""},
		{"api_key", "k1", "x-api-key", "k1"},
		{"bearer_token", "t1", "Authorization", "Bearer t1"},
		{"basic", "alice:pw", "Authorization", "Basic " + encoded},
		{"basic", encoded, "Authorization", "Basic " + encoded},
		{"basic", "bob:p:w", "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("bob:p:w"))},
		{"authorization", "Custom abc", "Authorization", "Custom abc"},
		{"token", "t2", "Authorization", "Token t2"},
	}
	for _, c := range cases {
		name, val, err := AuthHeader(c.authType, c.value)
		if err != nil || name != c.name || val != c.val {
			t.Errorf("AuthHeader(%q, %q) = %q, %q, %v; want %q, %q", c.authType, c.value, name, val, err, c.name, c.val)
		}
	}
	for _, c := range []struct{ authType, value, want string }{
		{"bearer_token", "", "auth_value: required when auth_type is bearer_token"},
		{"basic", "nocolon", "auth_value: must be user:password, or its base64 encoding, when auth_type is basic"},
		{"basic", base64.StdEncoding.EncodeToString([]byte("nocolon")), "auth_value: must be user:password, or its base64 encoding, when auth_type is basic"},
		{"api_key", "a\nb", "auth_value: must not contain line breaks or other control characters"},
		{"Bearer", "x", "auth_type: must be one of none, api_key, bearer_token, basic, authorization, token, oauth2, aws_sigv4"},
	} {
		if _, _, err := AuthHeader(c.authType, c.value); err == nil || err.Error() != c.want {
			t.Errorf("AuthHeader(%q): %v; want %s", c.authType, err, c.want)
		}
	}
	// oauth2 and aws_sigv4 are applied per request by the worker, not as a header.
	for _, at := range []string{"oauth2", "aws_sigv4"} {
		if name, val, err := AuthHeader(at, ""); name != "" || val != "" || err != nil {
			t.Errorf("AuthHeader(%q) = %q, %q, %v; want no header", at, name, val, err)
		}
	}
}

// TestUpstreamHeaderPerAuthType provisions one server per auth_type and
// checks the whole upstream header: the credential header and nothing else.
func TestUpstreamHeaderPerAuthType(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString([]byte("u:p"))
	cases := map[string]map[string]string{
		"none":          {},
		"api_key":       {"X-Api-Key": "v"},
		"bearer_token":  {"Authorization": "Bearer v"},
		"authorization": {"Authorization": "v"},
		"token":         {"Authorization": "Token v"},
	}
	for authType, want := range cases {
		up, err := Provision(bus.ServerSpec{Name: "s", URL: "https://s.example.com/mcp", AuthType: authType, AuthValue: "v"}, nil)
		if err != nil {
			t.Fatalf("%s: %v", authType, err)
		}
		checkHeader(t, authType, up.Header, want)
	}
	for _, v := range []string{"u:p", enc} {
		up, err := Provision(bus.ServerSpec{Name: "s", URL: "https://s.example.com/mcp", AuthType: "basic", AuthValue: v}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkHeader(t, "basic "+v, up.Header, map[string]string{"Authorization": "Basic " + enc})
	}
}

func checkHeader(t *testing.T, what string, h map[string][]string, want map[string]string) {
	t.Helper()
	if len(h) != len(want) {
		t.Errorf("%s: header %v, want %v", what, h, want)
		return
	}
	for k, v := range want {
		if got := h[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}
