package auth

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// models on keys and teams (LiteLLM's field) are stored, shown back, and
// reach the permissions the LLM router checks; a bad entry is refused
// naming it, and an empty list lifts the limit again.
func TestModelsOnKeysAndTeams(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)

	var team bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_alias": "ml", "models": []string{"gpt-4o", "claude"}}, &team)
	if fmt.Sprint(team.Models) != "[gpt-4o claude]" {
		t.Fatalf("team.new: %+v", team)
	}
	g := generate(t, a.nc, map[string]any{"key_alias": "dev", "team_id": team.TeamID, "models": []string{"claude", "local", "claude"}})
	id, e := verifyBus(t, a.nc, g.Key)
	if e != nil {
		t.Fatal(e)
	}
	for name, want := range map[string]bool{"claude": true, "gpt-4o": false, "local": false} {
		if got := id.Permissions.AllowsModel(bus.ModelGroup{Name: name}); got != want {
			t.Errorf("model %s: allowed=%v, want %v (permissions %+v)", name, got, want, id.Permissions)
		}
	}
	var info struct {
		Info bus.KeyRecord `json:"info"`
	}
	mustCall(t, a.nc, bus.SubjectKeyInfo, map[string]any{"key": g.Key}, &info)
	if fmt.Sprint(info.Info.Models) != "[claude local]" {
		t.Fatalf("key/info models: %v", info.Info.Models)
	}

	// An empty list inherits the team's again.
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": g.Key, "models": []string{}}, nil)
	if id, _ := verifyBus(t, a.nc, g.Key); !id.Permissions.AllowsModel(bus.ModelGroup{Name: "gpt-4o"}) || id.Permissions.AllowsModel(bus.ModelGroup{Name: "local"}) {
		t.Fatalf("a key without models does not have its team's: %+v", id.Permissions)
	}

	for _, bad := range [][]string{{"gpt 4o"}, {""}, {strings.Repeat("m", MaxModelEntry+1)}} {
		_, e := call(t, a.nc, bus.SubjectKeyGenerate, map[string]any{"models": bad})
		if e == nil || e.Kind != bus.ErrBadRequest || !strings.Contains(e.Message, "models[0]") {
			t.Errorf("models %q: %v, want 400 naming models[0]", bad, e)
		}
	}
	many := make([]string, MaxModelEntries+1)
	for i := range many {
		many[i] = fmt.Sprint("m", i)
	}
	if _, e := call(t, a.nc, bus.SubjectTeamNew, map[string]any{"models": many}); e == nil || !strings.Contains(e.Message, "models") {
		t.Errorf("%d models: %v, want 400", len(many), e)
	}
}
