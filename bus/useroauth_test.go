package bus

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// A URL elicitation crosses the bus in its two headers and comes out as
// 2025-11-25's URLElicitationRequiredError data; a malformed one is
// dropped, not relayed.
func TestURLElicitationTravels(t *testing.T) {
	e := Errorf(ErrURLElicitationRequired, "sign in to github: open https://gw.example/oauth/authorize/github?ticket=x")
	e.Elicitation = &URLElicitation{ID: "abc_1", URL: "https://gw.example/oauth/authorize/github?ticket=x"}
	msg := &nats.Msg{Header: nats.Header{micro.ErrorCodeHeader: {e.Kind.Code}, micro.ErrorHeader: {e.Message},
		HeaderElicitationID: {e.Elicitation.ID}, HeaderElicitationURL: {e.Elicitation.URL}}}
	got := ReplyError(msg)
	if got.Elicitation == nil || *got.Elicitation != *e.Elicitation {
		t.Fatalf("elicitation after the bus: %+v", got.Elicitation)
	}
	var body struct {
		Error struct {
			Code int `json:"code"`
			Data struct {
				Elicitations []map[string]string `json:"elicitations"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(ErrorResponse(json.RawMessage(`7`), got), &body); err != nil {
		t.Fatal(err)
	}
	if body.Error.Code != -32042 || len(body.Error.Data.Elicitations) != 1 {
		t.Fatalf("answer %+v", body)
	}
	el := body.Error.Data.Elicitations[0]
	if el["mode"] != "url" || el["elicitationId"] != "abc_1" || el["url"] != e.Elicitation.URL || !strings.Contains(el["message"], "sign in") {
		t.Errorf("elicitation %v", el)
	}
	if ErrURLElicitationRequired.ModernRPC() != -32042 {
		t.Errorf("a stateless-era client gets %d, want the spec's -32042", ErrURLElicitationRequired.ModernRPC())
	}
	for _, bad := range []URLElicitation{{ID: "x", URL: "javascript:alert(1)"}, {ID: "x", URL: "https://a b"},
		{ID: "", URL: "https://a"}, {ID: "x y", URL: "https://a"}, {ID: "x", URL: "https://" + strings.Repeat("a", MaxElicitationURLLen)}} {
		msg.Header.Set(HeaderElicitationID, bad.ID)
		msg.Header.Set(HeaderElicitationURL, bad.URL)
		if got := ReplyError(msg); got.Elicitation != nil {
			t.Errorf("%+v relayed", bad)
		}
	}
}

// What a browser brings is bounded and checked before it reaches a subject.
func TestOAuthFlowBodies(t *testing.T) {
	secret := NewFlowSecret()
	if (&OAuthStart{Ticket: secret}).Validate() != nil {
		t.Errorf("a fresh ticket refused")
	}
	for _, bad := range []string{"", "short", secret + "x", strings.Repeat("!", FlowSecretLen)} {
		if (&OAuthStart{Ticket: bad}).Validate() == nil {
			t.Errorf("ticket %q accepted", bad)
		}
	}
	state := FlowState("github", secret)
	if s, ok := FlowStateServer(state); !ok || s != "github" {
		t.Errorf("state names %q %v", s, ok)
	}
	good := OAuthFinish{State: state, Code: "abc", Iss: "https://idp"}
	if e := good.Validate(); e != nil {
		t.Errorf("good answer refused: %v", e)
	}
	for name, f := range map[string]OAuthFinish{
		"no state":       {Code: "abc"},
		"bad server":     {State: "a.b." + secret, Code: "abc"},
		"code with ctl":  {State: state, Code: "a\nb"},
		"long code":      {State: state, Code: strings.Repeat("a", MaxAuthCodeLen+1)},
		"neither":        {State: state},
		"long error":     {State: state, Error: strings.Repeat("e", MaxFlowErrorLen+1)},
		"iss with ctl":   {State: state, Code: "abc", Iss: "x\ry"},
		"desc too long":  {State: state, Error: "access_denied", ErrorDescription: strings.Repeat("d", MaxFlowErrorDescLen+1)},
		"code has space": {State: state, Code: "a b"},
	} {
		if f.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A worker of one server may write its own servers' user credentials and
// sign-ins in progress, and no one else's.
func TestWorkerWritesOnlyItsServersUserKeys(t *testing.T) {
	p := RolePermissions("w", []Role{RoleWorkers}, []string{"gh"})
	allow := map[string]bool{}
	for _, s := range p.Publish.Allow {
		allow[s] = true
	}
	for _, s := range []string{KVSubject(BucketUserCredentials, "*.gh"), KVSubject(BucketOAuthFlows, "gh.>"), ToolOAuthStart("*"), ToolOAuthFinish("*")} {
		want := s != ToolOAuthStart("*") && s != ToolOAuthFinish("*") // workers answer those, they do not send them
		if allow[s] != want {
			t.Errorf("publish %s allowed %t, want %t", s, allow[s], want)
		}
	}
	for _, s := range []string{KVSubject(BucketUserCredentials, ">"), KVSubject(BucketUserCredentials, "*.other"), KVSubject(BucketOAuthFlows, ">")} {
		if allow[s] {
			t.Errorf("a worker of gh may publish %s", s)
		}
	}
	subs := map[string]bool{}
	for _, s := range p.Subscribe.Allow {
		subs[s] = true
	}
	if !subs[ToolOAuthStart("gh")] || !subs[ToolOAuthFinish("gh")] || subs[ToolOAuthStart("*")] {
		t.Errorf("a worker of gh serves the flow subjects of gh only: %v", p.Subscribe.Allow)
	}
}

// The browser's user a start carries is a user key, bounded, or nothing.
func TestOAuthStartUser(t *testing.T) {
	ticket := NewFlowSecret()
	for user, ok := range map[string]bool{"": true, "user:alice@example.com": true, "key:" + strings.Repeat("a", 64): true,
		"alice": false, "user:a\r\nb": false, "user:" + strings.Repeat("a", MaxUserIDLen+8): false} {
		s := OAuthStart{Ticket: ticket, User: user}
		if e := s.Validate(); (e == nil) != ok {
			t.Errorf("user %q: %v", user, e)
		}
	}
	if got := AccountOfUserKey("key:" + strings.Repeat("ab", 32)); got != "key abababab" {
		t.Errorf("a key's account: %q", got)
	}
}
