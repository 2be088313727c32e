package bus

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// LiteLLM's member field is one member or a list; anything else is
// refused naming the field.
func TestOrgMembersOneOrList(t *testing.T) {
	var in OrgMemberAddRequest
	if err := json.Unmarshal([]byte(`{"organization_id":"o","member":{"user_id":"u1","role":"org_admin"}}`), &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Member) != 1 || in.Member[0].UserID != "u1" || in.Member[0].Role != OrgRoleAdmin {
		t.Fatalf("one member: %+v", in.Member)
	}
	if err := json.Unmarshal([]byte(`{"member":[{"user_id":"u1","role":"org_admin"},{"user_email":"b@x","role":"internal_user"}]}`), &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Member) != 2 || in.Member[1].UserEmail != "b@x" {
		t.Fatalf("two members: %+v", in.Member)
	}
	for _, bad := range []string{`{"member":"u1"}`, `{"member":{"user_id":5}}`, `{"member":[1]}`} {
		err := json.Unmarshal([]byte(bad), &in)
		if err == nil || !strings.HasPrefix(err.Error(), "member:") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestValidUserID(t *testing.T) {
	for _, ok := range []string{"alice", "alice@example.com", "8f14e45f-ceea-467f-a0a2-2f8a3b4c5d6e", "auth0|abc"} {
		if !ValidUserID(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "a b", "a\nb", "é", strings.Repeat("u", MaxUserIDLen+1)} {
		if ValidUserID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Outer (the organization's limit, apart from the key's and the team's)
// must admit a server too, and travels in the envelope.
func TestPermissionsOuter(t *testing.T) {
	p := Permissions{Groups: []string{"eng"}, Outer: &ServerScope{Servers: []string{"a"}}}
	a := ServerSpec{Name: "a", AccessGroups: []string{"eng"}}
	b := ServerSpec{Name: "b", AccessGroups: []string{"eng"}}
	back := DecodePermissions(EncodePermissions(p))
	for _, q := range []Permissions{p, back} {
		if !q.AllowsServer(a) || q.AllowsServer(b) {
			t.Fatalf("outer scope not applied: %+v", q)
		}
	}
}

// An organization id in the envelope is an id: anything else stops the
// message.
func TestEnvelopeOrgIsAnID(t *testing.T) {
	h := nats.Header{}
	h.Set(HeaderOrg, "acme.*")
	if _, err := ReadEnvelope(h); err == nil {
		t.Fatal("a wildcard organization id was accepted")
	}
	h.Set(HeaderOrg, "acme")
	if env, err := ReadEnvelope(h); err != nil || env.Caller.Org != "acme" {
		t.Fatalf("%+v %v", env.Caller, err)
	}
}
