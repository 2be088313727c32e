package config

import (
	"os"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// Every config key mcpbus reads is in docs/CONFIG.md, as `key`: a key added
// to the reader without its line fails here.
func TestEveryConfigKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	for where, keys := range map[string][]string{"top level": topLevelKeys, "general_settings": generalKeys, "mcp_servers.<name>": serverKeys} {
		for _, k := range keys {
			if !strings.Contains(string(doc), "`"+k+"`") {
				t.Errorf("%s key %s is not documented in docs/CONFIG.md", where, k)
			}
		}
	}
}

// The key lists keys.go checks against are the keys the readers take: a
// misspelling of each is caught, and each itself passes.
func TestKnownKeysAreRead(t *testing.T) {
	for _, k := range serverKeys {
		if k == "server_name" || k == "name" || k == "mcp_info" || k == "cost_per_query" {
			continue // read with their own rules
		}
		src := "mcp_servers:\n  s:\n    url: https://s.example.com/mcp\n    " + k + ": null\n"
		_, err := Parse("c.yaml", []byte(src), mapEnv(nil))
		if err != nil && strings.Contains(err.Error(), "unknown key") {
			t.Errorf("server key %s is listed as known but the reader does not take it: %v", k, err)
		}
	}
}

// Every field bus.ServerFields seals is named in docs/SECURITY.md's list of
// sealed fields, and every field it redacts in docs/CONFIG.md's table: a
// credential added to the table without its documentation fails here.
func TestSealedFieldsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sealed, _ := strings.Cut(string(doc), "Sealed\nfields:")
	if sealed == "" {
		_, sealed, _ = strings.Cut(string(doc), "Sealed fields:")
	}
	sealed, _, _ = strings.Cut(sealed, "Not sealed:")
	if sealed == "" {
		t.Fatal(`docs/SECURITY.md has no "Sealed fields: ... Not sealed:" passage`)
	}
	for _, f := range bus.ServerFields {
		if f.Secrecy != bus.Plain && f.Secrecy != bus.RedactEach && !strings.Contains(sealed, "`"+f.Name+"`") {
			t.Errorf("field %s is sealed at rest but docs/SECURITY.md's sealed fields do not name it", f.Name)
		}
	}
}
