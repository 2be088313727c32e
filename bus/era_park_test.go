package bus

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParkedCall(t *testing.T) {
	state := ParkState("github", "Tok3n", 42, "S3cret")
	params := json.RawMessage(`{"name":"t","requestState":"` + state + `"}`)
	ref, ok := ParkedCall(params)
	if !ok || ref != (ParkRef{"github", "Tok3n", "42", "S3cret"}) {
		t.Fatalf("ParkedCall(%s) = %+v %v", params, ref, ok)
	}
	if got := ref.Subject(); got != Root+".s2c.github.Tok3n.p42" {
		t.Fatalf("subject %s", got)
	}
	if n, ok := ParkKey("p42"); !ok || n != "42" {
		t.Fatalf("ParkKey(p42) = %q %v", n, ok)
	}
	for _, bad := range []string{
		`{"requestState":"mcpbus-park.github.Tok3n.42"}`,                                  // no secret
		`{"requestState":"mcpbus-park.git*hub.Tok3n.42.s"}`,                               // a wildcard
		`{"requestState":"mcpbus-park.github.Tok>n.42.s"}`,                                // a wildcard
		`{"requestState":"mcpbus-park.github.Tok3n.4x2.s"}`,                               // not a number
		`{"requestState":"mcpbus-park.github.Tok3n.42.s.extra"}`,                          // a token too many
		`{"requestState":"mcpbus-park.github.Tok3n.42.` + strings.Repeat("s", 300) + `"}`, // too long
		`{"requestState":"someone-elses-state"}`,
		`{"requestState":42}`,
		`{"name":"mcpbus-park.github.Tok3n.42.s"}`, // not the requestState
	} {
		if ref, ok := ParkedCall(json.RawMessage(bad)); ok {
			t.Errorf("ParkedCall(%s) = %+v: want refused", bad, ref)
		}
	}
	for _, bad := range []string{"42", "p", "p4x", "px"} {
		if _, ok := ParkKey(bad); ok {
			t.Errorf("ParkKey(%q) accepted", bad)
		}
	}
}
