package config

import (
	"strings"
	"testing"
	"time"
)

// model_list becomes typed deployments: the provider split from the model,
// keys resolved (LiteLLM's provider variable when api_key is not given),
// capacities, priority, weight, timeout, costs (litellm_params over
// model_info), visibility, and an id stable for an entry without one.
func TestModelsAreTyped(t *testing.T) {
	src := []byte(`
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/K, rpm: 60, order: 2, weight: 1.5, timeout: 2.5, input_cost_per_token: 0.001}
    model_info: {id: gpt-1, input_cost_per_token: 0.5, output_cost_per_token: 0.002, access_groups: [beta]}
  - model_name: claude
    litellm_params: {model: claude-sonnet-4-5}
    model_info: {discoverable: false, mode: chat}
`)
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"K": "sk-one", "ANTHROPIC_API_KEY": "sk-two"}[k]
		return v, ok
	}
	f, err := Parse("config.yaml", src, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Models) != 2 {
		t.Fatalf("models: %+v", f.Models)
	}
	g, c := f.Models[0], f.Models[1]
	if g.Name != "gpt" || g.ID != "gpt-1" || g.Provider != "openai" || g.Upstream != "gpt-4o" || g.APIKey != "sk-one" ||
		g.RPM != 60 || g.Order != 2 || g.Weight != 1.5 || g.Timeout != 2500*time.Millisecond ||
		g.InputCost != 0.001 || g.OutputCost != 0.002 || len(g.AccessGroups) != 1 || g.Hidden {
		t.Errorf("gpt: %+v", g)
	}
	if c.Provider != "anthropic" || c.Upstream != "claude-sonnet-4-5" || c.APIKey != "sk-two" || !c.Hidden || c.Mode != "chat" {
		t.Errorf("claude: %+v", c)
	}
	again, _ := Parse("config.yaml", src, env)
	if c.ID == "" || again.Models[1].ID != c.ID || !serverNameRE.MatchString(c.ID) {
		t.Errorf("a generated id %q must be a stable token (again %q)", c.ID, again.Models[1].ID)
	}
}

// Routing reads litellm_settings and then router_settings (which wins),
// fallbacks as group -> groups; agents keep their card as JSON and read
// where the agent is called.
func TestRoutingAndAgentsAreTyped(t *testing.T) {
	src := []byte(`
litellm_settings: {num_retries: 1, cooldown_time: 2, fallbacks: [{a: [b, c]}]}
router_settings: {num_retries: 3, routing_strategy: cost-based-routing}
agents:
  - agent_name: helper
    agent_card_params: {name: Helper, supportedInterfaces: [{url: "https://agent.example/a2a"}], protocolVersion: "0.3"}
    litellm_params: {api_key: os.environ/AK, headers: {X-A: "1"}, make_public: true}
`)
	env := func(k string) (string, bool) { return map[string]string{"AK": "agent-key"}[k], k == "AK" }
	f, err := Parse("config.yaml", src, env)
	if err != nil {
		t.Fatal(err)
	}
	r := f.Routing
	if r.NumRetries != 3 || r.Strategy != "cost-based-routing" || r.CooldownTime != 2*time.Second || len(r.Fallbacks["a"]) != 2 || r.Fallbacks["a"][1] != "c" {
		t.Errorf("routing: %+v", r)
	}
	if len(f.Agents) != 1 {
		t.Fatalf("agents: %+v", f.Agents)
	}
	a := f.Agents[0]
	if a.Name != "helper" || a.URL != "https://agent.example/a2a" || a.ProtocolVersion != "0.3" || a.APIKey != "agent-key" ||
		a.Headers["X-A"] != "1" || !a.Public || !strings.Contains(string(a.Card), `"name":"Helper"`) {
		t.Errorf("agent: %+v", a)
	}
}
