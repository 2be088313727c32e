package bus

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	in := Envelope{
		RequestID: "req-1",
		Caller: Identity{KeyID: "k1", Alias: "ci-bot", Team: "platform", Org: "acme", User: "auth0|alice@example.com",
			Permissions: Permissions{Servers: []string{"github"}, Outer: &ServerScope{Groups: []string{"eng"}},
				Tools: map[string][]string{"github": {"search"}}}},
		IPClass:         Internal,
		Deadline:        time.UnixMilli(1_790_000_000_123),
		Stream:          "_INBOX.abc",
		Servers:         []string{"github", "internal-db"},
		Session:         "s-1",
		ProtocolVersion: "2025-06-18",
		Forward:         map[string]string{"X-Mcp-Github-Authorization": "Bearer gh", "X-Tenant": "t1"},
	}
	out, err := ReadEnvelope(in.Header())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the envelope:\n in: %+v\nout: %+v", in, out)
	}
}

func TestEnvelopeFailsClosed(t *testing.T) {
	for _, class := range []string{"", "INTERNAL", "internal ", "public"} {
		h := nats.Header{}
		if class != "" {
			h.Set(HeaderIPClass, class)
		}
		e, err := ReadEnvelope(h)
		if err != nil {
			t.Fatal(err)
		}
		if e.IPClass != External {
			t.Errorf("ip class header %q read as %q, want external", class, e.IPClass)
		}
	}
	h := nats.Header{}
	h.Set(HeaderDeadline, "soon")
	if _, err := ReadEnvelope(h); err == nil {
		t.Error("a malformed deadline was accepted")
	}
}

func TestEnvelopeKeepsOtherHeaders(t *testing.T) {
	h := nats.Header{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	(&Envelope{RequestID: "r"}).WriteTo(h)
	if HeaderCarrier(h).Get("Traceparent") == "" {
		t.Fatal("WriteTo dropped the trace context")
	}
}

func TestRedactedHidesEveryCredential(t *testing.T) {
	s := ServerSpec{Name: "x", URL: "https://u:pw1@h/mcp?k=qv1", AuthValue: "av1", StaticHeaders: map[string]string{"X-K": "sv1"},
		ClientSecret: "cs1", TokenURL: "https://t/?secret=ts1", AWSAccessKeyID: "ak1", AWSSecretAccessKey: "sk1", AWSSessionToken: "st1",
		Args: []string{"--token", "argsecret"}, Env: map[string]string{"API_KEY": "envsecret"}}
	out := fmt.Sprintf("%+v", s.Redacted())
	for _, secret := range []string{"pw1", "qv1", "av1", "sv1", "cs1", "ts1", "ak1", "sk1", "st1", "argsecret", "envsecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("Redacted() shows %q: %s", secret, out)
		}
	}
}

func TestUsageSubjectIsAlwaysWellFormed(t *testing.T) {
	for _, c := range []struct{ team, server, tool, want string }{
		{"platform", "github", "search_issues", "mcpbus.v1.usage.platform.github.search_issues"},
		{"", "github", "", "mcpbus.v1.usage._noteam.github._none"},
		{"a.b", "s", "x*y>z w", "mcpbus.v1.usage.a_b.s.x_y_z_w"},
	} {
		if got := UsageSubject(c.team, c.server, c.tool); got != c.want {
			t.Errorf("UsageSubject(%q, %q, %q) = %q, want %q", c.team, c.server, c.tool, got, c.want)
		}
	}
}
