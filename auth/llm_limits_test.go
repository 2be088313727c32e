package auth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// llmAsk sends an admit or spend for the key (by token) as the LLM router
// does.
func llmAsk(t *testing.T, nc *nats.Conn, subject, token, team string, body any) *bus.Error {
	t.Helper()
	env := bus.Envelope{RequestID: "r", Caller: bus.Identity{KeyID: token, Team: team}, IPClass: bus.Internal}
	b, _ := json.Marshal(body)
	resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: b, Header: env.Header()}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return bus.ReplyError(resp)
}

// tpm_limit, model_rpm_limit, model_max_budget and a team's max_budget are
// enforced across the minute and the budget period, with LiteLLM's 429s:
// rate limits with the wait, budgets without; the master key has none.
func TestLLMLimits(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	var team bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_alias": "ml", "max_budget": 0.001, "budget_duration": "30d"}, &team)
	g := generate(t, a.nc, map[string]any{"key_alias": "llm", "team_id": team.TeamID, "tpm_limit": 100,
		"model_rpm_limit":  map[string]int{"gpt": 2},
		"model_max_budget": map[string]any{"gpt": map[string]any{"budget_limit": 0.0005, "time_period": "1d"}}})
	admit := func(model string) *bus.Error {
		return llmAsk(t, a.nc, bus.SubjectLLMAdmit, g.Token, team.TeamID, bus.LLMAdmitRequest{Model: model})
	}
	spend := func(model string, tokens int, cost float64) {
		t.Helper()
		if e := llmAsk(t, a.nc, bus.SubjectLLMSpend, g.Token, team.TeamID, bus.LLMSpendRequest{Model: model, PromptTokens: tokens, Cost: cost}); e != nil {
			t.Fatalf("spend: %v", e)
		}
	}

	if e := admit("gpt"); e != nil {
		t.Fatal(e)
	}
	spend("gpt", 60, 0)
	if e := admit("gpt"); e != nil {
		t.Fatalf("60 of 100 tokens: %v", e)
	}
	spend("gpt", 50, 0)
	e := admit("other")
	if e == nil || e.Kind != bus.ErrRateLimited || !strings.Contains(e.Message, "110 of its 100 tokens") || e.RetryAfter != 50*time.Second {
		t.Fatalf("over tpm_limit: %+v", e)
	}
	clk.advance(time.Minute)
	if e := admit("gpt"); e != nil {
		t.Fatalf("a new minute: %v", e)
	}
	if e := admit("gpt"); e != nil {
		t.Fatalf("the second gpt request of the minute: %v", e)
	}
	if e := admit("gpt"); e == nil || e.Kind != bus.ErrRateLimited || !strings.Contains(e.Message, "gpt") {
		t.Fatalf("a third gpt request with model_rpm_limit 2: %+v", e)
	}
	if e := admit("other"); e != nil {
		t.Fatalf("model_rpm_limit limits only its model: %v", e)
	}

	clk.advance(time.Minute)
	spend("gpt", 1, 0.0006)
	e = admit("gpt")
	if e == nil || e.Kind != bus.ErrBudgetExceeded || e.RetryAfter != 0 || !strings.Contains(e.Message, "model=gpt") || !strings.Contains(e.Message, "Max budget: 0.0005") {
		t.Fatalf("over model_max_budget: %+v", e)
	}
	if e := admit("other"); e != nil {
		t.Fatalf("the model budget limits only its model: %v", e)
	}
	clk.advance(24 * time.Hour) // a new day: the model's budget period
	if e := admit("gpt"); e != nil {
		t.Fatalf("a new model budget period: %v", e)
	}
	spend("other", 1, 0.0005) // the team: 0.0011 of 0.001 this 30 days
	if e := admit("other"); e == nil || e.Kind != bus.ErrBudgetExceeded || !strings.Contains(e.Message, "Team=ml") {
		t.Fatalf("over the team's max_budget: %+v", e)
	}

	if e := llmAsk(t, a.nc, bus.SubjectLLMAdmit, "master", "", bus.LLMAdmitRequest{Model: "gpt"}); e != nil {
		t.Fatalf("the master key: %v", e)
	}
	for field, body := range map[string]map[string]any{
		"tpm_limit":        {"tpm_limit": -1},
		"max_budget":       {"max_budget": "lots"},
		"budget_duration":  {"budget_duration": "monthly"},
		"model_rpm_limit":  {"model_rpm_limit": map[string]int{"gpt": -2}},
		"model_max_budget": {"model_max_budget": map[string]any{"gpt": map[string]any{"budget_limit": 1, "time_period": "soon"}}},
	} {
		if _, e := call(t, a.nc, bus.SubjectKeyGenerate, body); e == nil || e.Kind != bus.ErrBadRequest || !strings.Contains(e.Message, field) {
			t.Errorf("%s: %v, want 400 naming it", field, e)
		}
	}
}

// An organization's max_budget and tpm_limit bound the keys of all its
// teams together, as a team's bound its keys; /organization/info shows
// the current period's spend.
func TestLLMLimitsOfAnOrganization(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	mustCall(t, a.nc, bus.SubjectOrgNew, map[string]any{"organization_id": "acme", "organization_alias": "Acme",
		"max_budget": 0.001, "budget_duration": "30d", "tpm_limit": 100}, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "t1", "organization_id": "acme"}, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "t2", "organization_id": "acme"}, nil)
	k1 := generate(t, a.nc, map[string]any{"team_id": "t1"})
	k2 := generate(t, a.nc, map[string]any{"team_id": "t2"})
	admit := func(g generated, team string) *bus.Error {
		return llmAsk(t, a.nc, bus.SubjectLLMAdmit, g.Token, team, bus.LLMAdmitRequest{Model: "gpt"})
	}
	spend := func(g generated, team string, tokens int, cost float64) {
		t.Helper()
		if e := llmAsk(t, a.nc, bus.SubjectLLMSpend, g.Token, team, bus.LLMSpendRequest{Model: "gpt", PromptTokens: tokens, Cost: cost}); e != nil {
			t.Fatalf("spend: %v", e)
		}
	}
	spend(k1, "t1", 60, 0)
	spend(k2, "t2", 50, 0)
	e := admit(k1, "t1")
	if e == nil || e.Kind != bus.ErrRateLimited || !strings.Contains(e.Message, "organization 'Acme' used 110 of its 100 tokens") {
		t.Fatalf("over the organization's tpm_limit: %+v", e)
	}
	clk.advance(time.Minute)
	if e := admit(k2, "t2"); e != nil {
		t.Fatalf("a new minute: %v", e)
	}
	spend(k1, "t1", 1, 0.0006)
	spend(k2, "t2", 1, 0.0005) // the organization: 0.0011 of 0.001 this 30 days
	for _, k := range []struct {
		g    generated
		team string
	}{{k1, "t1"}, {k2, "t2"}} {
		if e := admit(k.g, k.team); e == nil || e.Kind != bus.ErrBudgetExceeded || !strings.Contains(e.Message, "Organization=Acme") {
			t.Fatalf("over the organization's max_budget: %+v", e)
		}
	}
	var info bus.OrgView
	mustCall(t, a.nc, bus.SubjectOrgInfo, map[string]any{"organization_id": "acme"}, &info)
	if info.Spend < 0.00109 || info.Spend > 0.00111 {
		t.Fatalf("org.info spend %v, want 0.0011", info.Spend)
	}
	clk.advance(31 * 24 * time.Hour) // a new budget period
	if e := admit(k1, "t1"); e != nil {
		t.Fatalf("a new budget period: %v", e)
	}
	mustCall(t, a.nc, bus.SubjectOrgInfo, map[string]any{"organization_id": "acme"}, &info)
	if info.Spend != 0 {
		t.Fatalf("spend of a new period: %v", info.Spend)
	}
}
