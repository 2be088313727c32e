package llmrouter

import (
	"strings"

	"github.com/mcpbus/mcpbus/config"
)

// Pricing: what an answer cost, in USD, from its tokens. A deployment's
// own input_cost_per_token / output_cost_per_token (litellm_params or
// model_info) win; else this table, by the deployment's model (with or
// without a date suffix, "gpt-4o-2024-08-06" as "gpt-4o"); else nothing.
// The table holds the list prices of common models as of its writing:
// override them in the config where yours differ.

type price struct{ in, out float64 } // USD per token

var prices = map[string]price{
	"gpt-4o":                 {2.5e-6, 1e-5},
	"gpt-4o-mini":            {1.5e-7, 6e-7},
	"gpt-4.1":                {2e-6, 8e-6},
	"gpt-4.1-mini":           {4e-7, 1.6e-6},
	"gpt-4.1-nano":           {1e-7, 4e-7},
	"o3":                     {2e-6, 8e-6},
	"o4-mini":                {1.1e-6, 4.4e-6},
	"gpt-5":                  {1.25e-6, 1e-5},
	"gpt-5-mini":             {2.5e-7, 2e-6},
	"claude-sonnet-4":        {3e-6, 1.5e-5},
	"claude-sonnet-4-5":      {3e-6, 1.5e-5},
	"claude-opus-4":          {1.5e-5, 7.5e-5},
	"claude-haiku-4-5":       {1e-6, 5e-6},
	"claude-3-5-haiku":       {8e-7, 4e-6},
	"text-embedding-3-small": {2e-8, 0},
	"text-embedding-3-large": {1.3e-7, 0},
}

// cost is what prompt and completion tokens of deployment d cost.
func cost(d config.Model, prompt, completion int) float64 {
	in, out := d.InputCost, d.OutputCost
	if in == 0 && out == 0 {
		p := lookupPrice(d.Upstream)
		in, out = p.in, p.out
	}
	return float64(prompt)*in + float64(completion)*out
}

// lookupPrice finds model in the table, also without a trailing date
// ("-2024-08-06", "-20250514") or "-latest".
func lookupPrice(model string) price {
	if p, ok := prices[model]; ok {
		return p
	}
	m := strings.TrimSuffix(model, "-latest")
	if p, ok := prices[m]; ok {
		return p
	}
	for i := len(m) - 1; i > 0; i-- {
		if m[i] == '-' {
			if p, ok := prices[m[:i]]; ok && dateLike(m[i+1:]) {
				return p
			}
		}
	}
	return price{}
}

// dateLike reports whether s is a model's date suffix: digits and dashes.
func dateLike(s string) bool {
	if len(s) < 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '-' {
			return false
		}
	}
	return true
}
