package gateway

import (
	"fmt"

	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/llm/llmrouter"
	"github.com/mcpbus/mcpbus/llm/llmworkers"
	"github.com/nats-io/nats.go"
)

// startLLM starts the LLM router and the workers of the config's
// deployments (model_list) on a connection of their own. A deployment on
// a wire mcpbus does not speak yet is left out, with a warning.
func (g *Gateway) startLLM(o Options, conn func(string) (*nats.Conn, error)) error {
	var served []config.Model
	for _, m := range o.Config.Models {
		if !llmworkers.Served(m) {
			o.Log.Warn("model_list: a deployment on a provider mcpbus does not serve yet is left out", "model", m.Name, "deployment", m.ID, "provider", m.Provider)
			continue
		}
		served = append(served, m)
	}
	if len(served) == 0 {
		return nil
	}
	nc, err := conn("mcpbus-llm")
	if err != nil {
		return err
	}
	if err := g.add(llmrouter.Start(nc, served, llmrouter.Options{Log: o.Log, Routing: o.Config.Routing, Secrets: g.secrets})); err != nil {
		return fmt.Errorf("LLM router: %w", err)
	}
	if err := g.add(llmworkers.Start(nc, served, llmworkers.Options{Log: o.Log, Timeout: o.Config.Routing.Timeout})); err != nil {
		return fmt.Errorf("LLM workers: %w", err)
	}
	return nil
}
