package config

import (
	"reflect"
	"testing"
)

// mcp_allowed_origins reaches the ingress normalized: scheme and host in
// lower case, no trailing "/", environment references resolved, a
// comma-separated string split.
func TestAllowedOrigins(t *testing.T) {
	env := mapEnv(map[string]string{"MORE": "https://a.example.com, b.example.com:8443"})
	f, err := Parse("config.yaml", []byte("general_settings:\n  mcp_allowed_origins: os.environ/MORE\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://a.example.com", "b.example.com:8443"}; !reflect.DeepEqual(f.AllowedOrigins, want) {
		t.Fatalf("from a comma-separated string: %v, want %v", f.AllowedOrigins, want)
	}
	f, err = Parse("config.yaml", []byte("general_settings:\n  mcp_allowed_origins: [HTTPS://App.Example.com/, gw.example.com, \"[::1]:9000\", chrome-extension://abc]\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://app.example.com", "gw.example.com", "[::1]:9000", "chrome-extension://abc"}; !reflect.DeepEqual(f.AllowedOrigins, want) {
		t.Fatalf("allowed origins %v, want %v", f.AllowedOrigins, want)
	}
	if f, err := Parse("config.yaml", []byte("general_settings: {}\n"), env); err != nil || f.AllowedOrigins != nil {
		t.Fatalf("unset: %v %v", f.AllowedOrigins, err)
	}
}
