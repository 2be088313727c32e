package llmrouter

import (
	"testing"

	"github.com/mcpbus/mcpbus/config"
)

// A deployment's own prices win; else the table's, by the model with or
// without its date; an unknown model costs nothing.
func TestCost(t *testing.T) {
	for _, c := range []struct {
		d    config.Model
		want float64
	}{
		{config.Model{Upstream: "gpt-4o"}, 1000*2.5e-6 + 100*1e-5},
		{config.Model{Upstream: "gpt-4o-2024-08-06"}, 1000*2.5e-6 + 100*1e-5},
		{config.Model{Upstream: "claude-sonnet-4-20250514"}, 1000*3e-6 + 100*1.5e-5},
		{config.Model{Upstream: "gpt-4o-mini-latest"}, 1000*1.5e-7 + 100*6e-7},
		{config.Model{Upstream: "gpt-4o", InputCost: 1e-3, OutputCost: 2e-3}, 1000*1e-3 + 100*2e-3},
		{config.Model{Upstream: "my-finetune"}, 0},
		{config.Model{Upstream: "gpt-4o-turbo"}, 0}, // not a date: another model
	} {
		if got := cost(c.d, 1000, 100); got < c.want*0.999999 || got > c.want*1.000001 {
			t.Errorf("%s: cost %g, want %g", c.d.Upstream, got, c.want)
		}
	}
}
