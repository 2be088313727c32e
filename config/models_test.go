package config

import (
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
