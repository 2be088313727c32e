package bus

import (
	"strings"
	"testing"
)

// A caller's token reaches only the exchanging server's workers: the
// ingress may send it to any server's exchange subject, a worker of gh
// serves gh's alone and sends to none; and the request is bounded.
func TestTokenExchangeSubjectsAndBounds(t *testing.T) {
	has := func(l []string, s string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	w := RolePermissions("w", []Role{RoleWorkers}, []string{"gh"})
	if !has(w.Subscribe.Allow, ToolOAuthExchange("gh")) || has(w.Subscribe.Allow, ToolOAuthExchange("*")) || has(w.Publish.Allow, ToolOAuthExchange("*")) {
		t.Errorf("a worker of gh: subscribe %v, publish %v", w.Subscribe.Allow, w.Publish.Allow)
	}
	in := RolePermissions("i", []Role{RoleIngress}, nil)
	if !has(in.Publish.Allow, ToolOAuthExchange("*")) {
		t.Errorf("the ingress cannot hand tokens to exchange: %v", in.Publish.Allow)
	}
	for name, x := range map[string]OAuthExchange{
		"no user":       {SubjectToken: "eyJ.a.b"},
		"not a key":     {User: "alice", SubjectToken: "eyJ.a.b"},
		"no token":      {User: "user:alice"},
		"space":         {User: "user:alice", SubjectToken: "eyJ a.b"},
		"CRLF":          {User: "user:alice", SubjectToken: "eyJ\r\n.a.b"},
		"too long":      {User: "user:alice", SubjectToken: strings.Repeat("a", MaxSubjectTokenLen+1)},
		"user too long": {User: "user:" + strings.Repeat("a", MaxUserIDLen+8), SubjectToken: "eyJ.a.b"},
	} {
		if x.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if ok := (OAuthExchange{User: "user:alice@example.com", SubjectToken: "eyJ.a.b"}); ok.Validate() != nil {
		t.Error("a good request refused")
	}
}
