package bus

import (
	"encoding/json"
	"testing"
)

func TestServerRequestReplySubject(t *testing.T) {
	id, _ := json.Marshal(ServerRequestID("demo", "w1abc", 42))
	subj, ok := ServerRequestReplySubject(id)
	if !ok || subj != Root+".s2c.demo.w1abc.42" {
		t.Fatalf("ServerRequestReplySubject(%s) = %q, %v", id, subj, ok)
	}
	for _, bad := range []string{`7`, `"x"`, `"mcpbus-s2c.demo.w1.4x"`, `"mcpbus-s2c.demo.w*.1"`, `"mcpbus-s2c.demo..1"`, `"mcpbus-s2c.demo.a>.1"`,
		`"mcpbus-s2c.demo.w1"`, `"mcpbus-s2c.w1.1"`, `"mcpbus-s2c.*.w1.1"`, `"mcpbus-s2c..w1.1"`} {
		if s, ok := ServerRequestReplySubject(json.RawMessage(bad)); ok {
			t.Errorf("id %s was accepted as a gateway id (subject %q): a client could publish anywhere", bad, s)
		}
	}
}

func TestEnvelopeCarriesClientCapabilities(t *testing.T) {
	in := Envelope{ClientCapabilities: json.RawMessage(`{"sampling":{},"roots":{"listChanged":true}}`), LogLevel: "debug"}
	out, err := ReadEnvelope(in.Header())
	if err != nil {
		t.Fatal(err)
	}
	if string(out.ClientCapabilities) != string(in.ClientCapabilities) || out.LogLevel != "debug" {
		t.Fatalf("round trip lost capabilities or level: %+v", out)
	}
	if !PrivateCapabilities(out.ClientCapabilities) || PrivateCapabilities(json.RawMessage(`{"experimental":{}}`)) {
		t.Fatal("PrivateCapabilities misjudged")
	}
}
