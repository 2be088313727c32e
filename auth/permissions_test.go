package auth

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func TestEffective(t *testing.T) {
	type tools = map[string][]string
	key := func(servers []string, tp tools) bus.KeyRecord {
		return bus.KeyRecord{Token: "t", MCPServers: servers, MCPToolPermissions: tp}
	}
	team := func(servers []string, tp tools) *bus.TeamRecord {
		return &bus.TeamRecord{TeamID: "team", MCPServers: servers, MCPToolPermissions: tp}
	}
	all := bus.Permissions{AllServers: true}
	cases := []struct {
		name string
		key  bus.KeyRecord
		team *bus.TeamRecord
		want bus.Permissions
	}{
		// Servers.
		{"no team, no lists: everything", key(nil, nil), nil, all},
		{"team without lists, key without lists: everything", key(nil, nil), team(nil, nil), all},
		{"empty (non-nil) lists mean no restriction", key([]string{}, tools{}), team([]string{}, tools{}), all},
		{"key only", key([]string{"a", "b"}, nil), nil, bus.Permissions{Servers: []string{"a", "b"}}},
		// Access groups.
		{"key access groups only", bus.KeyRecord{MCPAccessGroups: []string{"g1", "g1"}}, nil, bus.Permissions{Groups: []string{"g1"}}},
		{"team access groups, key inherits", key(nil, nil), &bus.TeamRecord{MCPAccessGroups: []string{"g2"}}, bus.Permissions{Groups: []string{"g2"}}},
		{"key names, team groups: both must admit", key([]string{"a"}, nil), &bus.TeamRecord{MCPAccessGroups: []string{"g2"}},
			bus.Permissions{Servers: []string{"a"}, Also: &bus.ServerScope{Groups: []string{"g2"}}}},
		{"tools of a server a group may grant are kept", bus.KeyRecord{MCPAccessGroups: []string{"g1"}, MCPToolPermissions: tools{"a": {"t1"}}}, nil,
			bus.Permissions{Groups: []string{"g1"}, Tools: tools{"a": {"t1"}}}},
		{"key only, team without list", key([]string{"a"}, nil), team(nil, nil), bus.Permissions{Servers: []string{"a"}}},
		{"team only: key inherits", key(nil, nil), team([]string{"x", "y"}, nil), bus.Permissions{Servers: []string{"x", "y"}}},
		{"both: intersection in key order", key([]string{"c", "b", "a"}, nil), team([]string{"a", "b", "z"}, nil),
			bus.Permissions{Servers: []string{"b", "a"}}},
		{"both, disjoint: nothing, never everything", key([]string{"a"}, nil), team([]string{"b"}, nil),
			bus.Permissions{Servers: []string{}}},
		{"key cannot widen its team", key([]string{"a", "secret"}, nil), team([]string{"a"}, nil),
			bus.Permissions{Servers: []string{"a"}}},
		{"duplicates and empty names dropped", key([]string{"a", "a", "", "b"}, nil), nil,
			bus.Permissions{Servers: []string{"a", "b"}}},

		// Tools.
		{"key tools, all servers", key(nil, tools{"a": {"t1", "t2"}}), nil,
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t1", "t2"}}}},
		{"team tools, key none: team's", key(nil, nil), team(nil, tools{"a": {"t1"}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t1"}}}},
		{"key and team tools: intersection", key(nil, tools{"a": {"t1", "t2", "t3"}}), team(nil, tools{"a": {"t3", "t2", "t9"}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t2", "t3"}}}},
		{"key and team tools, disjoint: no tool", key(nil, tools{"a": {"t1"}}), team(nil, tools{"a": {"t2"}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {}}}},
		{"key and team restrict different servers: each applies", key(nil, tools{"a": {"t1"}}), team(nil, tools{"b": {"t2"}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t1"}, "b": {"t2"}}}},
		{"explicit empty tool list permits no tool", key(nil, tools{"a": {}}), nil,
			bus.Permissions{AllServers: true, Tools: tools{"a": {}}}},
		{"explicit empty tool list on team wins over key", key(nil, tools{"a": {"t1"}}), team(nil, tools{"a": nil}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {}}}},
		{"tools of a server the key may not use are dropped", key([]string{"a"}, tools{"a": {"t1"}, "b": {"t2"}}), nil,
			bus.Permissions{Servers: []string{"a"}, Tools: tools{"a": {"t1"}}}},
		{"tools of a server the team may not use are dropped", key(nil, tools{"a": {"t1"}, "b": {"t2"}}), team([]string{"b"}, nil),
			bus.Permissions{Servers: []string{"b"}, Tools: tools{"b": {"t2"}}}},
		{"team tools for servers outside the intersection are dropped", key([]string{"a", "b"}, nil),
			team([]string{"b", "c"}, tools{"a": {"t1"}, "b": {"t2"}, "c": {"t3"}}),
			bus.Permissions{Servers: []string{"b"}, Tools: tools{"b": {"t2"}}}},
		{"a tool list never grants a server", key([]string{"a"}, nil), team(nil, tools{"b": {"t1"}}),
			bus.Permissions{Servers: []string{"a"}}},
		{"disjoint servers drop every tool", key([]string{"a"}, tools{"a": {"t"}}), team([]string{"b"}, tools{"b": {"t"}}),
			bus.Permissions{Servers: []string{}}},
		{"duplicate tools dropped", key(nil, tools{"a": {"t1", "t1", ""}}), nil,
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t1"}}}},
		{"full combination", key([]string{"gh", "db", "fs"}, tools{"gh": {"issues", "pulls", "push"}, "fs": {"read"}}),
			team([]string{"gh", "db"}, tools{"gh": {"issues", "pulls"}, "db": {"query"}}),
			bus.Permissions{Servers: []string{"gh", "db"}, Tools: tools{"gh": {"issues", "pulls"}, "db": {"query"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Effective(c.key, c.team, nil)
			if c.want.Models == nil {
				c.want.AllModels = true // the server and tool cases limit no model
			}
			if c.want.Agents == nil {
				c.want.AllAgents = true // nor any agent
			}
			if !reflect.DeepEqual(normalize(got), normalize(c.want)) {
				t.Fatalf("Effective:\n got  %+v\n want %+v", got, c.want)
			}
			// What the envelope carries must decide the same way.
			back := bus.DecodePermissions(bus.EncodePermissions(got))
			for _, s := range []string{"a", "b", "c", "x", "y", "z", "gh", "db", "fs", "secret"} {
				if back.AllowsServer(spec(s)) != got.AllowsServer(spec(s)) {
					t.Errorf("server %s: envelope round trip changes the decision", s)
				}
				for _, tool := range []string{"t", "t1", "t2", "t3", "t9", "issues", "pulls", "push", "query", "read"} {
					if back.AllowsTool(s, tool) != got.AllowsTool(s, tool) {
						t.Errorf("tool %s/%s: envelope round trip changes the decision", s, tool)
					}
				}
			}
		})
	}
}

// The models rule (LiteLLM's): the key's list and the team's each limit,
// a key without one inherits its team's, all-team-models and
// all-proxy-models lift a level; names, access groups and wildcards match.
func TestEffectiveModels(t *testing.T) {
	gpt := bus.ModelGroup{Name: "gpt-4o", Targets: []string{"openai/gpt-4o", "azure/gpt4o-eu"}}
	claude := bus.ModelGroup{Name: "claude", AccessGroups: []string{"anthropic-models"}, Targets: []string{"anthropic/claude-sonnet-4"}}
	mini := bus.ModelGroup{Name: "gpt-4o-mini", Targets: []string{"openai/gpt-4o-mini"}}
	local := bus.ModelGroup{Name: "local", Targets: []string{"hosted_vllm/llama"}}
	groups := []bus.ModelGroup{gpt, claude, mini, local}
	team := func(models ...string) *bus.TeamRecord { return &bus.TeamRecord{TeamID: "t", Models: models} }
	cases := []struct {
		name    string
		key     []string
		team    *bus.TeamRecord
		allowed []string
	}{
		{"no lists: every model", nil, nil, []string{"gpt-4o", "claude", "gpt-4o-mini", "local"}},
		{"key names", []string{"gpt-4o"}, nil, []string{"gpt-4o"}},
		{"key inherits its team's", nil, team("claude"), []string{"claude"}},
		{"key within its team", []string{"gpt-4o", "claude"}, team("claude", "local"), []string{"claude"}},
		{"key cannot widen its team", []string{"local"}, team("gpt-4o"), nil},
		{"all-team-models is the team's", []string{"all-team-models"}, team("local"), []string{"local"}},
		{"all-proxy-models on a team lifts it", []string{"gpt-4o"}, team("all-proxy-models"), []string{"gpt-4o"}},
		{"all-proxy-models on a key keeps the team's limit", []string{"all-proxy-models"}, team("gpt-4o-mini"), []string{"gpt-4o-mini"}},
		{"access group", []string{"anthropic-models"}, nil, []string{"claude"}},
		{"name wildcard", []string{"gpt-4o*"}, nil, []string{"gpt-4o", "gpt-4o-mini"}},
		{"provider wildcard needs every deployment", []string{"openai/*"}, nil, []string{"gpt-4o-mini"}},
		{"provider wildcard, another provider", []string{"hosted_vllm/*", "anthropic/*"}, nil, []string{"claude", "local"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Effective(bus.KeyRecord{Token: "k", Models: c.key}, c.team, nil)
			back := bus.DecodePermissions(bus.EncodePermissions(p))
			var got, gotBack []string
			for _, g := range groups {
				if p.AllowsModel(g) {
					got = append(got, g.Name)
				}
				if back.AllowsModel(g) {
					gotBack = append(gotBack, g.Name)
				}
			}
			if !reflect.DeepEqual(got, c.allowed) || !reflect.DeepEqual(gotBack, c.allowed) {
				t.Fatalf("allowed %v (after the envelope %v), want %v", got, gotBack, c.allowed)
			}
		})
	}
	// A permissions header that cannot be read allows no model.
	if bus.DecodePermissions("{not json").AllowsModel(gpt) {
		t.Fatal("a malformed permissions header allowed a model")
	}
}

// normalize makes nil and empty lists compare equal where they mean the same.
func normalize(p bus.Permissions) bus.Permissions {
	if len(p.Servers) == 0 {
		p.Servers = nil
	}
	return p
}

// The servers of the widening test, with their access groups.
var groupsOf = map[string][]string{"a": {"g1"}, "b": {"g2"}, "c": {"g1", "g2"}}

func spec(name string) bus.ServerSpec {
	return bus.ServerSpec{Name: name, AccessGroups: groupsOf[name]}
}

// The rule never widens: whatever the inputs, a permitted server is permitted by
// the key and by the team (by name or by access group), and a permitted tool
// by both where they restrict.
func TestEffectiveNeverWidens(t *testing.T) {
	lists := [][]string{nil, {}, {"a"}, {"b"}, {"a", "b"}, {"a", "c"}}
	groupLists := [][]string{nil, {"g1"}, {"g2", "g9"}}
	toolLists := []map[string][]string{nil, {"a": {"t1"}}, {"a": {"t1", "t2"}}, {"b": {"t2"}}, {"a": {}}, {"a": {"t2"}, "c": {"t1"}}}
	allows := func(names, groups []string, s string) bool {
		if len(names) == 0 && len(groups) == 0 {
			return true
		}
		for _, g := range groupsOf[s] {
			if contains(groups, g) {
				return true
			}
		}
		return contains(names, s)
	}
	for _, ks := range lists {
		for _, ts := range lists {
			for _, kg := range groupLists {
				for _, tg := range groupLists {
					for _, kt := range toolLists {
						for _, tt := range toolLists {
							for _, noTeam := range []bool{false, true} {
								k := bus.KeyRecord{MCPServers: ks, MCPAccessGroups: kg, MCPToolPermissions: kt}
								var tm *bus.TeamRecord
								if !noTeam {
									tm = &bus.TeamRecord{MCPServers: ts, MCPAccessGroups: tg, MCPToolPermissions: tt}
								}
								p := Effective(k, tm, nil)
								back := bus.DecodePermissions(bus.EncodePermissions(p))
								for _, s := range []string{"a", "b", "c", "d"} {
									keyAllows := allows(ks, kg, s)
									teamAllows := tm == nil || allows(ts, tg, s)
									if p.AllowsServer(spec(s)) != (keyAllows && teamAllows) || back.AllowsServer(spec(s)) != p.AllowsServer(spec(s)) {
										t.Fatalf("key %v/%v team %v/%v (none=%v): server %s allowed=%v", ks, kg, ts, tg, noTeam, s, p.AllowsServer(spec(s)))
									}
									if !p.AllowsServer(spec(s)) {
										continue
									}
									for _, tool := range []string{"t1", "t2", "t3"} {
										kOK := kt == nil || kt[s] == nil && !hasKey(kt, s) || contains(kt[s], tool)
										tOK := tm == nil || tt == nil || tt[s] == nil && !hasKey(tt, s) || contains(tt[s], tool)
										if p.AllowsTool(s, tool) != (kOK && tOK) {
											t.Fatalf("key %v/%v team %v/%v: tool %s/%s allowed=%v", ks, kt, ts, tt, s, tool, p.AllowsTool(s, tool))
										}
									}
								}
								if kg == nil && tg == nil {
									for s := range p.Tools {
										if !p.AllowsServer(spec(s)) {
											t.Fatalf("tools kept for forbidden server %s: %+v", s, p)
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func hasKey(m map[string][]string, k string) bool { _, ok := m[k]; return ok }

// The organization is the outer level: key ∩ team ∩ organization, each
// level without a list inheriting, an empty intersection permitting
// nothing (never everything), access groups travelling apart.
func TestEffectiveOrganization(t *testing.T) {
	type tools = map[string][]string
	key := func(servers []string, tp tools) bus.KeyRecord {
		return bus.KeyRecord{Token: "t", MCPServers: servers, MCPToolPermissions: tp}
	}
	team := func(servers []string, tp tools) *bus.TeamRecord {
		return &bus.TeamRecord{TeamID: "team", OrganizationID: "org", MCPServers: servers, MCPToolPermissions: tp}
	}
	org := func(servers []string, tp tools) *bus.OrgRecord {
		return &bus.OrgRecord{OrganizationID: "org", MCPServers: servers, MCPToolPermissions: tp}
	}
	cases := []struct {
		name string
		key  bus.KeyRecord
		team *bus.TeamRecord
		org  *bus.OrgRecord
		want bus.Permissions
	}{
		{"no lists anywhere: everything", key(nil, nil), team(nil, nil), org(nil, nil), bus.Permissions{AllServers: true}},
		{"org limits to [a], team allows [a,b], key unrestricted: only a", key(nil, nil), team([]string{"a", "b"}, nil), org([]string{"a"}, nil),
			bus.Permissions{Servers: []string{"a"}}},
		{"org limits to [a], team [a,b], key names b only: nothing", key([]string{"b"}, nil), team([]string{"a", "b"}, nil), org([]string{"a"}, nil),
			bus.Permissions{Servers: []string{}}},
		{"org alone limits: team and key inherit it", key(nil, nil), team(nil, nil), org([]string{"x", "y"}, nil),
			bus.Permissions{Servers: []string{"x", "y"}}},
		{"key within org, team silent", key([]string{"y", "z"}, nil), team(nil, nil), org([]string{"x", "y"}, nil),
			bus.Permissions{Servers: []string{"y"}}},
		{"org without list: key ∩ team as before", key([]string{"a", "b"}, nil), team([]string{"b", "c"}, nil), org(nil, nil),
			bus.Permissions{Servers: []string{"b"}}},
		{"team cannot widen its org", key(nil, nil), team([]string{"a", "secret"}, nil), org([]string{"a"}, nil),
			bus.Permissions{Servers: []string{"a"}}},
		{"org and team disjoint: nothing", key(nil, nil), team([]string{"b"}, nil), org([]string{"a"}, nil),
			bus.Permissions{Servers: []string{}}},
		// Access groups: the org's scope travels apart when names cannot meet.
		{"org groups, key names: apart", key([]string{"a"}, nil), team(nil, nil), &bus.OrgRecord{OrganizationID: "org", MCPAccessGroups: []string{"g2"}},
			bus.Permissions{Servers: []string{"a"}, Outer: &bus.ServerScope{Groups: []string{"g2"}}}},
		{"org names, key groups: apart", bus.KeyRecord{MCPAccessGroups: []string{"g1"}}, team(nil, nil), org([]string{"a", "b"}, nil),
			bus.Permissions{Groups: []string{"g1"}, Outer: &bus.ServerScope{Servers: []string{"a", "b"}}}},
		{"org names meet key names beside a team's groups", key([]string{"a", "b"}, nil), &bus.TeamRecord{TeamID: "team", MCPAccessGroups: []string{"g1"}},
			org([]string{"b", "c"}, nil),
			bus.Permissions{Servers: []string{"b"}, Also: &bus.ServerScope{Groups: []string{"g1"}}}},
		{"org groups only, nothing below: the org's", key(nil, nil), team(nil, nil), &bus.OrgRecord{OrganizationID: "org", MCPAccessGroups: []string{"g1"}},
			bus.Permissions{Groups: []string{"g1"}}},
		{"no team: no organization", key([]string{"a"}, nil), nil, nil, bus.Permissions{Servers: []string{"a"}}},
		// Tools: the intersection of the levels that restrict.
		{"org restricts tools, team and key silent", key(nil, nil), team(nil, nil), org(nil, tools{"a": {"t1", "t2"}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t1", "t2"}}}},
		{"three levels restrict: intersection", key(nil, tools{"a": {"t1", "t2", "t3"}}), team(nil, tools{"a": {"t2", "t3"}}), org(nil, tools{"a": {"t3", "t9"}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t3"}}}},
		{"key and org restrict: intersection", key(nil, tools{"a": {"t1", "t2"}}), team(nil, nil), org(nil, tools{"a": {"t2"}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {"t2"}}}},
		{"org's empty tool list: no tool", key(nil, tools{"a": {"t1"}}), team(nil, nil), org(nil, tools{"a": {}}),
			bus.Permissions{AllServers: true, Tools: tools{"a": {}}}},
		{"org tools of a server outside its servers are dropped", key(nil, nil), team(nil, nil), org([]string{"a"}, tools{"a": {"t1"}, "b": {"t2"}}),
			bus.Permissions{Servers: []string{"a"}, Tools: tools{"a": {"t1"}}}},
		{"key tools of a server outside the org are dropped", key(nil, tools{"b": {"t2"}}), team(nil, nil), org([]string{"a"}, nil),
			bus.Permissions{Servers: []string{"a"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Effective(c.key, c.team, c.org)
			c.want.AllModels, c.want.AllAgents = true, true // the server and tool cases limit no model or agent
			if !reflect.DeepEqual(normalize(got), normalize(c.want)) {
				t.Fatalf("Effective:\n got  %+v\n want %+v", got, c.want)
			}
			back := bus.DecodePermissions(bus.EncodePermissions(got))
			for _, s := range []string{"a", "b", "c", "x", "y", "z", "secret"} {
				if back.AllowsServer(spec(s)) != got.AllowsServer(spec(s)) {
					t.Errorf("server %s: envelope round trip changes the decision", s)
				}
				for _, tool := range []string{"t1", "t2", "t3", "t9"} {
					if back.AllowsTool(s, tool) != got.AllowsTool(s, tool) {
						t.Errorf("tool %s/%s: envelope round trip changes the decision", s, tool)
					}
				}
			}
		})
	}
	// Explicitly: the org limits to [a], the team allows [a, b], a key
	// naming only b may use no server at all (not every server).
	p := Effective(key([]string{"b"}, nil), team([]string{"a", "b"}, nil), org([]string{"a"}, nil))
	for _, s := range []string{"a", "b", "c"} {
		if p.AllowsServer(spec(s)) {
			t.Fatalf("server %s permitted: %+v", s, p)
		}
	}
	if bus.EncodePermissions(p) == "" {
		t.Fatal("a key permitted nothing travels as everything")
	}
}

// The organization's models and agents are a third level: all-proxy-models
// on the organization lifts it; a team or key cannot widen it.
func TestEffectiveOrganizationModelsAndAgents(t *testing.T) {
	gpt := bus.ModelGroup{Name: "gpt-4o", Targets: []string{"openai/gpt-4o"}}
	claude := bus.ModelGroup{Name: "claude", AccessGroups: []string{"anthropic-models"}, Targets: []string{"anthropic/claude"}}
	local := bus.ModelGroup{Name: "local", Targets: []string{"hosted_vllm/llama"}}
	groups := []bus.ModelGroup{gpt, claude, local}
	models := []struct {
		name           string
		key, team, org []string
		allowed        []string
	}{
		{"org limits, key and team inherit", nil, nil, []string{"gpt-4o"}, []string{"gpt-4o"}},
		{"team cannot widen its org", nil, []string{"gpt-4o", "claude"}, []string{"claude"}, []string{"claude"}},
		{"key within team within org", []string{"claude", "local"}, []string{"claude", "local"}, []string{"anthropic-models", "gpt-4o"}, []string{"claude"}},
		{"all-proxy-models on the org lifts it", []string{"local"}, nil, []string{"all-proxy-models"}, []string{"local"}},
		{"all-team-models on the key keeps the org's limit", []string{"all-team-models"}, nil, []string{"local"}, []string{"local"}},
		{"disjoint: nothing", []string{"gpt-4o"}, nil, []string{"local"}, nil},
	}
	for _, c := range models {
		t.Run("models/"+c.name, func(t *testing.T) {
			p := Effective(bus.KeyRecord{Token: "k", Models: c.key}, &bus.TeamRecord{TeamID: "t", Models: c.team}, &bus.OrgRecord{OrganizationID: "o", Models: c.org})
			back := bus.DecodePermissions(bus.EncodePermissions(p))
			var got, gotBack []string
			for _, g := range groups {
				if p.AllowsModel(g) {
					got = append(got, g.Name)
				}
				if back.AllowsModel(g) {
					gotBack = append(gotBack, g.Name)
				}
			}
			if !reflect.DeepEqual(got, c.allowed) || !reflect.DeepEqual(gotBack, c.allowed) {
				t.Fatalf("allowed %v (after the envelope %v), want %v", got, gotBack, c.allowed)
			}
		})
	}
	support := bus.AgentInfo{Name: "support", AccessGroups: []string{"helpdesk"}}
	search := bus.AgentInfo{Name: "search"}
	p := Effective(bus.KeyRecord{Token: "k"}, &bus.TeamRecord{TeamID: "t", Agents: []string{"support", "search"}},
		&bus.OrgRecord{OrganizationID: "o", AgentAccessGroups: []string{"helpdesk"}})
	if !p.AllowsAgent(support) || p.AllowsAgent(search) {
		t.Fatalf("agents: %+v", p.Agents)
	}
	if why := p.AgentDenial(search); !strings.Contains(why, "the org's object_permission.agents") {
		t.Fatalf("denial %q does not name the organization's list", why)
	}
}

// Three levels never widen: a permitted server is permitted by every level
// (by name or access group), a permitted tool by every level that
// restricts it.
func TestEffectiveOrganizationNeverWidens(t *testing.T) {
	lists := [][]string{nil, {"a"}, {"b"}, {"a", "b"}, {"a", "c"}}
	groupLists := [][]string{nil, {"g1"}, {"g2"}}
	allows := func(names, groups []string, s string) bool {
		if len(names) == 0 && len(groups) == 0 {
			return true
		}
		for _, g := range groupsOf[s] {
			if contains(groups, g) {
				return true
			}
		}
		return contains(names, s)
	}
	for _, ks := range lists {
		for _, ts := range lists {
			for _, os := range lists {
				for _, kg := range groupLists {
					for _, tg := range groupLists {
						for _, og := range groupLists {
							k := bus.KeyRecord{MCPServers: ks, MCPAccessGroups: kg}
							tm := &bus.TeamRecord{MCPServers: ts, MCPAccessGroups: tg}
							o := &bus.OrgRecord{MCPServers: os, MCPAccessGroups: og}
							p := Effective(k, tm, o)
							back := bus.DecodePermissions(bus.EncodePermissions(p))
							for _, s := range []string{"a", "b", "c", "d"} {
								want := allows(ks, kg, s) && allows(ts, tg, s) && allows(os, og, s)
								if p.AllowsServer(spec(s)) != want || back.AllowsServer(spec(s)) != want {
									t.Fatalf("key %v/%v team %v/%v org %v/%v: server %s allowed=%v, want %v (%+v)", ks, kg, ts, tg, os, og, s, p.AllowsServer(spec(s)), want, p)
								}
							}
						}
					}
				}
			}
		}
	}
	toolLists := []map[string][]string{nil, {"a": {"t1"}}, {"a": {"t1", "t2"}}, {"a": {}}, {"b": {"t2"}}}
	for _, kt := range toolLists {
		for _, tt := range toolLists {
			for _, ot := range toolLists {
				p := Effective(bus.KeyRecord{MCPToolPermissions: kt}, &bus.TeamRecord{MCPToolPermissions: tt}, &bus.OrgRecord{MCPToolPermissions: ot})
				for _, s := range []string{"a", "b"} {
					for _, tool := range []string{"t1", "t2", "t3"} {
						ok := func(m map[string][]string) bool { l, limits := m[s]; return !limits || contains(l, tool) }
						if want := ok(kt) && ok(tt) && ok(ot); p.AllowsTool(s, tool) != want {
							t.Fatalf("key %v team %v org %v: tool %s/%s allowed=%v, want %v", kt, tt, ot, s, tool, p.AllowsTool(s, tool), want)
						}
					}
				}
			}
		}
	}
}
