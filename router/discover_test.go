package router

import (
	"encoding/json"
	"testing"
)

// What a stateless-era client is told it may use: list changes and
// resource subscriptions (on the ingress's subscriptions/listen), no legacy
// tasks; everything else as the upstream said.
func TestModernCapabilities(t *testing.T) {
	in := json.RawMessage(`{"tools":{"listChanged":true},"resources":{"subscribe":true,"listChanged":true},
		"prompts":{},"logging":{},"completions":{},"tasks":{"list":{}},"experimental":{"x":{}},"extensions":{"io.example/y":{}}}`)
	var got map[string]json.RawMessage
	if err := json.Unmarshal(modernCapabilities(in), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tools": `{"listChanged":true}`, "resources": `{"subscribe":true,"listChanged":true}`, "prompts": `{}`, "logging": `{}`, "completions": `{}`,
		"experimental": `{"x":{}}`, "extensions": `{"io.example/y":{}}`}
	if len(got) != len(want) {
		t.Fatalf("got %s", modernCapabilities(in))
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s: got %s, want %s", k, got[k], v)
		}
	}
	if string(modernCapabilities(json.RawMessage(`null`))) != `{}` {
		t.Error("no capabilities: want {}")
	}
}
