package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// mustCallAs is mustCall as caller.
func mustCallAs(t *testing.T, nc *nats.Conn, subject string, caller bus.Identity, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	data, e := callAs(t, nc, subject, caller, b)
	if e != nil {
		t.Fatalf("%s as %s: %v", subject, caller.Name(), e)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: %v in %s", subject, err, data)
		}
	}
}

// refusedAs fails unless subject, asked by caller, is refused with kind
// and a message holding want.
func refusedAs(t *testing.T, nc *nats.Conn, subject string, caller bus.Identity, body any, kind bus.Kind, want string) {
	t.Helper()
	b, _ := json.Marshal(body)
	_, e := callAs(t, nc, subject, caller, b)
	if e == nil || e.Kind != kind || !strings.Contains(e.Message, want) {
		t.Fatalf("%s %s as %s: %v, want %s naming %q", subject, b, caller.Name(), e, kind.Code, want)
	}
}

// The organization endpoints: LiteLLM's shapes, limits in the budget
// table, members with the two roles, a team's organization_id checked, and
// an organization with teams not deleted.
func TestOrgEndpoints(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	var org bus.OrgView
	mustCall(t, a.nc, bus.SubjectOrgNew, map[string]any{"organization_alias": "Acme", "models": []string{"gpt-4o"},
		"max_budget": 100, "budget_duration": "30d", "tpm_limit": 1000, "rpm_limit": 60,
		"object_permission": map[string]any{"mcp_servers": []string{"a"}, "agents": []string{"helper"}}}, &org)
	if org.OrganizationID == "" || org.OrganizationAlias != "Acme" || fmt.Sprint(org.Models) != "[gpt-4o]" || fmt.Sprint(org.MCPServers) != "[a]" ||
		fmt.Sprint(org.Agents) != "[helper]" || org.RPMLimit != 60 || org.Teams == nil || len(org.Teams) != 0 {
		t.Fatalf("org.new: %+v", org)
	}
	if bt := org.LiteLLMBudgetTable; bt.MaxBudget == nil || *bt.MaxBudget != 100 || *bt.TPMLimit != 1000 || *bt.RPMLimit != 60 || *bt.BudgetDuration != "30d" {
		t.Fatalf("budget table: %+v", bt)
	}
	if _, e := call(t, a.nc, bus.SubjectOrgNew, map[string]any{"organization_id": org.OrganizationID}); e == nil || e.Kind != bus.ErrConflict {
		t.Fatalf("a taken id: %v", e)
	}
	for _, c := range []struct {
		subject string
		body    map[string]any
		field   string
	}{
		{bus.SubjectOrgNew, map[string]any{"organization_id": "has space"}, "organization_id"},
		{bus.SubjectOrgNew, map[string]any{"organization_alias": strings.Repeat("x", bus.MaxAliasLen+1)}, "organization_alias"},
		{bus.SubjectOrgNew, map[string]any{"rpm_limit": -1}, "rpm_limit"},
		{bus.SubjectOrgNew, map[string]any{"model_max_budget": map[string]any{"gpt": map[string]any{"budget_limit": 1}}}, "model_max_budget"},
		{bus.SubjectOrgNew, map[string]any{"budget_id": "b1"}, "budget_id"},
		{bus.SubjectOrgUpdate, map[string]any{"rpm_limit": 1}, "organization_id"},
		{bus.SubjectOrgDelete, map[string]any{}, "organization_ids"},
		{bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID}, "member"},
		{bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID, "member": "u1"}, "member"},
		{bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID, "member": map[string]any{"user_id": "u1", "role": "proxy_admin"}}, "member[0].role"},
		{bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID, "member": []any{
			map[string]any{"user_id": "u1", "role": "org_admin"}, map[string]any{"user_email": "b@example.com", "role": "internal_user"}}}, "member[1].user_id"},
		{bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID, "member": map[string]any{"user_id": "a b", "role": "org_admin"}}, "member[0].user_id"},
		{bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID, "member": map[string]any{"user_id": "u1", "role": "org_admin"},
			"max_budget_in_organization": 10}, "max_budget_in_organization"},
		{bus.SubjectOrgMemberDelete, map[string]any{"organization_id": org.OrganizationID}, "user_id"},
		{bus.SubjectTeamNew, map[string]any{"organization_id": "ghost"}, "organization_id"},
		{bus.SubjectTeamNew, map[string]any{"organization_id": "a.b"}, "organization_id"},
		{bus.SubjectKeyGenerate, map[string]any{"user_id": "has space"}, "user_id"},
	} {
		_, e := call(t, a.nc, c.subject, c.body)
		if e == nil || e.Kind != bus.ErrBadRequest || !strings.Contains(e.Message, c.field) {
			t.Errorf("%s %v: %v, want 400 naming %s", c.subject, c.body, e, c.field)
		}
	}

	// Members: one object or a list; a second add changes the role.
	var added bus.OrgMemberAddResponse
	mustCall(t, a.nc, bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID,
		"member": map[string]any{"user_id": "alice@example.com", "role": "internal_user"}}, &added)
	mustCall(t, a.nc, bus.SubjectOrgMemberAdd, map[string]any{"organization_id": org.OrganizationID,
		"member": []any{map[string]any{"user_id": "alice@example.com", "role": "org_admin"}, map[string]any{"user_id": "bob", "role": "internal_user"}}}, &added)
	if len(added.UpdatedOrganizationMemberships) != 2 || added.UpdatedOrganizationMemberships[0].UserRole != bus.OrgRoleAdmin || added.UpdatedUsers == nil {
		t.Fatalf("member_add: %+v", added)
	}

	// Teams name existing organizations; info lists them.
	var team bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "eng", "organization_id": org.OrganizationID}, &team)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "ops"}, nil)
	mustCall(t, a.nc, bus.SubjectTeamUpdate, map[string]any{"team_id": "ops", "organization_id": org.OrganizationID}, nil)
	var info bus.OrgView
	mustCall(t, a.nc, bus.SubjectOrgInfo, map[string]any{"organization_id": org.OrganizationID}, &info)
	if len(info.Teams) != 2 || info.Teams[0].TeamID != "eng" || len(info.Members) != 2 || !info.AdminOf("alice@example.com") || info.AdminOf("bob") {
		t.Fatalf("org.info: %+v", info)
	}
	var list []bus.OrgView
	mustCall(t, a.nc, bus.SubjectOrgList, nil, &list)
	if len(list) != 1 || list[0].OrganizationID != org.OrganizationID {
		t.Fatalf("org.list: %+v", list)
	}

	// Delete: refused while it has teams, naming how many.
	if _, e := call(t, a.nc, bus.SubjectOrgDelete, map[string]any{"organization_ids": []string{org.OrganizationID}}); e == nil || e.Kind != bus.ErrConflict ||
		!strings.Contains(e.Message, "still has 2 teams") {
		t.Fatalf("delete with teams: %v", e)
	}
	mustCall(t, a.nc, bus.SubjectTeamUpdate, map[string]any{"team_id": "ops", "organization_id": ""}, nil)
	mustCall(t, a.nc, bus.SubjectTeamDelete, map[string]any{"team_ids": []string{"eng"}}, nil)
	if _, e := call(t, a.nc, bus.SubjectOrgMemberDelete, map[string]any{"organization_id": org.OrganizationID, "user_id": "carol"}); e == nil || e.Kind != bus.ErrNotFound {
		t.Fatalf("member_delete of a non-member: %v", e)
	}
	mustCall(t, a.nc, bus.SubjectOrgMemberDelete, map[string]any{"organization_id": org.OrganizationID, "user_id": "bob"}, &info)
	if len(info.Members) != 1 {
		t.Fatalf("member_delete: %+v", info.Members)
	}
	var deleted []bus.OrgView
	mustCall(t, a.nc, bus.SubjectOrgDelete, map[string]any{"organization_ids": []string{org.OrganizationID}}, &deleted)
	if len(deleted) != 1 || deleted[0].OrganizationID != org.OrganizationID {
		t.Fatalf("org.delete: %+v", deleted)
	}
	if _, e := call(t, a.nc, bus.SubjectOrgInfo, map[string]any{"organization_id": org.OrganizationID}); e == nil || e.Kind != bus.ErrNotFound {
		t.Fatalf("info of a deleted organization: %v", e)
	}
}

// A key's organization bounds it, is in its identity, and blocks or drops
// it: a blocked organization (or one gone) refuses its teams' keys with
// 401 naming it, and revokes them.
func TestOrgBoundsAndBlocksItsKeys(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	rev := watchRevoked(t, ns)
	mustCall(t, a.nc, bus.SubjectOrgNew, map[string]any{"organization_id": "acme", "organization_alias": "Acme", "mcp_servers": []string{"a"}}, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "eng", "team_alias": "Eng", "organization_id": "acme", "mcp_servers": []string{"a", "b"}}, nil)
	open := generate(t, a.nc, map[string]any{"key_alias": "open", "team_id": "eng"})
	onlyB := generate(t, a.nc, map[string]any{"key_alias": "only-b", "team_id": "eng", "mcp_servers": []string{"b"}})
	loose := generate(t, a.nc, map[string]any{"key_alias": "loose"})

	id, e := verifyBus(t, a.nc, open.Key)
	if e != nil || id.Org != "acme" || id.OrgAdmin != "" || fmt.Sprint(id.Permissions.Servers) != "[a]" || id.Permissions.AllServers {
		t.Fatalf("key of an org's team: %+v %v", id, e)
	}
	id, e = verifyBus(t, a.nc, onlyB.Key)
	if e != nil || id.Permissions.AllServers || len(id.Permissions.Servers) != 0 || bus.EncodePermissions(id.Permissions) == "" {
		t.Fatalf("a key naming only what its org leaves out: %+v %v", id, e)
	}

	mustCall(t, a.nc, bus.SubjectOrgUpdate, map[string]any{"organization_id": "acme", "blocked": true}, nil)
	if _, e := verifyBus(t, a.nc, open.Key); e == nil || e.Kind != bus.ErrUnauthorized ||
		e.Message != "unauthorized: key 'open' belongs to team 'Eng' of organization 'Acme', which is blocked" {
		t.Fatalf("blocked org: %v", e)
	}
	rev.wait(t, open.Token, 30*time.Second)
	rev.wait(t, onlyB.Token, 30*time.Second)
	if _, e := verifyBus(t, a.nc, loose.Key); e != nil || rev.count(loose.Token) != 0 {
		t.Fatalf("a key of no organization suffers from its block: %v", e)
	}
	mustCall(t, a.nc, bus.SubjectOrgUpdate, map[string]any{"organization_id": "acme", "blocked": false}, nil)
	if _, e := verifyBus(t, a.nc, open.Key); e != nil {
		t.Fatalf("unblocked org: %v", e)
	}

	// Gone under its teams (the API refuses that; a raw KV write does not).
	before := rev.count(open.Token)
	if err := a.store.orgsKV.Delete(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "key of a vanished org refused", func() error {
		if _, e := a.verify(open.Token); e == nil || !strings.Contains(e.Message, "of organization 'acme', which no longer exists") {
			return fmt.Errorf("verify: %v", e)
		}
		return nil
	})
	bustest.Eventually(t, 30*time.Second, "revocation on org deletion", func() error {
		if rev.count(open.Token) <= before {
			return fmt.Errorf("not revoked again")
		}
		return nil
	})
}

// An organization's rpm_limit is shared by the keys of all its teams.
func TestOrgRateLimitIsShared(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, newClock())
	mustCall(t, a.nc, bus.SubjectOrgNew, map[string]any{"organization_id": "small", "organization_alias": "Small", "rpm_limit": 3}, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "t1", "organization_id": "small"}, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "t2", "organization_id": "small"}, nil)
	k1 := generate(t, a.nc, map[string]any{"team_id": "t1"})
	k2 := generate(t, a.nc, map[string]any{"team_id": "t2"})
	for i, k := range []string{k1.Key, k2.Key, k1.Key} {
		if id, e := verifyBus(t, a.nc, k); e != nil || !id.RateLimited {
			t.Fatalf("request %d: %+v %v", i, id, e)
		}
	}
	_, e := verifyBus(t, a.nc, k2.Key)
	if e == nil || e.Kind != bus.ErrRateLimited || !strings.Contains(e.Message, "org 'Small' is limited to 3 requests per minute") {
		t.Fatalf("fourth request of the org: %v", e)
	}
}

// An org_admin (a key whose user_id is an org_admin member of its team's
// organization) manages its organization's teams and keys and reads the
// organization; everything else is refused with 403 and the reason, and a
// user_id alone (another organization's admin's) grants nothing.
func TestOrgAdminScope(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	for _, o := range []struct{ org, team, admin string }{{"x", "tx", "admin-x"}, {"y", "ty", "admin-y"}} {
		mustCall(t, a.nc, bus.SubjectOrgNew, map[string]any{"organization_id": o.org}, nil)
		mustCall(t, a.nc, bus.SubjectOrgMemberAdd, map[string]any{"organization_id": o.org, "member": map[string]any{"user_id": o.admin, "role": "org_admin"}}, nil)
		mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": o.team, "organization_id": o.org}, nil)
	}
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "loose"}, nil)
	kx := generate(t, a.nc, map[string]any{"key_alias": "admin-x-key", "team_id": "tx", "user_id": "admin-x"})
	ky := generate(t, a.nc, map[string]any{"key_alias": "y-bot", "team_id": "ty"})
	id, e := verifyBus(t, a.nc, kx.Key)
	if e != nil || id.OrgAdmin != "x" || id.Org != "x" {
		t.Fatalf("org admin identity: %+v %v", id, e)
	}
	// The identity the ingress sends: key id only; auth re-derives the rest.
	x := bus.Identity{KeyID: kx.Token, Alias: "admin-x-key", Team: "tx"}

	// Teams: new defaults to x; others refused.
	var team bus.TeamRecord
	mustCallAs(t, a.nc, bus.SubjectTeamNew, x, map[string]any{"team_id": "tx2"}, &team)
	if team.OrganizationID != "x" {
		t.Fatalf("an org admin's new team: %+v", team)
	}
	refusedAs(t, a.nc, bus.SubjectTeamNew, x, map[string]any{"organization_id": "y"}, bus.ErrForbidden, "may create teams only in it, not in 'y'")
	refusedAs(t, a.nc, bus.SubjectTeamInfo, x, map[string]any{"team_id": "ty"}, bus.ErrForbidden, "team 'ty' is not a team of organization 'x'")
	refusedAs(t, a.nc, bus.SubjectTeamUpdate, x, map[string]any{"team_id": "ty", "rpm_limit": 1}, bus.ErrForbidden, "team 'ty'")
	refusedAs(t, a.nc, bus.SubjectTeamUpdate, x, map[string]any{"team_id": "tx", "organization_id": "y"}, bus.ErrForbidden, "only the master key may move a team")
	refusedAs(t, a.nc, bus.SubjectTeamDelete, x, map[string]any{"team_ids": []string{"tx2", "ty"}}, bus.ErrForbidden, "team 'ty'")
	mustCallAs(t, a.nc, bus.SubjectTeamInfo, x, map[string]any{"team_id": "tx2"}, nil)
	mustCallAs(t, a.nc, bus.SubjectTeamUpdate, x, map[string]any{"team_id": "tx2", "rpm_limit": 5}, nil)
	var teams []bus.TeamRecord
	mustCallAs(t, a.nc, bus.SubjectTeamList, x, nil, &teams)
	if len(teams) != 2 || teams[0].TeamID != "tx" || teams[1].TeamID != "tx2" {
		t.Fatalf("an org admin's team list: %+v", teams)
	}

	// Keys: only in x's teams.
	refusedAs(t, a.nc, bus.SubjectKeyGenerate, x, map[string]any{}, bus.ErrForbidden, "team_id")
	refusedAs(t, a.nc, bus.SubjectKeyGenerate, x, map[string]any{"team_id": "ty"}, bus.ErrForbidden, "team 'ty'")
	refusedAs(t, a.nc, bus.SubjectKeyGenerate, x, map[string]any{"team_id": "loose"}, bus.ErrForbidden, "team 'loose'")
	var made generated
	b, _ := json.Marshal(map[string]any{"key_alias": "x-bot", "team_id": "tx2"})
	data, e := callAs(t, a.nc, bus.SubjectKeyGenerate, x, b)
	if e != nil || json.Unmarshal(data, &made) != nil || made.TeamID != "tx2" {
		t.Fatalf("an org admin's key: %s %v", data, e)
	}
	refusedAs(t, a.nc, bus.SubjectKeyInfo, x, map[string]any{"key": ky.Token}, bus.ErrForbidden, "key 'y-bot' belongs to team 'ty'")
	refusedAs(t, a.nc, bus.SubjectKeyUpdate, x, map[string]any{"key": ky.Token, "rpm_limit": 1}, bus.ErrForbidden, "key 'y-bot'")
	refusedAs(t, a.nc, bus.SubjectKeyUpdate, x, map[string]any{"key": made.Token, "team_id": "ty"}, bus.ErrForbidden, "team 'ty'")
	refusedAs(t, a.nc, bus.SubjectKeyUpdate, x, map[string]any{"key": made.Token, "team_id": ""}, bus.ErrForbidden, "team_id")
	refusedAs(t, a.nc, bus.SubjectKeyDelete, x, map[string]any{"keys": []string{made.Token, ky.Token}}, bus.ErrForbidden, "key 'y-bot'")
	refusedAs(t, a.nc, bus.SubjectKeyList, x, map[string]any{"team_id": "ty"}, bus.ErrForbidden, "team 'ty'")
	var keys bus.KeyListResponse
	mustCallAs(t, a.nc, bus.SubjectKeyList, x, map[string]any{}, &keys)
	if keys.TotalCount != 2 || keys.Keys[0].Token != kx.Token || keys.Keys[1].Token != made.Token {
		t.Fatalf("an org admin's key list: %+v", keys)
	}
	mustCallAs(t, a.nc, bus.SubjectKeyUpdate, x, map[string]any{"key": made.Token, "team_id": "tx", "rpm_limit": 7}, nil)

	// Escalation: a key in x's team carrying y's admin's user_id is no
	// admin of y (nor of x).
	mustCallAs(t, a.nc, bus.SubjectKeyUpdate, x, map[string]any{"key": made.Token, "user_id": "admin-y"}, nil)
	if id, e := verifyBus(t, a.nc, made.Key); e != nil || id.OrgAdmin != "" {
		t.Fatalf("a key with another org's admin's user_id: %+v %v", id, e)
	}
	esc := bus.Identity{KeyID: made.Token}
	refusedAs(t, a.nc, bus.SubjectTeamInfo, esc, map[string]any{"team_id": "ty"}, bus.ErrForbidden, forbiddenAdmin)
	refusedAs(t, a.nc, bus.SubjectKeyList, esc, map[string]any{}, bus.ErrForbidden, forbiddenAdmin)

	// The organization: read its own only, write none.
	mustCallAs(t, a.nc, bus.SubjectOrgInfo, x, map[string]any{"organization_id": "x"}, nil)
	refusedAs(t, a.nc, bus.SubjectOrgInfo, x, map[string]any{"organization_id": "y"}, bus.ErrForbidden, "organization 'y' is not the one")
	var orgs []bus.OrgView
	mustCallAs(t, a.nc, bus.SubjectOrgList, x, nil, &orgs)
	if len(orgs) != 1 || orgs[0].OrganizationID != "x" {
		t.Fatalf("an org admin's org list: %+v", orgs)
	}
	for subject, what := range map[string]string{
		bus.SubjectOrgNew: "create organizations", bus.SubjectOrgUpdate: "change organizations", bus.SubjectOrgDelete: "delete organizations",
		bus.SubjectOrgMemberAdd: "add organization members", bus.SubjectOrgMemberDelete: "remove organization members",
	} {
		refusedAs(t, a.nc, subject, x, map[string]any{"organization_id": "x", "organization_ids": []string{"x"},
			"member": map[string]any{"user_id": "me", "role": "org_admin"}, "user_id": "admin-x"}, bus.ErrForbidden, "only the master key may "+what)
	}

	// Losing the role ends it at once; a plain key never had it.
	mustCall(t, a.nc, bus.SubjectOrgMemberDelete, map[string]any{"organization_id": "x", "user_id": "admin-x"}, nil)
	refusedAs(t, a.nc, bus.SubjectTeamList, x, nil, bus.ErrForbidden, forbiddenAdmin)
	refusedAs(t, a.nc, bus.SubjectTeamList, bus.Identity{KeyID: ky.Token}, nil, bus.ErrForbidden, forbiddenAdmin)
	refusedAs(t, a.nc, bus.SubjectTeamList, bus.Identity{KeyID: "anonymous"}, nil, bus.ErrForbidden, forbiddenAdmin)
}
