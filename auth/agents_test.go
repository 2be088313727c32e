package auth

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// The agents rule (LiteLLM's): object_permission.agents and
// agent_access_groups on the key and on its team; neither at either level,
// every agent; one level's, that level's; both, an agent must pass both.
func TestEffectiveAgents(t *testing.T) {
	support := bus.AgentInfo{Name: "support", AccessGroups: []string{"helpdesk"}}
	search := bus.AgentInfo{Name: "search"}
	billing := bus.AgentInfo{Name: "billing", AccessGroups: []string{"finance", "helpdesk"}}
	agents := []bus.AgentInfo{support, search, billing}
	team := func(names, groups []string) *bus.TeamRecord {
		return &bus.TeamRecord{TeamID: "t", Agents: names, AgentAccessGroups: groups}
	}
	cases := []struct {
		name          string
		keyAgents     []string
		keyGroups     []string
		team          *bus.TeamRecord
		allowed       []string
		deniedByLevel string
	}{
		{"no lists: every agent", nil, nil, nil, []string{"support", "search", "billing"}, ""},
		{"no lists on key or team", nil, nil, team(nil, nil), []string{"support", "search", "billing"}, ""},
		{"key names", []string{"search"}, nil, nil, []string{"search"}, "key"},
		{"key access group", nil, []string{"helpdesk"}, nil, []string{"support", "billing"}, "key"},
		{"key inherits its team's", nil, nil, team([]string{"billing"}, nil), []string{"billing"}, "team"},
		{"both: the intersection", []string{"support", "search"}, nil, team([]string{"search", "billing"}, nil), []string{"search"}, ""},
		{"both, with groups", nil, []string{"helpdesk"}, team(nil, []string{"finance"}), []string{"billing"}, ""},
		{"key cannot widen its team", []string{"support"}, nil, team([]string{"search"}, nil), nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Effective(bus.KeyRecord{Token: "k", Agents: c.keyAgents, AgentAccessGroups: c.keyGroups}, c.team, nil)
			back := bus.DecodePermissions(bus.EncodePermissions(p))
			var got, gotBack []string
			for _, a := range agents {
				if p.AllowsAgent(a) {
					got = append(got, a.Name)
				}
				if back.AllowsAgent(a) {
					gotBack = append(gotBack, a.Name)
				}
			}
			if !reflect.DeepEqual(got, c.allowed) || !reflect.DeepEqual(gotBack, c.allowed) {
				t.Fatalf("allowed %v (after the envelope %v), want %v", got, gotBack, c.allowed)
			}
			for _, a := range agents {
				why := p.AgentDenial(a)
				if allowed := slices.Contains(c.allowed, a.Name); allowed != (why == "") {
					t.Errorf("agent %s: denial %q, allowed %v", a.Name, why, allowed)
				}
				if why != "" && c.deniedByLevel != "" && !strings.Contains(why, "the "+c.deniedByLevel+"'s object_permission.agents") {
					t.Errorf("agent %s: denial %q does not name the %s's list", a.Name, why, c.deniedByLevel)
				}
			}
		})
	}
	// A permissions header that cannot be read allows no agent.
	if bus.DecodePermissions("{not json").AllowsAgent(search) {
		t.Fatal("a malformed permissions header allowed an agent")
	}
	// The master key and open mode allow every agent.
	if !bus.DecodePermissions("").AllowsAgent(search) {
		t.Fatal("an empty permissions header (master key) did not allow an agent")
	}
}

// object_permission.agents and agent_access_groups on keys and teams are
// stored, shown back, and reach the permissions the agent workers check;
// a bad entry is refused naming it, and an empty list lifts the limit.
func TestAgentsOnKeysAndTeams(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)

	var team bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_alias": "support",
		"object_permission": map[string]any{"agents": []string{"support", "search"}}}, &team)
	if fmt.Sprint(team.Agents) != "[support search]" {
		t.Fatalf("team.new: %+v", team)
	}
	g := generate(t, a.nc, map[string]any{"key_alias": "bot", "team_id": team.TeamID,
		"object_permission": map[string]any{"agents": []string{"search", "billing", "search"}, "agent_access_groups": []string{"helpdesk"}}})
	id, e := verifyBus(t, a.nc, g.Key)
	if e != nil {
		t.Fatal(e)
	}
	for _, c := range []struct {
		agent bus.AgentInfo
		want  bool
	}{
		{bus.AgentInfo{Name: "search"}, true},
		{bus.AgentInfo{Name: "billing"}, false},                                    // not the team's
		{bus.AgentInfo{Name: "support", AccessGroups: []string{"helpdesk"}}, true}, // the key's group, the team's name
		{bus.AgentInfo{Name: "other", AccessGroups: []string{"helpdesk"}}, false},
	} {
		if got := id.Permissions.AllowsAgent(c.agent); got != c.want {
			t.Errorf("agent %+v: allowed=%v, want %v (permissions %+v)", c.agent, got, c.want, id.Permissions)
		}
	}
	var info struct {
		Info bus.KeyRecord `json:"info"`
	}
	mustCall(t, a.nc, bus.SubjectKeyInfo, map[string]any{"key": g.Key}, &info)
	if fmt.Sprint(info.Info.Agents, info.Info.AgentAccessGroups) != "[search billing] [helpdesk]" {
		t.Fatalf("key/info agents: %v %v", info.Info.Agents, info.Info.AgentAccessGroups)
	}

	// Empty lists: the key has its team's again.
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": g.Key,
		"object_permission": map[string]any{"agents": []string{}, "agent_access_groups": []string{}}}, nil)
	if id, _ := verifyBus(t, a.nc, g.Key); !id.Permissions.AllowsAgent(bus.AgentInfo{Name: "support"}) || id.Permissions.AllowsAgent(bus.AgentInfo{Name: "billing"}) {
		t.Fatalf("a key without agents does not have its team's: %+v", id.Permissions)
	}

	for field, bad := range map[string][]string{"agents": {"a.b"}, "agent_access_groups": {""}} {
		_, e := call(t, a.nc, bus.SubjectKeyGenerate, map[string]any{"object_permission": map[string]any{field: bad}})
		if e == nil || e.Kind != bus.ErrBadRequest || !strings.Contains(e.Message, "object_permission."+field+"[0]") {
			t.Errorf("%s %q: %v, want 400 naming object_permission.%s[0]", field, bad, e, field)
		}
	}
}
