package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/fakellm"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/openai/openai-go/v3"
)

// newOrg creates an organization with the master key, failing the test
// otherwise.
func newOrg(t *testing.T, base string, body map[string]any) {
	t.Helper()
	if status, out := admin(t, base, http.MethodPost, "/organization/new", body); status != http.StatusOK {
		t.Fatalf("/organization/new %v: HTTP %d %v", body, status, out)
	}
}

// newTeam creates a team with the master key and returns its id.
func newTeam(t *testing.T, base string, body map[string]any) string {
	t.Helper()
	status, out := admin(t, base, http.MethodPost, "/team/new", body)
	id, _ := out["team_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("/team/new %v: HTTP %d %v", body, status, out)
	}
	return id
}

// listedTools is what a raw tools/list answer lists.
func listedTools(t *testing.T, r rawResponse) []string {
	t.Helper()
	var list struct{ Tools []struct{ Name string } }
	if err := json.Unmarshal(r.result, &list); err != nil || r.rpcErr.Code != 0 {
		t.Fatalf("tools/list: %v %s", err, r.body)
	}
	var out []string
	for _, tl := range list.Tools {
		out = append(out, tl.Name)
	}
	return out
}

// An organization bounds the keys of its teams through the real MCP
// surface: a team that allows more servers or tools than its organization
// gives its keys only what the organization has, tools/list shows no more
// and tools/call is refused the rest; a key naming only what the
// organization leaves out may use no server at all. A blocked
// organization refuses its keys.
func TestOrgLimitsServersThroughMCP(t *testing.T) {
	a, _ := upstream(t, "a")
	b, recB := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a: {url: %q}
  b: {url: %q}
`, master, a, b), nil)
	newOrg(t, g.URL(), map[string]any{"organization_id": "acme", "organization_alias": "Acme", "mcp_servers": []string{"a"},
		"mcp_tool_permissions": map[string][]string{"a": {"add"}}})
	team := newTeam(t, g.URL(), map[string]any{"team_alias": "eng", "organization_id": "acme", "mcp_servers": []string{"a", "b"}})
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "org-bot", "team_id": team})
	onlyB := generateKey(t, g.URL(), map[string]any{"key_alias": "b-bot", "team_id": team, "mcp_servers": []string{"b"}})

	// Aggregated /mcp: only a's tools, and of them only the organization's.
	h := initSession(t, g.URL()+"/mcp", bearer(key))
	if got := listedTools(t, post(t, g.URL()+"/mcp", h, rpc("tools/list", 2, ""))); !slices.Equal(got, []string{"a__add"}) {
		t.Fatalf("tools/list of a key whose team allows a and b, its org a (tool add): %v", got)
	}
	if r := post(t, g.URL()+"/mcp", h, rpc("tools/call", 3, `{"name":"a__add","arguments":{"a":1,"b":2}}`)); !strings.Contains(string(r.body), `"sum":3`) {
		t.Fatalf("a permitted call: %s", r.body)
	}
	ha := initSession(t, g.URL()+"/mcp/a", bearer(key))
	r := post(t, g.URL()+"/mcp/a", ha, rpc("tools/call", 4, `{"name":"echo","arguments":{"text":"hi"}}`))
	if r.rpcErr.Code != -32030 || r.rpcErr.Message != "key 'org-bot' may not call tool 'echo' on server 'a'" {
		t.Fatalf("a tool outside the org's: %s", r.body)
	}
	// b: the team allows it, the organization does not.
	r = post(t, g.URL()+"/mcp/b", bearer(key), initBody)
	if r.rpcErr.Code != -32030 || r.rpcErr.Message != "key 'org-bot' may not use MCP server 'b'" {
		t.Fatalf("a server outside the org: HTTP %d %s", r.status, r.body)
	}
	// A key naming only b: nothing at all, never everything.
	r = post(t, g.URL()+"/mcp/a", bearer(onlyB), initBody)
	if r.rpcErr.Code != -32030 || r.rpcErr.Message != "key 'b-bot' may not use MCP server 'a'" {
		t.Fatalf("a key naming only b, on a: %s", r.body)
	}
	r = post(t, g.URL()+"/mcp", bearer(onlyB), initBody)
	if r.rpcErr.Code != -32030 || r.rpcErr.Message != "key 'b-bot' may not use any MCP server" {
		t.Fatalf("/mcp for a key naming only b: %s", r.body)
	}
	if recB.callCount() != 0 {
		t.Fatal("a call reached b")
	}

	// Blocked: its keys get 401 naming it.
	if status, out := admin(t, g.URL(), http.MethodPatch, "/organization/update", map[string]any{"organization_id": "acme", "blocked": true}); status != http.StatusOK {
		t.Fatalf("block: %d %v", status, out)
	}
	r = post(t, g.URL()+"/mcp", h, rpc("tools/list", 5, ""))
	if r.status != http.StatusUnauthorized || !strings.Contains(r.rpcErr.Message, "of organization 'Acme', which is blocked") {
		t.Fatalf("a key of a blocked org: HTTP %d %s", r.status, r.body)
	}
	assertNoSecrets(t, g, key, onlyB)
}

// An organization's models bound /v1/models and the chat routes of its
// teams' keys, whatever the team allows.
func TestOrgModelsBoundModelsList(t *testing.T) {
	g, fake := llmGateway(t)
	ctx := context.Background()
	newOrg(t, g.URL(), map[string]any{"organization_id": "ml", "models": []string{"gpt-4o", "claude"}})
	team := newTeam(t, g.URL(), map[string]any{"organization_id": "ml", "models": []string{"gpt-4o", "gpt-eu"}})
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "ml-bot", "team_id": team})
	c := llmClient(g, key)
	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range page.Data {
		names = append(names, m.ID)
	}
	if !slices.Equal(names, []string{"gpt-4o"}) {
		t.Fatalf("models of a key whose team has gpt-4o and gpt-eu, its org gpt-4o and claude: %v", names)
	}
	before := fake.Calls("eu-deployment")
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-eu",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if apiErr := asOpenAIError(t, err, http.StatusForbidden); apiErr.Type != "key_model_access_denied" || !strings.Contains(apiErr.Message, "gpt-eu") {
		t.Fatalf("a model the org does not have: %+v", apiErr)
	}
	if fake.Calls("eu-deployment") != before {
		t.Fatal("a denied request reached the provider")
	}
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("inside")}})
	if err != nil || res.Choices[0].Message.Content != "echo: inside" {
		t.Fatalf("a model inside: %+v %v", res, err)
	}
	assertNoSecrets(t, g, key)
}

// An org_admin's key manages its organization's teams and keys through the
// gateway and nothing else: not another organization's, not organizations,
// not the registry; and a key minted with another organization's admin's
// user_id administers nothing.
func TestOrgAdminThroughTheGateway(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  a: {url: %q}\n", master, a), nil)
	base := g.URL()
	for _, o := range []string{"x", "y"} {
		newOrg(t, base, map[string]any{"organization_id": o})
		if status, out := admin(t, base, http.MethodPost, "/organization/member_add", map[string]any{"organization_id": o,
			"member": map[string]any{"user_id": "admin-" + o + "@example.com", "role": "org_admin"}}); status != http.StatusOK {
			t.Fatalf("member_add: %d %v", status, out)
		}
		newTeam(t, base, map[string]any{"team_id": "t" + o, "organization_id": o})
	}
	kx := generateKey(t, base, map[string]any{"key_alias": "x-admin", "team_id": "tx", "user_id": "admin-x@example.com"})
	ky := generateKey(t, base, map[string]any{"key_alias": "y-bot", "team_id": "ty"})
	// as calls the admin API with key; like admin, it keeps /key/generate's
	// answers (the one that shows a key, once) out of the secret scan.
	as := func(key, method, path string, body any) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if path != "/key/generate" || resp.StatusCode != http.StatusOK {
			recordBody(out)
		}
		return resp.StatusCode, string(out)
	}
	refused := func(key, method, path string, body any, want string) {
		t.Helper()
		status, out := as(key, method, path, body)
		var e restErr
		_ = json.Unmarshal([]byte(out), &e)
		if status != http.StatusForbidden || !strings.Contains(e.Error.Message, want) {
			t.Fatalf("%s %s: HTTP %d %s, want 403 naming %q", method, path, status, out, want)
		}
	}

	// Its organization: a team, then a key in it.
	status, out := as(kx, http.MethodPost, "/team/new", map[string]any{"team_id": "tx-new"})
	if status != http.StatusOK || !strings.Contains(out, `"organization_id":"x"`) {
		t.Fatalf("an org admin's /team/new: %d %s", status, out)
	}
	status, out = as(kx, http.MethodPost, "/key/generate", map[string]any{"key_alias": "x-bot", "team_id": "tx-new"})
	var made struct{ Key, Token string }
	if status != http.StatusOK || json.Unmarshal([]byte(out), &made) != nil || made.Key == "" {
		t.Fatalf("an org admin's /key/generate: %d", status)
	}
	registerSecret(made.Key)
	if r := post(t, base+"/mcp/a", bearer(made.Key), initBody); r.status != http.StatusOK || r.rpcErr.Code != 0 {
		t.Fatalf("the org admin's new key: %d %s", r.status, r.body)
	}
	status, out = as(kx, http.MethodGet, "/team/list", nil)
	if status != http.StatusOK || !strings.Contains(out, `"tx-new"`) || strings.Contains(out, `"ty"`) {
		t.Fatalf("an org admin's /team/list: %d %s", status, out)
	}
	status, out = as(kx, http.MethodGet, "/key/list", nil)
	if status != http.StatusOK || !strings.Contains(out, made.Token) || strings.Contains(out, bus.HashKey(ky)) {
		t.Fatalf("an org admin's /key/list: %d %s", status, out)
	}

	// Another organization's team and key: 403 with the reason.
	refused(kx, http.MethodGet, "/team/info?team_id=ty", nil, "team 'ty' is not a team of organization 'x'")
	refused(kx, http.MethodPost, "/team/update", map[string]any{"team_id": "ty", "blocked": true}, "team 'ty'")
	refused(kx, http.MethodPost, "/team/new", map[string]any{"organization_id": "y"}, "may create teams only in it")
	refused(kx, http.MethodGet, "/key/info?key="+bus.HashKey(ky), nil, "key 'y-bot' belongs to team 'ty'")
	refused(kx, http.MethodPost, "/key/delete", map[string]any{"keys": []string{bus.HashKey(ky)}}, "key 'y-bot'")
	refused(kx, http.MethodPost, "/key/generate", map[string]any{"team_id": "ty"}, "team 'ty'")
	refused(kx, http.MethodGet, "/organization/info?organization_id=y", nil, "organization 'y' is not the one")
	// Organizations and the registry are the master key's.
	refused(kx, http.MethodPost, "/organization/new", map[string]any{"organization_id": "z"}, "only the master key may create organizations")
	refused(kx, http.MethodPatch, "/organization/update", map[string]any{"organization_id": "x", "max_budget": 1000}, "only the master key may change organizations")
	refused(kx, http.MethodPost, "/organization/member_add", map[string]any{"organization_id": "x",
		"member": map[string]any{"user_id": "me", "role": "org_admin"}}, "only the master key may add organization members")
	refused(kx, http.MethodGet, "/v1/mcp/server", nil, "only the master key may manage MCP servers")
	if status, _ := as(kx, http.MethodGet, "/organization/info?organization_id=x", nil); status != http.StatusOK {
		t.Fatalf("an org admin's own /organization/info: %d", status)
	}

	// Escalation: a key of x's team with y's admin's user_id is no admin.
	status, out = as(kx, http.MethodPost, "/key/generate", map[string]any{"team_id": "tx", "user_id": "admin-y@example.com"})
	var esc struct{ Key string }
	if status != http.StatusOK || json.Unmarshal([]byte(out), &esc) != nil || esc.Key == "" {
		t.Fatalf("a key with another org's admin's user_id: %d", status)
	}
	registerSecret(esc.Key)
	refused(esc.Key, http.MethodGet, "/team/info?team_id=ty", nil, "only the master key (or an org_admin's key")
	refused(esc.Key, http.MethodGet, "/organization/info?organization_id=y", nil, "only the master key (or an org_admin's key")
	refused(ky, http.MethodGet, "/team/list", nil, "only the master key (or an org_admin's key")
	assertNoSecrets(t, g, kx, ky, made.Key, esc.Key)
}

// Usage rolls up per organization: calls by keys of two teams of one
// organization and of a team of another carry their organization_id, and
// the per-organization sums of calls and cost are the calls made.
func TestUsageRollsUpPerOrganization(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a:
    url: %q
    mcp_info:
      mcp_server_cost_info:
        default_cost_per_query: 0.01
        tool_name_to_cost_per_query: {add: 0.05}
`, master, a), nil)
	newOrg(t, g.URL(), map[string]any{"organization_id": "acme"})
	newOrg(t, g.URL(), map[string]any{"organization_id": "globex"})
	keys := map[string]string{}
	for team, org := range map[string]string{"t1": "acme", "t2": "acme", "t3": "globex"} {
		newTeam(t, g.URL(), map[string]any{"team_id": team, "organization_id": org})
		keys[team] = generateKey(t, g.URL(), map[string]any{"team_id": team})
	}
	add := rpc("tools/call", 2, `{"name":"add","arguments":{"a":1,"b":2}}`)
	echo := rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"hi"}}`)
	calls := map[string][]string{"t1": {add, add}, "t2": {add, echo}, "t3": {add}}
	n := 0
	for _, team := range []string{"t1", "t2", "t3"} {
		h := initSession(t, g.URL()+"/mcp/a", bearer(keys[team]))
		for _, body := range calls[team] {
			if r := post(t, g.URL()+"/mcp/a", h, body); r.status != http.StatusOK || r.rpcErr.Code != 0 {
				t.Fatalf("%s: %d %s", team, r.status, r.body)
			}
			n++
		}
	}
	type sum struct {
		calls int
		cost  float64
	}
	got := map[string]sum{}
	for _, m := range usageEvents(t, g, n) {
		var ev bus.UsageEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"t1": "acme", "t2": "acme", "t3": "globex"}[ev.Team]; ev.OrgID != want {
			t.Errorf("an event of team %s has organization_id %q, want %q", ev.Team, ev.OrgID, want)
		}
		s := got[ev.OrgID]
		s.calls++
		s.cost += ev.Cost
		got[ev.OrgID] = s
	}
	want := map[string]sum{"acme": {4, 0.05 + 0.05 + 0.05 + 0.01}, "globex": {1, 0.05}}
	for org, w := range want {
		if s := got[org]; s.calls != w.calls || math.Abs(s.cost-w.cost) > 1e-9 {
			t.Errorf("organization %s: %d calls costing %v, want %d costing %v", org, s.calls, s.cost, w.calls, w.cost)
		}
	}
	if len(got) != len(want) {
		t.Errorf("organizations in the usage: %v", got)
	}
}

// An organization's max_budget is shared by every key of its teams: once
// spent, a team key gets LiteLLM's 429 budget_exceeded naming the
// organization, while a key outside it is still answered; its LLM usage
// events carry the organization and /organization/info shows the spend.
func TestOrgBudgetThroughTheGateway(t *testing.T) {
	fake := &fakellm.Server{APIKey: llmProviderKey}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	g := startGateway(t, `
general_settings:
  master_key: `+master+`
model_list:
  - model_name: priced
    litellm_params: {model: openai/fake-gpt, api_base: `+hs.URL+`/v1, api_key: os.environ/FAKE_KEY,
                     input_cost_per_token: 0.001, output_cost_per_token: 0.002}
`, map[string]string{"FAKE_KEY": llmProviderKey})
	newOrg(t, g.URL(), map[string]any{"organization_id": "acme", "organization_alias": "Acme", "max_budget": 0.01, "budget_duration": "30d"})
	t1 := newTeam(t, g.URL(), map[string]any{"organization_id": "acme"})
	t2 := newTeam(t, g.URL(), map[string]any{"organization_id": "acme"})
	k1 := generateKey(t, g.URL(), map[string]any{"key_alias": "k1", "team_id": t1})
	k2 := generateKey(t, g.URL(), map[string]any{"key_alias": "k2", "team_id": t2})
	outside := generateKey(t, g.URL(), map[string]any{"key_alias": "outside"})
	chat := func(key string) (int, string) {
		status, _, body := rest(t, http.MethodPost, g.URL()+"/v1/chat/completions", key, `{"model":"priced","messages":[{"role":"user","content":"count me"}]}`)
		return status, body
	}
	// 0.008 USD an answer (TestLLMBudgetAndUsage): one by each team's key
	// takes the organization over 0.01.
	for _, k := range []string{k1, k2} {
		if status, body := chat(k); status != http.StatusOK {
			t.Fatalf("under budget: %d %s", status, body)
		}
	}
	bustest.Eventually(t, 10*time.Second, "the organization's budget to be spent", func() error {
		status, body := chat(k1)
		if status != http.StatusTooManyRequests {
			return fmt.Errorf("status %d: %s", status, body)
		}
		if !strings.Contains(body, `"type":"budget_exceeded"`) || !strings.Contains(body, "Organization=Acme") {
			t.Fatalf("over the organization's budget: %s", body)
		}
		return nil
	})
	if status, body := chat(k2); status != http.StatusTooManyRequests || !strings.Contains(body, "Organization=Acme") {
		t.Fatalf("the other team's key: %d %s", status, body)
	}
	if status, body := chat(outside); status != http.StatusOK {
		t.Fatalf("a key outside the organization: %d %s", status, body)
	}
	status, info := admin(t, g.URL(), http.MethodGet, "/organization/info?organization_id=acme", nil)
	if spend, _ := info["spend"].(float64); status != http.StatusOK || spend < 0.0159 { // two answers, or more if one was admitted before the spend landed
		t.Fatalf("/organization/info spend: %d %v", status, info)
	}

	nc := roleConn(t, g.Gateway, bus.RoleUsage)
	var orgs []string // "<key alias>=<organization_id>" per ok LLM event
	bustest.Eventually(t, 10*time.Second, "LLM usage events", func() error {
		orgs = nil
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := bus.ReadUsage(ctx, nc, bus.UsageFilter("", bus.LLMUsageServer, ""), bus.UsageStart{}, false, func(m bus.UsageMsg) error {
			recordBody(m.Data)
			var ev bus.UsageEvent
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				return err
			}
			if ev.Status == "ok" {
				orgs = append(orgs, ev.KeyAlias+"="+ev.OrgID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return bustest.AtLeast("ok LLM events", len(orgs), 3)
	})
	slices.Sort(orgs)
	if orgs = slices.Compact(orgs); !slices.Equal(orgs, []string{"k1=acme", "k2=acme", "outside="}) {
		t.Fatalf("LLM usage events by key and organization: %v", orgs)
	}
	assertNoSecrets(t, g, k1, k2, outside)
}
