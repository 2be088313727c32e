package auth

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// verifyOAuth asks auth for the identity of an OAuth caller, as the ingress
// does once it has validated the token.
func verifyOAuth(t *testing.T, nc *nats.Conn, c bus.OAuthCaller) (bus.Identity, *bus.Error) {
	t.Helper()
	body, _ := json.Marshal(bus.VerifyRequest{OAuth: &c})
	msg, err := nc.Request(bus.SubjectAuthVerify, body, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := bus.ReplyError(msg); e != nil {
		return bus.Identity{}, e
	}
	var id bus.Identity
	if err := json.Unmarshal(msg.Data, &id); err != nil {
		t.Fatal(err)
	}
	return id, nil
}

// An OAuth user is the first team of its token that exists here, with that
// team's and its organization's permissions, and is refused, with the
// reason, when no team of the token exists, the team is blocked, or the
// token's organization is not the team's.
func TestOAuthUserMapsToItsTeam(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	var org bus.OrgView
	mustCall(t, a.nc, bus.SubjectOrgNew, map[string]any{"organization_alias": "Acme", "object_permission": map[string]any{"mcp_servers": []string{"github", "jira"}}}, &org)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "eng", "organization_id": org.OrganizationID,
		"object_permission": map[string]any{"mcp_servers": []string{"github", "slack"}}}, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "ops", "object_permission": map[string]any{"mcp_servers": []string{"pager"}}}, nil)

	alice := bus.OAuthCaller{Issuer: "https://idp.example", User: "alice-sub", Email: "alice@example.com",
		Teams: []string{"marketing", "eng", "ops"}, Expires: clk.now().Add(time.Hour)}
	id, e := verifyOAuth(t, a.nc, alice)
	if e != nil {
		t.Fatal(e)
	}
	if id.Team != "eng" || id.Org != org.OrganizationID || id.User != "alice-sub" || id.Alias != "alice@example.com" || id.Admin {
		t.Fatalf("alice: %+v", id)
	}
	if id.KeyID != bus.OAuthKeyID(alice.Issuer, alice.User) || id.Expires == nil || !id.Expires.Equal(alice.Expires) {
		t.Fatalf("alice's key id or expiry: %+v", id)
	}
	// Team ∩ organization: github only.
	if got := fmt.Sprint(id.Permissions.Servers); got != "[github]" {
		t.Fatalf("alice may use %s, want [github]", got)
	}

	for _, tc := range []struct {
		name string
		c    bus.OAuthCaller
		kind bus.Kind
		want string
	}{
		{"no team here", bus.OAuthCaller{Issuer: alice.Issuer, User: "carol", Teams: []string{"sales"}, Expires: alice.Expires},
			bus.ErrForbidden, "OAuth user 'carol' is in no team of this gateway (the token names 'sales')"},
		{"no team at all", bus.OAuthCaller{Issuer: alice.Issuer, User: "dave", Expires: alice.Expires},
			bus.ErrForbidden, "the token carries no team ids"},
		{"other organization", bus.OAuthCaller{Issuer: alice.Issuer, User: "erin", Teams: []string{"ops"}, Org: "globex", Expires: alice.Expires},
			bus.ErrForbidden, "organization 'globex' in the token, but team 'ops' belongs to no organization"},
		{"expired", bus.OAuthCaller{Issuer: alice.Issuer, User: "frank", Teams: []string{"ops"}, Expires: clk.now().Add(-time.Second)},
			bus.ErrUnauthorized, "has expired"},
		{"malformed", bus.OAuthCaller{Issuer: alice.Issuer, User: "g h", Teams: []string{"ops"}, Expires: alice.Expires},
			bus.ErrBadRequest, "user id"},
	} {
		_, e := verifyOAuth(t, a.nc, tc.c)
		if e == nil || e.Kind != tc.kind || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s: %v, want %s naming %q", tc.name, e, tc.kind.Code, tc.want)
		}
	}

	mustCall(t, a.nc, bus.SubjectTeamUpdate, map[string]any{"team_id": "eng", "blocked": true}, nil)
	if !a.store.waitFor(5*time.Second, func() bool { return a.store.teams["eng"].rec.Blocked }) {
		t.Fatal("the block did not arrive")
	}
	if _, e := verifyOAuth(t, a.nc, alice); e == nil || e.Kind != bus.ErrForbidden || !strings.Contains(e.Message, "team 'eng', which is blocked") {
		t.Fatalf("a blocked team's user: %v", e)
	}
}
