package config

import (
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// secretEnv resolves every variable to a value holding secretMarker, so any
// resolved value that reaches an error shows up.
func secretEnv(name string) (string, bool) {
	switch name {
	case "BAD_URL":
		return "ftp://SECRET@x.example.com/?k=SECRET", true
	case "NO_HOST_URL":
		return "https:///SECRET", true
	case "UNPARSABLE_URL":
		return "http://[SECRET", true
	case "BAD_TRANSPORT":
		return "SECRET-transport", true
	case "BAD_AUTH_TYPE":
		return "SECRET-type", true
	case "BAD_SPEC":
		return "SECRET-spec", true
	case "BAD_TIMEOUT":
		return "SECRET-timeout", true
	case "NEWLINE":
		return "SECRET\r\nX: 1", true
	case "BAD_ALIAS":
		return "SECRET alias", true
	case "BAD_HEADER_NAME":
		return "SECRET header", true
	case "UNSET":
		return "", false
	}
	return "SECRET-" + name, true
}

// TestNoSecretInErrors drives every error Provision can return with
// credentials and environment values that hold secretMarker, and checks that
// no message carries one. Parse-level paths are covered by the golden files,
// whose outputs TestGolden checks the same way.
func TestNoSecretInErrors(t *testing.T) {
	base := bus.ServerSpec{
		Name: "s", URL: "https://u:SECRET-pw@s.example.com/mcp?token=SECRET-q",
		AuthType: "bearer_token", AuthValue: "SECRET-value",
		StaticHeaders: map[string]string{"X-Key": "SECRET-header"},
	}
	mods := map[string]func(*bus.ServerSpec){
		"bad scheme":           func(s *bus.ServerSpec) { s.URL = "ftp://u:SECRET@s.example.com/?q=SECRET" },
		"bad scheme env":       func(s *bus.ServerSpec) { s.URL = "os.environ/BAD_URL" },
		"no host env":          func(s *bus.ServerSpec) { s.URL = "os.environ/NO_HOST_URL" },
		"no host":              func(s *bus.ServerSpec) { s.URL = "https://:SECRET@/x?a=SECRET" },
		"unparsable":           func(s *bus.ServerSpec) { s.URL = "http://[SECRET" },
		"unparsable env":       func(s *bus.ServerSpec) { s.URL = "os.environ/UNPARSABLE_URL" },
		"missing url var":      func(s *bus.ServerSpec) { s.URL = "os.environ/UNSET" },
		"transport env":        func(s *bus.ServerSpec) { s.Transport = "os.environ/BAD_TRANSPORT" },
		"auth type env":        func(s *bus.ServerSpec) { s.AuthType = "os.environ/BAD_AUTH_TYPE" },
		"auth type":            func(s *bus.ServerSpec) { s.AuthType = "SECRET" },
		"missing value var":    func(s *bus.ServerSpec) { s.AuthValue = "os.environ/UNSET" },
		"value newline":        func(s *bus.ServerSpec) { s.AuthValue = "os.environ/NEWLINE" },
		"basic no colon":       func(s *bus.ServerSpec) { s.AuthType = "basic" },
		"header newline":       func(s *bus.ServerSpec) { s.StaticHeaders["X-Key"] = "os.environ/NEWLINE" },
		"header name":          func(s *bus.ServerSpec) { s.StaticHeaders["Bad Header"] = "SECRET" },
		"missing header var":   func(s *bus.ServerSpec) { s.StaticHeaders["X-Key"] = "os.environ/UNSET" },
		"extra header env":     func(s *bus.ServerSpec) { s.ExtraHeaders = []string{"os.environ/BAD_HEADER_NAME"} },
		"spec version env":     func(s *bus.ServerSpec) { s.SpecVersion = "os.environ/BAD_SPEC" },
		"timeout env":          func(s *bus.ServerSpec) { s.Timeout = "os.environ/BAD_TIMEOUT" },
		"timeout range":        func(s *bus.ServerSpec) { s.Timeout = "3h" },
		"alias env":            func(s *bus.ServerSpec) { s.Alias = "os.environ/BAD_ALIAS" },
		"bad name":             func(s *bus.ServerSpec) { s.Name = "bad name" },
		"empty tool":           func(s *bus.ServerSpec) { s.AllowedTools = []string{"os.environ/EMPTY_NOT_SET_UNSET"} },
		"stdio":                func(s *bus.ServerSpec) { s.Transport = "stdio" },
		"oauth2":               func(s *bus.ServerSpec) { s.AuthType = "oauth2" },
		"empty env name":       func(s *bus.ServerSpec) { s.AuthValue = "os.environ/" },
		"description env miss": func(s *bus.ServerSpec) { s.Description = "os.environ/UNSET" },
	}
	for name, mod := range mods {
		spec := base
		spec.StaticHeaders = map[string]string{"X-Key": base.StaticHeaders["X-Key"]}
		mod(&spec)
		_, err := Provision(spec, secretEnv)
		if err == nil {
			if name == "empty tool" {
				continue // resolves to a non-empty secret: no error expected
			}
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.Contains(err.Error(), secretMarker) {
			t.Errorf("%s: error leaks a secret: %s", name, err)
		}
		if !strings.HasPrefix(err.Error(), "mcp_servers") {
			t.Errorf("%s: error does not name the field: %s", name, err)
		}
	}
}

// TestNoSecretInParseErrors feeds Parse the same kind of config with a
// secret in every credential position and a fault in each field.
func TestNoSecretInParseErrors(t *testing.T) {
	faults := []string{
		"url: ftp://u:SECRET@h/?q=SECRET",
		"url: [SECRET]",
		"transport: SECRET",
		"auth_type: SECRET",
		"auth_type: basic",
		"timeout: SECRET",
		"timeout: {SECRET: 1}",
		"static_headers: [SECRET]",
		"extra_headers: SECRET",
		"available_on_public_internet: SECRET",
		"available_on_public_internet: os.environ/PUBLIC",
		"spec_version: SECRET",
		"alias: os.environ/UNSET",
		"command: [SECRET]",
		"token_url: os.environ/BAD_URL",
		"aws_session_token: [SECRET]",
	}
	for _, fault := range faults {
		key, _, _ := strings.Cut(fault, ":")
		fields := []string{
			"url: https://s.example.com/mcp",
			"auth_type: bearer_token",
			"auth_value: SECRET-value",
			"static_headers: {X-Key: SECRET}",
		}
		replaced := false
		for i, f := range fields {
			if strings.HasPrefix(f, key+":") {
				fields[i], replaced = fault, true
			}
		}
		if !replaced {
			fields = append(fields, fault)
		}
		src := "general_settings:\n  master_key: os.environ/MASTER\n  mcp_internal_ip_ranges: [os.environ/RANGE]\n" +
			"mcp_servers:\n  s:\n    " + strings.Join(fields, "\n    ") + "\n"
		_, err := Parse("config.yaml", []byte(src), secretEnv)
		if err == nil || !strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: want the range error and one for the fault, got %v", fault, err)
			continue
		}
		if strings.Contains(err.Error(), secretMarker) {
			t.Errorf("%s: error leaks a secret: %s", fault, err)
		}
		if strings.Contains(err.Error(), "invalid YAML") {
			t.Errorf("%s: test config is not valid YAML: %s", fault, err)
		}
	}
}
